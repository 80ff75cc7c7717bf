"""The ResNet-18 controls (configs/controls/, docs/demo.md "Controls"): each takes the same
data, pipelines, schedule, runtime and (for Mask R-CNN and UperNet) head widths as the demo
config it controls, so the two differ only in the backbone and its optimizer; and each
builds with its library's own ResNet-18 and the classes of the shapes data.
"""
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = osp.join(ROOT, 'projects', 'shapes_demo', 'configs')

#: (ours, control, the settings that must be equal, library scope)
PAIRS = [
    ('mask-rcnn_scopevit-xt_fpn_shapes.py', 'controls/mask-rcnn_r18_fpn_shapes.py', [
        'train_dataloader', 'val_dataloader', 'val_evaluator', 'param_scheduler', 'train_cfg',
        'default_hooks', 'randomness', 'model.neck.out_channels', 'model.rpn_head',
        'model.roi_head', 'model.train_cfg', 'model.test_cfg'
    ], 'mmdet'),
    ('upernet_scalablevit-xs_shapes.py', 'controls/upernet_r18_shapes.py', [
        'train_dataloader', 'val_dataloader', 'param_scheduler', 'train_cfg', 'default_hooks',
        'randomness', 'model.data_preprocessor', 'model.decode_head.channels',
        'model.decode_head.num_classes', 'model.auxiliary_head.channels',
        'model.auxiliary_head.num_classes'
    ], 'mmseg'),
    ('td-hm_scopevit-xt_shapes-kpt.py', 'controls/td-hm_r18_shapes-kpt.py', [
        'train_dataloader', 'val_dataloader', 'val_evaluator', 'param_scheduler', 'train_cfg',
        'default_hooks', 'randomness', 'optim_wrapper.optimizer.lr', 'model.head.out_channels',
        'model.head.decoder', 'model.test_cfg'
    ], 'mmpose'),
]


def _get(cfg, dotted):
    for key in dotted.split('.'):
        cfg = cfg[key]
    return cfg


def _plain(value):
    """A config value without mmengine's ``_scope_`` tags (the bases come from different
    libraries, which tag their own dicts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _load(name):
    from mmengine.config import Config

    import mmscope  # noqa: F401  (the mmscope:: config scheme)
    return Config.fromfile(osp.join(CONFIGS, name))


@pytest.mark.parametrize('ours,control,same,scope', PAIRS, ids=[p[3] for p in PAIRS])
def test_control_differs_from_ours_only_in_backbone_and_optimizer(ours, control, same, scope):
    a, b = _load(ours), _load(control)
    for key in same:
        assert _plain(_get(a, key)) == _plain(_get(b, key)), key
    assert a.model.backbone.type != b.model.backbone.type
    assert b.model.backbone.depth == 18
    assert b.model.backbone.init_cfg.prefix == 'backbone.'
    assert 'controls/cls' in b.model.backbone.init_cfg.checkpoint


@pytest.mark.parametrize('ours,control,same,scope', PAIRS, ids=[p[3] for p in PAIRS])
def test_control_builds_with_the_shapes_classes(ours, control, same, scope):
    from mmengine.registry import MODELS, DefaultScope
    cfg = _load(control)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    names = dict(model.named_modules())
    assert 'backbone.layer4' in names  # the library's own ResNet, four stages
    if scope == 'mmdet':
        assert model.roi_head.bbox_head.num_classes == 4
        assert model.neck.out_channels == cfg.model.neck.out_channels == 64
    elif scope == 'mmseg':
        assert model.decode_head.num_classes == 5
        assert model.decode_head.in_channels == [64, 128, 256, 512]
    else:
        assert model.head.out_channels == 5
