"""Both families as timm models (``import mmscope.timm``): the released names, the released
weights loading as they are (golden logits), features at any size, timm's model interface.

Skipped only when timm is absent (it is the optional extra ``mmscope[timm]``; the set-up
installs it, so CI runs these)."""
import os.path as osp
import subprocess
import sys
import warnings
from collections import OrderedDict

import pytest
import torch

timm = pytest.importorskip(
    'timm',
    reason='timm is not installed: pip install "mmscope[timm]" '
    '(tools/setup_env.sh installs it)')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GOLDEN = osp.join(ROOT, 'tests', 'golden')
sys.path.insert(0, GOLDEN)

from synth import VARIANTS, load_golden, seeded_input, synthesize  # noqa: E402

import mmscope.timm as mt  # noqa: E402
from mmscope.converters.common import ConversionError  # noqa: E402
from mmscope.models.family import get_family  # noqa: E402

NAMES = {
    'scopevit_xtiny': ('scopevit', 'xtiny'),
    'scopevit_tiny': ('scopevit', 'tiny'),
    'scopevit_small': ('scopevit', 'small'),
    'scalable_vit_small': ('scalablevit', 'small'),
    'scalable_vit_base': ('scalablevit', 'base'),
    'scalable_vit_large': ('scalablevit', 'large'),
}
SIZE = {f'{f}-{a}': s for f, vs in VARIANTS.items() for a, s in vs}


@pytest.fixture(scope='module')
def golden():
    return load_golden()


def _released_file(tmp_path, shapes, family, arch, wrapper=None):
    """A released-layout checkpoint of the golden seeded weights, wrapped as the released
    training script writes it."""
    wrapper = wrapper or get_family(family).official.wrapper
    path = str(tmp_path / f'{family}-{arch}.pth')
    torch.save({wrapper: synthesize(shapes[f'{family}-{arch}']), 'epoch': 299}, path)
    return path


def test_the_six_released_names_with_the_released_parameter_counts(golden):
    shapes, _ = golden
    assert mt.TIMM_NAMES == NAMES
    assert set(timm.list_models('scopevit_*')) | set(timm.list_models('scalable_vit_*')) \
        >= set(NAMES)
    for name, (family, arch) in NAMES.items():
        model = timm.create_model(name)
        released = sum(
            torch.Size(s).numel() for k, s, _, kind in shapes[f'{family}-{arch}']
            if kind == 'param')
        assert sum(p.numel() for p in model.parameters()) == released, name
        cfg = model.pretrained_cfg
        size = SIZE[f'{family}-{arch}']  # the golden data's sizes are the released ones
        assert cfg['input_size'] == (3, size, size)
        assert cfg['num_classes'] == 1000 and cfg['interpolation'] == 'bicubic'
        assert model.get_classifier() is model.get_submodule(cfg['classifier'])
        assert isinstance(model.get_submodule(cfg['first_conv']), torch.nn.Conv2d)


@pytest.mark.parametrize('name', list(NAMES))
def test_released_checkpoint_loads_as_it_is_and_gives_the_released_logits(tmp_path, golden, name):
    """A released checkpoint (official keys, the training script's wrapper) through timm's
    pretrained path gives the released model's logits (tests/golden)."""
    shapes, logits = golden
    family, arch = NAMES[name]
    path = _released_file(tmp_path, shapes, family, arch)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=path)).eval()
    with torch.no_grad():
        got = model(seeded_input(SIZE[f'{family}-{arch}']))
    expected = torch.tensor(logits[f'{family}-{arch}']['logits'])
    assert (got - expected).abs().max().item() <= 1e-4


def test_checkpoint_path_and_load_state_dict_take_the_released_layout(tmp_path, golden):
    shapes, logits = golden
    path = _released_file(tmp_path, shapes, 'scopevit', 'xtiny')
    expected = torch.tensor(logits['scopevit-xtiny']['logits'])
    model = timm.create_model('scopevit_xtiny', checkpoint_path=path).eval()
    with torch.no_grad():
        assert (model(seeded_input(256)) - expected).abs().max().item() <= 1e-4
    other = timm.create_model('scopevit_xtiny').eval()
    other.load_state_dict(synthesize(shapes['scopevit-xtiny']))
    with torch.no_grad():
        assert (other(seeded_input(256)) - expected).abs().max().item() <= 1e-4


def test_another_variants_released_weights_are_refused(tmp_path, golden):
    shapes, _ = golden
    path = _released_file(tmp_path, shapes, 'scopevit', 'tiny')
    with pytest.raises(ConversionError, match='released ScopeViT-xtiny'):
        timm.create_model('scopevit_xtiny', pretrained=True, pretrained_cfg_overlay=dict(file=path))
    with pytest.raises(ConversionError, match='neither in mmscope'):
        timm.create_model('scalable_vit_small').load_state_dict(
            synthesize(shapes['scopevit-xtiny']))


def _our_classifier(family, arch):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(get_family(family).config_path(arch)).model)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('family,arch,name', [('scopevit', 'xtiny', 'scopevit_xtiny'),
                                              ('scalablevit', 'small', 'scalable_vit_small')])
def test_a_training_checkpoint_of_ours_loads(tmp_path, family, arch, name):
    """An mmengine training checkpoint of an mmpretrain classifier (message hub, numpy
    scalars: what ``torch.load(weights_only=True)`` alone refuses) loads through the
    pretrained file path, and the timm model gives the classifier's logits."""
    from mmengine.logging import HistoryBuffer
    clf = _our_classifier(family, arch)
    buffer = HistoryBuffer()
    buffer.update(0.5)
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(
        {
            'meta': {
                'epoch': 1
            },
            'state_dict': clf.state_dict(),
            'message_hub': {
                'log_scalars': {
                    'train/loss': buffer
                }
            }
        }, path)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), clf(x, mode='tensor'))
    # another class count: the backbone loads, the classifier stays new, with a warning
    with pytest.warns(UserWarning, match='another class count'):
        ten = timm.create_model(
            name, pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(file=path))
    assert ten.get_classifier().out_features == 10
    assert torch.equal(ten.backbone.state_dict()[next(iter(ten.backbone.state_dict()))],
                       clf.backbone.state_dict()[next(iter(clf.backbone.state_dict()))])
    with torch.no_grad():
        assert torch.equal(ten.eval().forward_features(x), model.forward_features(x))


def test_pretrained_without_a_file_says_nothing_is_published():
    with pytest.raises(
            mt.NoPublishedWeightsError,
            match='no weights are published.*pretrained_cfg_overlay=dict'):
        timm.create_model('scopevit_tiny', pretrained=True)


@pytest.mark.parametrize('name,family,arch', [('scopevit_xtiny', 'scopevit', 'xtiny'),
                                              ('scalable_vit_small', 'scalablevit', 'small')])
def test_features_only_gives_the_dense_backbones_maps_at_any_size(tmp_path, golden, name, family,
                                                                  arch):
    """``features_only`` from a released classifier checkpoint: the four maps equal those
    of our dense backbone (``out_indices=(0, 1, 2, 3)``) initialised from the converted
    checkpoint, at 224, 256 and an odd size."""
    from mmscope.converters.engine import convert_to_mmscope
    shapes, _ = golden
    path = _released_file(tmp_path, shapes, family, arch)
    feats = timm.create_model(
        name, features_only=True, pretrained=True, pretrained_cfg_overlay=dict(file=path)).eval()
    spec = get_family(family)
    assert feats.feature_info.channels() == spec.widths(arch)
    assert feats.feature_info.reduction() == [4, 8, 16, 32]
    dense = spec.backbone(arch=arch, out_indices=(0, 1, 2, 3)).eval()
    sd = convert_to_mmscope(
        spec, synthesize(shapes[f'{family}-{arch}']), arch=arch, backbone_only=True).state_dict
    dense.load_state_dict(OrderedDict((k[len('backbone.'):], v) for k, v in sd.items()))
    for size in (224, 256, 97):
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            got, expected = feats(x), dense(x)
        assert [tuple(t.shape) for t in got] == [(1, c, -(-size // r), -(-size // r))
                                                 for c, r in zip(spec.widths(arch), (4, 8, 16, 32))]
        for g, e in zip(got, expected):
            assert torch.equal(g, e)
    some = timm.create_model(name, features_only=True, out_indices=(1, 3))
    assert some.feature_info.channels() == spec.widths(arch)[1::2]
    assert len(some(torch.randn(1, 3, 64, 64))) == 2


@pytest.mark.parametrize('name', ['scopevit_xtiny', 'scalable_vit_small'])
def test_forward_intermediates_of_a_classifier_gives_any_stage(name):
    """A classifier from ``create_model(name)`` returns any stage's map: the stage output
    of the same weights' dense backbone (ScopeViT: every stage has its norm; ScalableViT:
    a stage the classifier has no output norm for is the map before that norm)."""
    family, arch = NAMES[name]
    widths = get_family(family).widths(arch)
    model = timm.create_model(name).eval()
    feats = timm.create_model(name, features_only=True).eval()
    feats.model.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        dense = feats(x)
        assert torch.equal(final, model.forward_features(x))
        assert [tuple(m.shape) for m in maps] == [(1, c, 64 // r, 64 // r)
                                                  for c, r in zip(widths, (4, 8, 16, 32))]
        for i, (m, d) in enumerate(zip(maps, dense)):
            if family == 'scalablevit' and i < 3:
                norm = feats.model.backbone.get_submodule(f'norm{i}')
                m = norm(m.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            assert torch.equal(m, d), i
        # order as asked, negative stages, the last n, intermediates only
        _, some = model.forward_intermediates(x, indices=[2, -4])
        assert torch.equal(some[0], maps[2]) and torch.equal(some[1], maps[0])
        assert all(
            torch.equal(a, b) for a, b in zip(
                model.forward_intermediates(x, indices=2, intermediates_only=True), maps[2:]))
    for bad in ([], -5, 5, [0, 4], [-5]):
        with pytest.raises(ValueError, match=r'has 4 stages; valid: None .* in \[-4, 3\]'):
            model.forward_intermediates(x, indices=bad)


def test_features_only_with_bad_out_indices_names_what_is_valid():
    for bad in ((), -5, (0, 4)):
        with pytest.raises(ValueError, match=r'out_indices .* has 4 stages; valid: .*list'):
            timm.create_model('scopevit_xtiny', features_only=True, out_indices=bad)


def test_timm_interface_head_pooling_and_pre_logits():
    model = timm.create_model(
        'scalable_vit_small', num_classes=7, drop_rate=0.1, drop_path_rate=0.1).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 2, 2)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 4096)
        assert torch.equal(model(x), model.forward_head(feats))
    assert model(x).shape == (2, 7)
    model.reset_classifier(0)
    assert model(x).shape == (2, 4096) and model.num_classes == 0
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    with pytest.raises(ValueError, match="only 'avg' or ''"):
        timm.create_model('scopevit_xtiny', global_pool='max')


def test_grad_checkpointing_changes_memory_not_values():
    torch.manual_seed(0)
    model = timm.create_model('scopevit_xtiny', num_classes=4).train()
    x = torch.randn(2, 3, 64, 64)

    def grads():
        model.zero_grad()
        torch.manual_seed(1)
        model(x).square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.set_grad_checkpointing(True)
    assert all(m.with_cp for m in model.backbone.modules() if hasattr(m, 'with_cp'))
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_layer_decay_in_timms_optimiser_factory_follows_the_backbones_layers():
    from timm.optim import create_optimizer_v2
    model = timm.create_model('scalable_vit_small')
    opt = create_optimizer_v2(model, 'adamw', lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    scale = {}
    for group in opt.param_groups:
        for p in group['params']:
            scale[p] = (group['lr_scale'], group['weight_decay'])
    named = dict(model.named_parameters())
    depth, num_layers = model.backbone.get_layer_depth(
        'backbone.stages.0.patch_embed.projection.weight', prefix='backbone.')
    assert depth == 0
    assert scale[named['backbone.stages.0.patch_embed.projection.weight']][0] == \
        0.5**(num_layers - 1)
    last_block = max((n for n in named if n.startswith('backbone.stages.3.blocks.')),
                     key=lambda n: int(n.split('.')[4]))
    assert scale[named[last_block]][0] == 0.5
    assert scale[named['head.layers.1.fc.weight']] == (1.0, 0.05)
    # the backbone's no-decay names (positional convs) and every norm/bias: no weight decay
    assert scale[named['backbone.stages.1.pos_conv.proj.weight']][1] == 0.0
    assert scale[named['backbone.norm3.weight']][1] == 0.0


def test_pretrained_cfg_is_our_configs_evaluation_transform():
    """input_size / crop_pct of each name = the classification config's test pipeline
    (resize the short edge to size / crop_pct, centre-crop size)."""
    from mmengine.config import Config
    for name, (family, arch) in NAMES.items():
        cfg = timm.create_model(name).pretrained_cfg
        pipeline = Config.fromfile(get_family(family).config_path(arch)).test_pipeline
        resize = next(t for t in pipeline if t['type'] == 'ResizeEdge')
        crop = next(t for t in pipeline if t['type'] == 'CenterCrop')
        assert cfg['input_size'][1:] == (crop['crop_size'], ) * 2, name
        assert int(crop['crop_size'] / cfg['crop_pct']) == resize['scale'], name
        assert resize['interpolation'] == cfg['interpolation'] == 'bicubic'


def test_without_timm_the_import_names_the_extra():
    code = ('import sys; sys.modules["timm"] = None\n'
            'try:\n    import mmscope.timm\nexcept ImportError as e:\n    print(e)')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd=ROOT,
                         timeout=120)
    assert 'pip install "mmscope[timm]"' in out.stdout, out.stdout + out.stderr
    # and `import mmscope` alone does not import timm
    code = 'import sys, mmscope, mmscope.models; print("timm" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd=ROOT,
                         timeout=120)
    assert out.stdout.strip() == 'False', out.stdout + out.stderr


def test_warnings_free_creation():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        timm.create_model('scopevit_xtiny', num_classes=5)


def test_pretrained_cfg_holds_every_field_timm_reads_with_the_released_values():
    """timm's tools read these fields (data config, ``pool_size`` = the unpooled feature
    size at ``input_size``, the stem and classifier names): all set, all true."""
    for name, (family, arch) in NAMES.items():
        cfg = timm.models.get_pretrained_cfg(name).to_dict()
        size = SIZE[f'{family}-{arch}']
        assert cfg['input_size'] == (3, size, size), name
        assert cfg['pool_size'] == (-(-size // 32), ) * 2, name
        assert cfg['crop_pct'] == {256: 0.9, 224: 0.875}[size], name
        assert cfg['crop_mode'] == 'center' and cfg['interpolation'] == 'bicubic'
        assert cfg['mean'] == timm.data.IMAGENET_DEFAULT_MEAN
        assert cfg['std'] == timm.data.IMAGENET_DEFAULT_STD
        assert cfg['num_classes'] == 1000 and cfg['fixed_input_size'] is False
        assert cfg['min_input_size'] == (3, 32, 32)
        assert cfg['first_conv'] == {
            'scopevit': 'backbone.stem.conv1',
            'scalablevit': 'backbone.stages.0.patch_embed.projection'
        }[family]
        classifier = {'scopevit': 'head.fc', 'scalablevit': 'head.layers.1.fc'}
        assert cfg['classifier'] == classifier[family]
        assert cfg['origin_url'] == 'https://' + get_family(family).official.repo
        # timm's data config takes them as they are
        data = timm.data.resolve_data_config({}, pretrained_cfg=cfg)
        assert data['input_size'] == (3, size, size) and data['crop_pct'] == cfg['crop_pct']


@pytest.mark.parametrize('name', ['scopevit_xtiny', 'scalable_vit_small'])
def test_unpooled_features_and_headless_models_have_pool_size(name):
    """forward_features at ``input_size`` is ``pool_size``; reset_classifier(0) pools to
    ``head_hidden_size``; ``global_pool=''`` (reset or at creation) keeps the map and runs
    the head at every position."""
    model = timm.create_model(name, num_classes=5).eval()
    cfg = model.pretrained_cfg
    x = torch.randn(1, *cfg['input_size'])
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, model.num_features, *cfg['pool_size'])
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0 and torch.equal(model(x), pre)
        model.reset_classifier(0, '')
        assert model(x).shape == (1, model.head_hidden_size, *cfg['pool_size'])
        model.reset_classifier(3)  # pooling unchanged: a logit map, the head per position
        logits = model(x)
        assert logits.shape == (1, 3, *cfg['pool_size'])
        i, j = 1, 2
        torch.testing.assert_close(logits[:, :, i, j], model.head(feats[:, :, i, j]))
        headless = timm.create_model(name, num_classes=0, global_pool='').eval()
        assert headless(x).shape == (1, model.head_hidden_size, *cfg['pool_size'])


@pytest.mark.parametrize('name', ['scopevit_xtiny', 'scalable_vit_small'])
def test_fx_features_and_a_traced_classifier_equal_eager(name):
    """timm's ``feature_cls='fx'`` (an FX graph of the model, cut at ``feature_info``'s
    modules) gives the ``features_only`` maps, and ``torch.fx.symbolic_trace`` of the
    classifier its logits, at a size that pads."""
    torch.manual_seed(0)
    getter = timm.create_model(name, features_only=True).eval()
    torch.manual_seed(0)
    graph = timm.create_model(name, features_only=True, feature_cls='fx').eval()
    assert type(graph).__name__ == 'FeatureGraphNet'
    x = torch.randn(1, 3, 97, 64)
    clf = timm.create_model(name, num_classes=3).eval()
    traced = torch.fx.symbolic_trace(clf)
    with torch.no_grad():
        expected, got = getter(x), graph(x)
        assert len(got) == 4
        # eager eval folds ScopeViT's BatchNorms into their convolutions, an FX graph runs
        # both layers: the same function up to fp32 rounding
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(traced(x), clf(x), rtol=1e-5, atol=1e-5)
