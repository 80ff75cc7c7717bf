"""Dense prediction from converted checkpoints: backbone-only files through ``init_cfg``, and
detector checkpoints back to the official layout."""
import glob
import logging
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from converter_helpers import (ROOT, SPECS, _layout, _refused, assert_same_tensors, convert, load,
                               official_state_dict)

import mmscope  # noqa: F401  (safe checkpoint loading in mmengine)


# -------------------------------------------------------------------------------------
# dense prediction: backbone-only files through init_cfg
# -------------------------------------------------------------------------------------
def _dense_config(family, kind):
    """(Config, how it was found) of the smallest variant's Mask R-CNN / UperNet."""
    from mmengine.config import Config
    pattern = {
        'mask-rcnn': 'mask-rcnn_{f}-{a}_fpn_1x_coco.py',
        'upernet': 'upernet_{f}-{a}_*ade20k*.py'
    }[kind]
    short = {'scopevit': 'xt', 'scalablevit': 's'}[family]
    found = sorted(glob.glob(osp.join(ROOT, 'configs', family, pattern.format(f=family, a=short))))
    if found:
        return Config.fromfile(found[0]), osp.relpath(found[0], ROOT)
    # no dense config for this family yet: the ScalableViT one with the backbone swapped
    base = sorted(
        glob.glob(osp.join(ROOT, 'configs', 'scalablevit', pattern.format(f='scalablevit',
                                                                          a='s'))))[0]
    cfg = Config.fromfile(base)
    widths = [32, 64, 128, 256]
    cfg.model.backbone = dict(
        type='mmscope.ScopeViT',
        arch='xtiny',
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'))
    if kind == 'mask-rcnn':
        cfg.model.neck.in_channels = widths
    else:
        cfg.model.decode_head.in_channels = widths
        cfg.model.auxiliary_head.in_channels = widths[2]
    return cfg, f'{osp.relpath(base, ROOT)} with a ScopeViT-XT backbone'


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _init_from(model, backbone, checkpoint):
    """``model.init_weights()`` with the backbone's init_cfg pointing at ``checkpoint``;
    returns the warnings mmengine logged and those the backbone's loader raised."""
    import warnings

    from mmengine.logging import MMLogger
    backbone.init_cfg['checkpoint'] = checkpoint
    logger = MMLogger.get_current_instance()
    records = _Records()
    logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            model.init_weights()
    finally:
        logger.removeHandler(records)
    return records.messages + [str(w.message) for w in caught]


DENSE = [('scalablevit', 'small', 'mask-rcnn', 'mmdet'),
         ('scalablevit', 'small', 'upernet', 'mmseg'), ('scopevit', 'xtiny', 'mask-rcnn', 'mmdet'),
         ('scopevit', 'xtiny', 'upernet', 'mmseg')]


@pytest.mark.parametrize('family,arch,kind,scope', DENSE, ids=[f'{f}-{k}' for f, _, k, _ in DENSE])
def test_backbone_only_initialises_dense_models(tmp_path, capsys, family, arch, kind, scope):
    import importlib

    from mmengine.registry import DefaultScope
    spec = SPECS[family]
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'backbone.pth')
    torch.save({spec.official.wrapper: official_state_dict(family, arch, seed=7)}, src)
    code, out = convert(capsys, family, src, dst, '--backbone-only')
    assert code == 0, out
    ckpt = load(dst)
    assert ckpt['meta']['format'] == 'backbone'
    weights = ckpt['state_dict']
    assert weights and all(k.startswith('backbone.') for k in weights)
    layout = _layout(family, arch)
    extras = layout.dense_only()
    if family == 'scalablevit':  # per-output norms of stages 0-2: identity affines
        assert sorted(extras) == [
            f'backbone.norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')
        ]
        for k in extras:
            assert torch.equal(
                weights[k],
                torch.ones_like(weights[k])
                if k.endswith('weight') else torch.zeros_like(weights[k]))
    else:
        assert extras == []

    cfg, origin = _dense_config(family, kind)
    assert cfg.model.backbone.init_cfg['prefix'] == 'backbone.', origin
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    warnings = _init_from(model, model.backbone, dst)
    assert not [w for w in warnings if 'Missing (left as initialised)' in w], (origin, warnings)
    after = model.backbone.state_dict()
    assert set(after) == {k[len('backbone.'):] for k in weights}, origin
    for k, v in after.items():
        assert torch.equal(v, weights['backbone.' + k]), k
        if 'backbone.' + k not in extras:
            assert not torch.equal(v, before[k]), f'{k} did not change'

    # the classifier form loads too (through the same init_cfg): the dense-only tensors,
    # absent from it, keep their initialisation, which is what backbone-only files hold
    if kind == 'mask-rcnn':
        classifier = str(tmp_path / 'classifier.pth')
        assert convert(capsys, family, src, classifier)[0] == 0
        with DefaultScope.overwrite_default_scope(scope):
            backbone = registry.build(cfg.model.backbone)
        warnings = _init_from(backbone, backbone, classifier)
        for k, v in backbone.state_dict().items():
            assert torch.equal(v, weights['backbone.' + k]), k
        if extras:
            assert any('Missing (left as initialised): norm0.weight' in w for w in warnings)


def test_to_official_from_detector_checkpoint(tmp_path, capsys):
    """--to-official --backbone-only reads the backbone of a dense checkpoint; without
    --backbone-only it is refused."""
    sd = official_state_dict('scalablevit', 'small', seed=3)
    src, bb = str(tmp_path / 'official.pth'), str(tmp_path / 'backbone.pth')
    torch.save({'model': sd}, src)
    assert convert(capsys, 'scalablevit', src, bb, '--backbone-only')[0] == 0
    detector = dict(load(bb)['state_dict'])
    detector['neck.lateral_convs.0.conv.weight'] = torch.zeros(256, 64, 1, 1)
    detector['rpn_head.rpn_conv.weight'] = torch.zeros(256, 256, 3, 3)
    det = str(tmp_path / 'detector.pth')
    torch.save({'state_dict': detector, 'meta': {'epoch': 12}}, det)
    out_path = str(tmp_path / 'back.pth')
    _refused(
        capsys,
        'scalablevit',
        det,
        out_path,
        '--to-official',
        expect=('--backbone-only', 'neck.lateral_convs.0.conv.weight'))
    code, out = convert(capsys, 'scalablevit', det, out_path, '--to-official', '--backbone-only')
    assert code == 0, out
    assert 'dropped 6 dense-only tensors' in out and 'ignored 2 non-backbone' in out
    back = load(out_path)['model']
    assert_same_tensors(back, OrderedDict(
        (k, v) for k, v in sd.items() if not k.startswith('head.')))
