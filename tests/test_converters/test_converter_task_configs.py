"""The converter with a config that is no released classifier: a detector's config (its
backbone is converted with --backbone-only, the rest refused saying so), and a custom
arch whose head has no place in the released layout (the way out: --backbone-only)."""
import os.path as osp

import torch
from converter_helpers import ROOT, _refused, convert, load

from mmscope.utils import get_config_path

MASK_RCNN = get_config_path('mmscope::scopevit/mask-rcnn_scopevit-xt_fpn_1x_coco.py')
XS_CLS = osp.join(ROOT, 'projects/shapes_demo/configs/scalablevit-xs_shapes-cls.py')


def test_detector_config_converts_its_backbone(tmp_path, capsys, xt_official):
    src, official = xt_official
    dst = str(tmp_path / 'out.pth')
    _refused(
        capsys,
        'scopevit',
        src,
        dst,
        '--config',
        MASK_RCNN,
        expect=(f'--config {MASK_RCNN} is a mmdet MaskRCNN config, not a classifier: only '
                'its backbone has an official counterpart. Add --backbone-only', ))
    code, out = convert(capsys, 'scopevit', src, dst, '--config', MASK_RCNN, '--backbone-only')
    assert code == 0, out
    sd = load(dst)['state_dict']
    # every tensor of the detector's backbone, none of a head
    from mmscope.apis import build_model, load_config
    detector = build_model(load_config(MASK_RCNN))
    want = {k: v.shape for k, v in detector.state_dict().items() if k.startswith('backbone.')}
    assert {k: v.shape for k, v in sd.items()} == want
    assert torch.equal(sd['backbone.stem.conv1.weight'],
                       official['patch_embed1.projection.0.weight'])


def test_custom_head_says_what_converts(tmp_path, capsys):
    """A ScalableViT-XS classifier (custom arch, one Linear head) to the released layout:
    the head is named with why it has no counterpart and --backbone-only works."""
    from mmscope.apis import build_model, load_config
    torch.manual_seed(0)
    src = str(tmp_path / 'xs.pth')
    torch.save({'state_dict': build_model(load_config(XS_CLS)).state_dict()}, src)
    dst = str(tmp_path / 'official.pth')
    out = _refused(
        capsys,
        'scalablevit',
        src,
        dst,
        '--to-official',
        '--config',
        XS_CLS,
        expect=("'head.fc.weight' has no official ScalableViT counterpart: the released "
                'ScalableViT classifier has a head of its own kind', 'LinearClsHead',
                'Use --backbone-only'))
    assert 'head.layers.0.fc.{p}' in out
    code, out = convert(capsys, 'scalablevit', src, dst, '--to-official', '--config', XS_CLS,
                        '--backbone-only')
    assert code == 0, out
    sd = load(dst)['model']
    assert 'norm.weight' in sd and not any(k.startswith('head') for k in sd)
