"""Layer-wise learning-rate decay and the backbone's no-decay keys, through
``mmscope.BackboneOptimWrapperConstructor`` in the mmdet and mmseg configs that use it
(``..._layer-decay-...``) and in a classification config; mmpretrain's own
``LearningRateDecayOptimWrapperConstructor`` on our backbones is checked for every family
in ``tests/test_models/test_backbones/test_backbone_contract.py``."""
import os.path as osp

import pytest
import torch

import mmscope  # noqa: F401
from mmscope.apis import build_model, load_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONSTRUCTOR = 'mmscope.BackboneOptimWrapperConstructor'


@pytest.fixture(autouse=True, scope='module')
def quiet():
    """mmengine logs every parameter's optimizer options at INFO."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmscope_test_layer_decay', log_level='WARNING')


def _groups(path, **paramwise):
    """``(model, {parameter name: param group})`` of the config's optimizer, built as the
    runner of its library builds it (default scope set)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    cfg = load_config(osp.join(ROOT, path))
    torch.manual_seed(0)
    model = build_model(cfg)
    optim = dict(cfg.optim_wrapper)
    if optim.get('type') == 'AmpOptimWrapper':
        optim['type'] = 'OptimWrapper'  # CPU
    if paramwise:
        optim['paramwise_cfg'] = dict(optim.get('paramwise_cfg') or {}, **paramwise)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        wrapper = build_optim_wrapper(model, optim)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {names[id(g['params'][0])]: g for g in wrapper.optimizer.param_groups}
    assert all(len(g['params']) == 1 for g in wrapper.optimizer.param_groups)
    return model, groups, wrapper


@pytest.mark.parametrize('path,rate,blocks', [
    ('configs/scopevit/mask-rcnn_scopevit-t_fpn_layer-decay-1x_coco.py', 0.9, 11),
    ('configs/scalablevit/upernet_scalablevit-s_8xb2-layer-decay-160k_ade20k-512x512.py', 0.95, 26)
])
def test_dense_layer_decay(path, rate, blocks):
    """The first and the last block's learning rates differ by rate ** (blocks - 1); the
    stem is one more step down, the neck and heads keep the base rate; weight decay is
    the config's without layer decay, parameter by parameter (no-decay keys included)."""
    cfg = load_config(osp.join(ROOT, path))
    assert cfg.optim_wrapper.constructor == CONSTRUCTOR
    base_lr = cfg.optim_wrapper.optimizer.lr
    model, groups, _ = _groups(path)
    backbone = model.backbone
    assert backbone.num_layers() == blocks + 2
    order = [m for m, is_block in backbone._layer_order() if is_block]
    assert len(order) == blocks
    prefix = {id(m): 'backbone.' + n for n, m in backbone.named_modules()}

    def lrs(module):
        return {groups[f'{prefix[id(module)]}.{n}']['lr'] for n, _ in module.named_parameters()}

    (first, ), (last, ) = lrs(order[0]), lrs(order[-1])
    assert first / last == pytest.approx(rate**(blocks - 1), rel=1e-9)
    assert last == pytest.approx(base_lr * rate, rel=1e-9)
    stem = next(n for n in groups if n.startswith('backbone.'))
    assert groups[stem]['lr'] == pytest.approx(base_lr * rate**(blocks + 1), rel=1e-9)
    assert groups[stem]['layer_id'] == 0
    heads = [n for n in groups if not n.startswith('backbone.')]
    assert heads and {groups[n]['lr'] for n in heads} == {base_lr}
    assert {groups[n]['layer_id'] for n in heads} == {blocks + 1}

    # the decay changes learning rates only: the same weight decay for every parameter
    # as the config without it, whose no-decay keys come from the backbone
    without = osp.join(osp.dirname(path), osp.basename(path).replace('layer-decay-', ''))
    _, plain, _ = _groups(without)
    assert plain.keys() == groups.keys()
    assert all(plain[n]['weight_decay'] == groups[n]['weight_decay'] for n in groups)
    no_decay = [n for n in groups if any(k in '.' + n for k in backbone.no_decay_keys)]
    assert no_decay and all(groups[n]['weight_decay'] == 0 for n in no_decay)
    assert all('lr' not in plain[n] or plain[n]['lr'] == base_lr for n in plain)


def test_classifier_layer_decay_and_schedules_keep_the_ratio():
    """The same constructor on a classifier (the classification configs use it for the
    no-decay keys), and a learning-rate schedule scales every layer alike."""
    from mmengine.optim import LinearLR
    _, groups, wrapper = _groups(
        'configs/scopevit/scopevit-xt_8xb128_in1k.py', layer_decay_rate=0.5)
    first = groups['backbone.stages.0.blocks.0.mssa.attn.q.weight']['lr']
    last = groups['backbone.stages.3.blocks.0.mssa.attn.q.weight']['lr']
    assert first / last == pytest.approx(0.5**7)  # ScopeViT-XT: 8 blocks
    assert groups['head.fc.weight']['lr'] == pytest.approx(1e-3)
    assert groups['backbone.stages.0.blocks.0.mssa.ls1.gamma']['weight_decay'] == 0
    scheduler = LinearLR(wrapper, start_factor=0.25, by_epoch=False, begin=0, end=4)
    scheduler.step()
    factor = groups['head.fc.weight']['lr'] / 1e-3
    assert 0.25 < factor < 1  # part of the warm-up, the same factor for every layer
    assert groups['backbone.stages.0.blocks.0.mssa.attn.q.weight']['lr'] == pytest.approx(first *
                                                                                          factor)
    assert groups['backbone.stages.3.blocks.0.mssa.attn.q.weight']['lr'] == pytest.approx(last *
                                                                                          factor)


def test_wrong_rates_and_models_are_refused():
    import torch.nn as nn

    from mmscope.engine import BackboneOptimWrapperConstructor
    optim = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    for bad in (0, -0.5, 1.5, '0.9'):
        with pytest.raises(ValueError, match=r'layer_decay_rate must be a number in \(0, 1\]'):
            BackboneOptimWrapperConstructor(optim, dict(layer_decay_rate=bad))
    with pytest.raises(TypeError, match='Sequential has no mmscope backbone'):
        BackboneOptimWrapperConstructor(optim, dict(layer_decay_rate=0.9))(
            nn.Sequential(nn.Linear(2, 2)))


#: The parameters each family trains without weight decay besides norms (recorded when the
#: no-decay keys were given one home, the backbone's ``no_decay_keys``): the constructor
#: must keep exempting exactly these.
NO_DECAY_FRAGMENTS = {'ScopeViT': ('.gamma', '.rel_pos.'), 'ScalableViT': ('.pos_conv.', )}


@pytest.mark.parametrize('family,arch', [('ScopeViT', 'xtiny'), ('ScalableViT', 'small')])
def test_no_decay_parameters_per_family(family, arch):
    """With the dense fragments' ``paramwise_cfg`` (``norm_decay_mult=0``), the parameters
    with weight decay 0 are exactly the norms and the names holding the family's no-decay
    fragments, which come from the backbone alone."""
    from mmengine.optim import build_optim_wrapper
    from torch.nn.modules.batchnorm import _BatchNorm

    from mmscope.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(type=f'mmscope.{family}', arch=arch))
    assert tuple(model.no_decay_keys) == NO_DECAY_FRAGMENTS[family]
    wrapper = build_optim_wrapper(
        model,
        dict(
            constructor=CONSTRUCTOR,
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            paramwise_cfg=dict(norm_decay_mult=0.0)))
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {
        names[id(p)]
        for g in wrapper.optimizer.param_groups
        for p in g['params'] if g['weight_decay'] == 0
    }
    norms = {
        f'{m}.{n}'
        for m, mod in model.named_modules()
        if isinstance(mod, (_BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm))
        for n, _ in mod.named_parameters(recurse=False)
    }
    keyed = {n for n in names.values() if any(k in n for k in NO_DECAY_FRAGMENTS[family])}
    assert keyed and no_decay == norms | keyed
