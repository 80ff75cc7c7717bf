"""The backbone contract, checked for every registered family (and a toy third one).

Every family's backbone keeps the same promises (``MMScopeBackbone``): arch names and
dicts with one error format, stage outputs of ``ceil(H / 2 ** (i + 2))`` at any size of
at least 32x32, ``out_indices`` / ``frozen_stages`` / ``norm_eval``, ``with_cp`` that
changes nothing but memory, the linear drop-path schedule, the ``attn_impl`` check,
state-dict round trips and ``Pretrained`` loading (a checkpoint that covers fewer than
half of the weights refused), the argument checks (drop path, empty batches, out_indices),
the layer ids of layer-wise learning-rate decay (as mmpretrain's constructor reads them)
and the no-decay keys, and building from every downstream library's registry by
``type='mmscope.<Name>'``. Each check is a function of a family;
the tests run them over ``families()``. The per-family test files keep only what is
specific to each attention.
"""
import copy
import io
import math
import os.path as osp
import sys

import pytest
import torch
from mmcv.cnn.bricks import DropPath

from mmscope.apis.libraries import LIBRARIES
from mmscope.models.family import families, get_family

TESTS = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(TESTS, 'fixtures'))

FAMILIES = [f.key for f in families()]
ODD_SIZES = [(32, 32), (33, 47), (97, 131)]


def small_arch(family):
    """The family's first arch with at most two blocks per stage (every block kind of
    the released arch, a fraction of the cost)."""
    arch = copy.deepcopy(family.backbone.arch_zoo[family.archs[0]])
    arch['depths'] = [min(d, 2) for d in arch['depths']]
    return arch


def build(family, **kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('arch', small_arch(family))
    model = family.backbone(**kwargs)
    model.init_weights()
    return model


def all_stages(family):
    return tuple(range(len(small_arch(family)['depths'])))


# ------------------------------------------------------------------------------- checks
def check_shapes(family):
    model = build(family, out_indices=all_stages(family)).eval()
    widths = small_arch(family)['embed_dims']
    for h, w in ODD_SIZES:
        with torch.no_grad():
            outs = model(torch.randn(2, 3, h, w))
        assert isinstance(outs, tuple) and len(outs) == len(widths)
        for i, out in enumerate(outs):
            s = 2**(i + 2)
            assert out.shape == (2, widths[i], math.ceil(h / s), math.ceil(w / s)), (h, w, i)
            assert out.is_contiguous() and torch.isfinite(out).all()
    for shape in [(1, 3, 31, 64), (1, 3, 64, 31), (3, 64, 64)]:
        with pytest.raises(ValueError, match='at least 32x32'):
            model(torch.randn(*shape))


def check_out_indices(family):
    n = len(all_stages(family))
    model = build(family, out_indices=-1)
    assert model.out_indices == (n - 1, )
    assert build(family, out_indices=0).out_indices == (0, )
    model = build(family, out_indices=(n - 1, 0)).eval()
    assert model.out_indices == (0, n - 1)  # sorted
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    widths = small_arch(family)['embed_dims']
    assert [o.shape[1] for o in outs] == [widths[0], widths[-1]]  # in stage order
    with pytest.raises(ValueError, match='out of range'):
        build(family, out_indices=(n, ))
    with pytest.raises(ValueError, match='out_indices'):
        build(family, out_indices=('a', ))
    with pytest.raises(ValueError, match='out_indices is empty: name at least one stage'):
        build(family, out_indices=())
    for twice in ((1, 1), (-1, 0, n - 1)):  # the same stage by index or from the end
        with pytest.raises(ValueError, match=rf'names stage {twice[-1] % n} twice'):
            build(family, out_indices=twice)


def check_arch_parsing(family):
    cls = family.backbone
    for alias, canonical in family.aliases.items():
        assert cls.parse_arch(alias) == cls.parse_arch(canonical) == cls.parse_arch(
            canonical.upper())
    for arch in family.archs:
        assert cls.parse_arch(arch)['embed_dims'] == family.widths(arch)
    with pytest.raises(ValueError, match=r'is not one of \[') as e:
        cls.parse_arch('no-such-arch')
    assert all(name in str(e.value) for name in family.arch_names())
    arch = small_arch(family)
    extra_key = sorted(cls.arch_keys)[-1]
    bad = {k: v for k, v in arch.items() if k != extra_key}
    bad['foo'] = [1]
    with pytest.raises(
            ValueError,
            match=rf"exactly the keys .*missing: \['{extra_key}'\], "
            r"unexpected: \['foo'\]"):
        cls.parse_arch(bad)
    with pytest.raises(ValueError, match='wrong length'):
        cls.parse_arch(dict(arch, embed_dims=arch['embed_dims'][:-1]))
    with pytest.raises(ValueError, match='per-stage list'):
        cls.parse_arch(dict(arch, depths=2))
    with pytest.raises(ValueError, match='stage 0: depths and embed_dims'):
        cls.parse_arch(dict(arch, depths=[0] + arch['depths'][1:]))
    with pytest.raises(TypeError):
        cls.parse_arch([1, 2])
    # the parsed settings are copies: building does not change the zoo
    before = copy.deepcopy(cls.arch_zoo)
    cls.parse_arch(family.archs[0])['depths'][0] = 99
    assert cls.arch_zoo == before
    with pytest.raises(ValueError, match='attention impl'):
        build(family, attn_impl='flash')


def _norms(model):
    return [m for m in model.modules() if isinstance(m, model.norm_eval_types)]


def check_frozen_stages_and_norm_eval(family):
    n = len(all_stages(family))
    frozen_counts = []
    for k in range(-1, n + 1):
        model = build(family, frozen_stages=k, out_indices=all_stages(family)).train()
        frozen = model._frozen_modules()
        frozen_params = {id(p) for m in frozen for p in m.parameters()}
        frozen_counts.append(len(frozen_params))
        for p in model.parameters():
            assert p.requires_grad == (id(p) not in frozen_params), k
        assert all(not m.training for f in frozen for m in f.modules()), k
        assert (k == -1) == (not frozen_params)
    assert frozen_counts == sorted(set(frozen_counts)), frozen_counts  # strictly growing
    with pytest.raises(ValueError, match='frozen_stages'):
        build(family, frozen_stages=n + 1)
    model = build(family, norm_eval=True).train()
    assert _norms(model) and not any(m.training for m in _norms(model))
    assert all(p.requires_grad for p in model.parameters())
    model = build(family).train()
    assert all(m.training for m in model.modules())


def _forward_backward(model, x):
    torch.manual_seed(1)  # drop path and dropout draw the same numbers in both runs
    outs = model(x)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return [o.detach() for o in outs], grads


def check_with_cp(family):
    model = build(family, drop_path_rate=0.2, out_indices=all_stages(family)).train()
    model_cp = build(
        family, drop_path_rate=0.2, out_indices=all_stages(family), with_cp=True).train()
    assert model_cp.with_cp and not model.with_cp
    model_cp.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 40, 56)
    outs, grads = _forward_backward(model, x)
    outs_cp, grads_cp = _forward_backward(model_cp, x)
    assert len(grads) == len(list(model.parameters()))
    for a, b in zip(outs, outs_cp):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert grads.keys() == grads_cp.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_cp[name], rtol=1e-6, atol=1e-6, msg=name)


def check_drop_path_schedule(family):
    arch = small_arch(family)
    rates = family.backbone.drop_path_rates(0.3, arch['depths'])
    assert len(rates) == sum(arch['depths'])
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.3)
    assert rates == pytest.approx(torch.linspace(0, 0.3, len(rates)).tolist())
    model = build(family, drop_path_rate=0.3)
    used = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert used and set(used) <= set(rates) and max(used) == pytest.approx(0.3)
    assert used == sorted(used)  # increasing with depth
    assert not any(isinstance(m, DropPath) for m in build(family).modules())
    # a probability of the last block: 1 would drop every path of it, > 1 is no probability
    for bad in (-0.1, 1.0, 1.5, '0.1', True):
        with pytest.raises(ValueError, match=r'drop_path_rate .* must be a number in \[0, 1\)'):
            build(family, drop_path_rate=bad)
    assert family.backbone.drop_path_rates(0.999, [1, 1])[-1] == pytest.approx(0.999)


def check_empty_batch(family):
    model = build(family).eval()
    with pytest.raises(ValueError, match=r'empty batch \(shape \(0, 3, 64, 64\)\)'):
        model(torch.zeros(0, 3, 64, 64))


def check_state_dict_round_trip_and_pretrained(family, tmp_path):
    model = build(family, out_indices=all_stages(family)).eval()
    with torch.no_grad():  # non-trivial values everywhere (biases, norms, statistics)
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(0.05 * torch.randn_like(t)).abs_() if t.dim() == 1 else None
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = build(family, out_indices=all_stages(family)).eval()
    other.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    x = torch.randn(1, 3, 40, 52)
    with torch.no_grad():
        for a, b in zip(model(x), other(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    ckpt = tmp_path / 'classifier.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in model.state_dict().items()}}, ckpt)
    loaded = build(
        family,
        out_indices=all_stages(family),
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.'))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        dep = family.backbone(arch=small_arch(family), pretrained=str(ckpt))
    assert dep.init_cfg == dict(type='Pretrained', checkpoint=str(ckpt))
    with pytest.raises(ValueError, match='same time'):
        family.backbone(
            arch=small_arch(family),
            pretrained='a.pth',
            init_cfg=dict(type='Pretrained', checkpoint='a.pth'))
    check_pretrained_coverage(family, model, tmp_path)


def check_pretrained_coverage(family, model, tmp_path):
    """A ``Pretrained`` checkpoint must cover the backbone: exactly half of the parameter
    tensors (name and shape) loads with a warning naming the missing keys; one fewer, no
    matching name, or matching names of other shapes (another variant) is refused, saying
    what was expected and what was found."""
    from mmscope.utils.checkpoint import CheckpointMismatchError
    params = [n for n, _ in model.named_parameters()]
    sd = model.state_dict()
    half = math.ceil(len(params) / 2)

    def load(weights, name):
        path = tmp_path / f'{name}.pth'
        torch.save({'state_dict': {'backbone.' + k: v for k, v in weights.items()}}, path)
        return build(
            family,
            out_indices=all_stages(family),
            init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))

    dropped = params[half:]  # the first half stays
    with pytest.warns(
            UserWarning,
            match=rf'only in part: {half} of its {len(params)} '
            rf'parameter tensors are loaded. Missing .*{dropped[0]}'):
        partial = load({k: v for k, v in sd.items() if k not in dropped}, 'half')
    assert all(torch.equal(partial.state_dict()[k], sd[k]) for k in params[:half])
    dropped = params[half - 1:]
    with pytest.raises(
            CheckpointMismatchError,
            match=rf'{half - 1} of its {len(params)} parameter tensors match'):
        load({k: v for k, v in sd.items() if k not in dropped}, 'under-half')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'0 of its .* Expected \(model\): '
            rf'{params[0]}.* Found \(checkpoint.*\): other\.{params[0]}'):
        load({'other.' + k: v for k, v in sd.items()}, 'other-names')
    wider = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) if v.dim() else v for k, v in sd.items()}
    with pytest.raises(CheckpointMismatchError, match=rf'Shape mismatches: {params[0]} '):
        load(wider, 'other-shapes')


def check_layer_depth(family):
    """Layer ids as mmpretrain's LearningRateDecayOptimWrapperConstructor reads them (stem
    0, blocks 1..N in forward order, the top N + 1 for what follows the last block and
    for everything outside the backbone), and that constructor on a classifier: each
    block's learning rate is ``rate`` times the next one's."""
    from mmengine.registry import DefaultScope
    from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
    from mmpretrain.registry import MODELS
    arch = small_arch(family)
    n = sum(arch['depths'])
    model = build(family, out_indices=all_stages(family))
    ids = model.layer_ids()
    names = [name for name, _ in model.named_parameters()]
    assert set(ids) == set(names)  # every parameter has a layer
    assert model.num_layers() == n + 2
    order = model._layer_order()
    blocks = [m for m, is_block in order if is_block]
    assert len(blocks) == n
    assert ids[names[0]] == 0  # the stem
    module_name = {id(m): k for k, m in model.named_modules()}

    def names_of(module):
        prefix = module_name[id(module)]
        return [f'{prefix}.{p}' if prefix else p for p, _ in module.named_parameters()]

    for k, block in enumerate(blocks, 1):
        assert {ids[name] for name in names_of(block)} == {k}
    in_order = [ids[name] for m, _ in order for name in names_of(m)]
    assert in_order == sorted(in_order)  # never decreasing along the forward pass
    last, last_is_block = order[-1]
    if not last_is_block:  # the last norm is on top, with the heads
        assert {ids[name] for name in names_of(last)} == {n + 1}
    assert model.get_layer_depth('head.fc.weight', 'backbone.') == (n + 1, n + 2)
    assert model.get_layer_depth('backbone.' + names[0], 'backbone.') == (0, n + 2)
    with pytest.raises(ValueError, match='has no parameter'):
        model.get_layer_depth('backbone.no.such.weight', 'backbone.')

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type=f'mmscope.{family.name}', arch=arch),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=3, in_channels=arch['embed_dims'][-1])))
    wrapper = LearningRateDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)), dict(layer_decay_rate=0.5))(
            classifier)
    lr = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    first, *_, last = [m for m, is_block in classifier.backbone._layer_order() if is_block]
    name_of = {id(p): k for k, p in classifier.named_parameters()}
    lr_first = {lr[name_of[id(p)]] for p in first.parameters()}
    lr_last = {lr[name_of[id(p)]] for p in last.parameters()}
    assert lr_first == {0.5**n} and lr_last == {0.5}  # a factor 0.5 ** (n - 1) apart
    assert lr['backbone.' + names[0]] == 0.5**(n + 1) and lr['head.fc.weight'] == 1.0


def check_no_decay_keys(family):
    """The backbone's no-decay keys name real parameters of every arch."""
    assert family.no_decay_keys == tuple(family.backbone.no_decay_keys)
    names = ['.' + n for n, _ in build(family).named_parameters()]
    for key in family.no_decay_keys:
        assert any(key in n for n in names), key


def check_registries(family):
    from mmengine.registry import DefaultScope

    from mmscope.registry import MODELS
    registries = [(lib.scope, lib.models()) for lib in LIBRARIES.values()]
    for scope, registry in registries + [('mmscope', MODELS)]:
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(
                dict(type=f'mmscope.{family.name}', arch=small_arch(family), out_indices=(0, )))
        assert type(model) is family.backbone, scope


CHECKS = [
    check_shapes, check_out_indices, check_arch_parsing, check_frozen_stages_and_norm_eval,
    check_with_cp, check_drop_path_schedule, check_empty_batch, check_layer_depth,
    check_no_decay_keys, check_registries
]


def run_contract(family, tmp_path):
    for check in CHECKS:
        check(family)
    check_state_dict_round_trip_and_pretrained(family, tmp_path)


# -------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('check', CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_contract(name, check):
    check(get_family(name))


@pytest.mark.parametrize('name', FAMILIES)
def test_contract_state_dict_and_pretrained(name, tmp_path):
    check_state_dict_round_trip_and_pretrained(get_family(name), tmp_path)


def test_both_released_families_are_registered():
    assert {'scopevit', 'scalablevit'} <= set(FAMILIES)
    for name in FAMILIES:
        family = get_family(name)
        assert get_family(family.name) is family
        assert get_family(f'mmscope.{family.name}') is family
        assert osp.isfile(family.config_path(family.archs[0]))
        assert family.no_decay_keys and family.official is not None
    with pytest.raises(ValueError, match='registered'):
        get_family('resnet')


@pytest.fixture
def toy_family(tmp_path):
    import toy_family
    family = toy_family.register(str(tmp_path))
    yield family
    toy_family.unregister()
    assert 'toyvit' not in [f.key for f in families()]


def test_a_third_family_is_its_backbone_and_descriptor(toy_family, tmp_path):
    """Registering a descriptor is all a new family needs: it keeps the contract, it is
    in the benchmark's model list (and builds from it), and the converter engine finds
    its variants and its key rules."""
    from mmscope.benchmark.specs import build_backbone, mmscope_models, parse_model
    from mmscope.converters.engine import convert_to_mmscope, detect_family

    assert 'toyvit' in [f.key for f in families()]
    run_contract(toy_family, tmp_path)
    assert {'toyvit-tiny', 'toyvit-t'} <= set(mmscope_models())
    spec = parse_model('toyvit-t')
    model = build_backbone(spec['library'], spec['cfg'])
    assert type(model).__name__ == 'ToyViT'
    # a "released" checkpoint in the toy's own naming converts to our classifier layout
    classifier = toy_family.backbone(arch='tiny', out_indices=(1, ))
    official = {f'net.{k}': v for k, v in classifier.state_dict().items()}
    official.update({'fc.weight': torch.zeros(10, 16), 'fc.bias': torch.zeros(10)})
    assert detect_family(official) is toy_family
    result = convert_to_mmscope(toy_family, official)
    assert result.variant == 'tiny' and 'head.fc.weight' in result.state_dict
