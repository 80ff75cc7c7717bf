"""torch.export at every size (mmscope.deploy.export_program): one program, recorded once,
equal to eager PyTorch at every batch, height and width of its range, for the backbones
of the dense configs and the six timm models."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

import mmscope.models  # noqa: F401
from mmscope.deploy import dynamic_dims, export_program
from mmscope.deploy.onnx import relative_error
from mmscope.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: (batch, H, W): the smallest (a 1x1 last stage), padded odd sizes, tall, wide, fitting
SIZES = [(1, 32, 32), (2, 45, 70), (1, 97, 33), (3, 128, 96), (1, 224, 224)]


def _assert_equal_to_eager(model, program, sizes=SIZES, tol=1e-5):
    run = program.module()
    torch.manual_seed(1)
    for b, h, w in sizes:
        x = torch.randn(b, 3, h, w)
        with torch.no_grad():
            want, got = model(x), run(x)
        want = want if isinstance(want, (tuple, list)) else (want, )
        got = got if isinstance(got, (tuple, list)) else (got, )
        assert len(got) == len(want)
        for g, e in zip(got, want):
            assert g.shape == e.shape, (b, h, w)
            assert relative_error(g.numpy(), e.numpy()) < tol, (b, h, w)


def _dense_backbone(config):
    cfg = Config.fromfile(osp.join(ROOT, config)).model.backbone
    cfg.pop('init_cfg', None)
    cfg.type = cfg.type.replace('mmscope.', '')
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    for m in model.modules():  # non-trivial BN statistics, so that they are compared too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize('config', [
    'configs/scopevit/mask-rcnn_scopevit-t_fpn_1x_coco.py',
    'configs/scalablevit/upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py'
])
def test_dense_backbones_export_once_for_every_size(config):
    model = _dense_backbone(config)
    program = export_program(model, torch.randn(1, 3, 64, 64))
    ranges = {str(r) for r in program.range_constraints.values()}
    assert 'VR[32, 4096]' in ranges and 'VR[1, int_oo]' in ranges, ranges
    _assert_equal_to_eager(model, program)
    # the range is enforced: below the backbone's 32 pixels the program refuses to run
    with pytest.raises(Exception, match='32'):
        program.module()(torch.randn(1, 3, 31, 64))


def _timm_case(name):
    return pytest.param(name, marks=[] if name in FAST_TIMM else [pytest.mark.slow])


FAST_TIMM = ('scopevit_xtiny', 'scalable_vit_small')
ALL_TIMM = ('scopevit_xtiny', 'scopevit_tiny', 'scopevit_small', 'scalable_vit_small',
            'scalable_vit_base', 'scalable_vit_large')


@pytest.mark.parametrize('name', [_timm_case(n) for n in ALL_TIMM])
def test_timm_models_export_once_for_every_size(name):
    timm = pytest.importorskip('timm')
    import mmscope.timm  # noqa: F401
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).eval()
    program = export_program(model, torch.randn(2, 3, 96, 80))
    _assert_equal_to_eager(model, program, sizes=SIZES[:4])


def test_export_program_refuses_what_it_cannot_export():
    model = MODELS.build(dict(type='ScopeViT', arch='xtiny')).eval()
    with pytest.raises(ValueError, match=r'min_size=16 is below the 32 pixels.*min_size >= 32'):
        export_program(model, torch.randn(1, 3, 64, 64), min_size=16)
    with pytest.raises(ValueError, match=r'example is 20x64, outside the exported range \[32, '):
        export_program(model, torch.randn(1, 3, 20, 64))
    with pytest.raises(ValueError, match=r'one \(B, C, H, W\) tensor, got torch.Size\(\[3, 64'):
        export_program(model, torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match='need 1 <= min_size < max_size'):
        dynamic_dims(64, 64)
    dims = dynamic_dims(32, 512)
    assert sorted(dims) == [0, 2, 3]
    assert (dims[2].min, dims[2].max, dims[3].min, dims[3].max) == (32, 512, 32, 512)
