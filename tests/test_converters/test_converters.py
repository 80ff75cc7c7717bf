"""Checkpoint converters (official <-> mmscope) and publish_model.

Official-layout checkpoints are generated from our classifiers' keys through the reverse
mapping, with random values; every tensor is a view of one shared random buffer (distinct
offsets, so no two tensors are equal), which keeps even ScalableViT-L's files small.

The comparison of logits with the official code needs timm and einops, which mmscope does
not depend on: it runs only when ``MMSCOPE_OFFICIAL_CODE`` names a folder holding the
official ``scopevit.py`` (xuesongnie/ScopeViT ``models/scopevit.py``) and/or
``scalablevit.py`` (Yangr116/ScalableViT ``image_classification/models/scalablevit.py``),
with timm and einops importable (``MMSCOPE_OFFICIAL_DEPS`` is appended to ``sys.path``).
"""
import os
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict

import pytest
import torch
from converter_helpers import (SCOPEVIT, SPECS, VARIANTS, _refused, assert_same_tensors, convert,
                               load, official_state_dict)

import mmscope  # noqa: F401  (safe checkpoint loading in mmengine)
from mmscope.converters import ConversionError, read_checkpoint, sha256_of
from mmscope.converters.common import meta_device


# -------------------------------------------------------------------------------------
# round trips and strict loading
# -------------------------------------------------------------------------------------
@pytest.mark.parametrize('family,arch', VARIANTS, ids=[f'{f}-{a}' for f, a in VARIANTS])
def test_round_trip_and_strict_load(tmp_path, capsys, family, arch):
    """official -> mmscope -> official is the identity on every tensor, the variant is
    detected, and the mmscope file loads strictly into the config's classifier."""
    spec = SPECS[family]
    sd = official_state_dict(family, arch, seed=len(arch))
    src, ours, back = (str(tmp_path / n) for n in ('official.pth', 'ours.pth', 'back.pth'))
    torch.save({spec.official.wrapper: sd}, src)

    code, out = convert(capsys, family, src, ours)
    assert code == 0, out
    assert f'variant: {arch} ' in out and f'sha256: {sha256_of(ours)}' in out
    ckpt = load(ours)
    assert set(ckpt) == {'state_dict', 'meta'}
    meta = ckpt['meta']
    assert meta['arch'] == arch and meta['format'] == 'classifier'
    assert meta['config'] == 'configs/' + spec.cls_configs[arch]
    assert spec.official.repo in meta['converted_from']
    assert meta['source_sha256'] == sha256_of(src) and meta['num_classes'] == 1000
    converted = ckpt['state_dict']
    assert all(k.startswith(('backbone.', 'neck.', 'head.')) for k in converted)

    # strict load into the classifier built from the classification config (meta device:
    # shapes and names are checked, no memory is allocated)
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(spec.config_path(arch))
    with DefaultScope.overwrite_default_scope('mmpretrain'), meta_device():
        model = MODELS.build(cfg.model)
    model.load_state_dict(converted, strict=True, assign=True)

    code, out = convert(capsys, family, ours, back, '--to-official')
    assert code == 0, out
    back_ckpt = load(back)
    assert set(back_ckpt) == {spec.official.wrapper, 'meta'}
    assert_same_tensors(back_ckpt[spec.official.wrapper], sd)


@pytest.mark.parametrize('family,arch,size', [('scopevit', 'xtiny', 64),
                                              ('scalablevit', 'small', 64)])
def test_converted_classifier_runs(tmp_path, capsys, family, arch, size):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    spec = SPECS[family]
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'ours.pth')
    torch.save(official_state_dict(family, arch, scale=0.02), src)
    assert convert(capsys, family, src, dst)[0] == 0
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(spec.config_path(arch)).model)
    model.load_state_dict(load(dst)['state_dict'], strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, size, size), mode='tensor')
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


OFFICIAL = [('scopevit', 'xtiny', 256), ('scopevit', 'tiny', 256), ('scopevit', 'small', 256),
            ('scalablevit', 'small', 224), ('scalablevit', 'base', 224),
            ('scalablevit', 'large', 224)]


def _official_model(family, arch):
    """The released model; skipped only when no released code is configured at all. With
    ``MMSCOPE_OFFICIAL_CODE`` set, a missing file or import error fails the test."""
    from mmscope.converters.official_code import build_official_model
    if not os.environ.get('MMSCOPE_OFFICIAL_CODE'):
        pytest.skip('set MMSCOPE_OFFICIAL_CODE to a folder with the released scopevit.py '
                    'and scalablevit.py (docs/converters.md)')
    return build_official_model(family, arch)


@pytest.mark.parametrize('family,arch,size', OFFICIAL, ids=[f'{f}-{a}' for f, a, _ in OFFICIAL])
def test_logits_match_official(tmp_path, capsys, family, arch, size):
    """Official model with random weights vs the converted mmscope classifier."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    official = _official_model(family, arch)
    g = torch.Generator().manual_seed(0)
    sd = official.state_dict()
    for k, v in sd.items():  # every tensor random, at a scale that keeps logits O(1)
        if not v.is_floating_point():
            v.fill_(5)
        elif k.endswith('running_var'):
            v.copy_(torch.rand(v.shape, generator=g) + 0.5)
        elif k.endswith(('running_mean', 'bias')):
            v.copy_(torch.randn(v.shape, generator=g) * 0.05)
        elif k.endswith('gamma'):
            v.copy_(torch.rand(v.shape, generator=g) * 0.8 + 0.2)
        elif v.dim() == 1:
            v.copy_(1 + 0.1 * torch.randn(v.shape, generator=g))
        else:
            v.copy_(torch.randn(v.shape, generator=g) / v[0].numel()**0.5)
    official.eval()
    spec = SPECS[family]
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'ours.pth')
    torch.save({spec.official.wrapper: official.state_dict()}, src)
    code, out = convert(capsys, family, src, dst)
    assert code == 0 and f'variant: {arch} ' in out, out
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(spec.config_path(arch)).model)
    model.load_state_dict(load(dst)['state_dict'], strict=True)
    model.eval()
    x = torch.randn(2, 3, size, size, generator=g)
    with torch.no_grad():
        expected, got = official(x), model(x, mode='tensor')
    diff = (expected - got).abs().max().item()
    print(f'{family}-{arch}: max |logits difference| {diff:.2e}')
    assert diff <= 1e-4 and expected.std() > 0.1


# -------------------------------------------------------------------------------------
# input forms
# -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    'form', ['bare', 'model', 'state_dict', 'state_dict_ema', 'module.', 'model+module.', 'args'])
def test_wrapper_forms(tmp_path, capsys, xt_official, form):
    _, sd = xt_official
    module_sd = OrderedDict(('module.' + k, v) for k, v in sd.items())
    import argparse
    ckpt = {
        'bare': sd,
        'model': {
            'model': sd,
            'optimizer': {
                'state': {}
            },
            'epoch': 3
        },
        'state_dict': {
            'state_dict': sd,
            'metric': 80.1
        },
        'state_dict_ema': {
            'state_dict': {},
            'state_dict_ema': sd
        },
        'module.': module_sd,
        'model+module.': {
            'model': module_sd
        },
        # DeiT/timm training checkpoints store their command line as a Namespace
        'args': {
            'model': sd,
            'args': argparse.Namespace(lr=1e-3, model='scopevit_xtiny')
        },
    }[form]
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'dst.pth')
    torch.save(ckpt, src)
    code, out = convert(capsys, 'scopevit', src, dst)
    assert code == 0, out
    expected = {SCOPEVIT.key_rules.official_to_mmscope_key(k, 4): v for k, v in sd.items()}
    assert_same_tensors(load(dst)['state_dict'], expected)


def test_ema_preferred_and_key_option(tmp_path, capsys, xt_official):
    _, sd = xt_official
    other = OrderedDict((k, v.clone() + 1 if v.is_floating_point() else v) for k, v in sd.items())
    src = str(tmp_path / 'src.pth')
    torch.save({'state_dict': other, 'state_dict_ema': sd}, src)
    assert convert(capsys, 'scopevit', src, str(tmp_path / 'ema.pth'))[0] == 0
    assert convert(capsys, 'scopevit', src, str(tmp_path / 'raw.pth'), '--key',
                   'state_dict')[0] == 0
    ema, raw = load(str(tmp_path / 'ema.pth')), load(str(tmp_path / 'raw.pth'))
    assert ema['meta']['source_entry'] == 'state_dict_ema'
    assert raw['meta']['source_entry'] == 'state_dict'
    k = 'backbone.stem.conv1.weight'
    assert torch.equal(ema['state_dict'][k], sd['patch_embed1.projection.0.weight'])
    assert torch.equal(raw['state_dict'][k], other['patch_embed1.projection.0.weight'])


def test_other_class_count(tmp_path, capsys):
    """The official ScopeViT defaults to 10 classes: converted, with a note."""
    sd = official_state_dict('scopevit', 'xtiny', num_classes=10)
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'dst.pth')
    torch.save(sd, src)
    code, out = convert(capsys, 'scopevit', src, dst)
    assert code == 0, out
    assert 'model.head.num_classes=10' in out
    ckpt = load(dst)
    assert ckpt['meta']['num_classes'] == 10
    assert ckpt['state_dict']['head.fc.weight'].shape == (10, 256)
    back = str(tmp_path / 'back.pth')
    assert convert(capsys, 'scopevit', dst, back, '--to-official')[0] == 0
    assert_same_tensors(load(back)['state_dict'], sd)


def test_checkpoint_without_bn_counters(tmp_path, capsys, xt_official):
    """Checkpoints of old PyTorch versions have no num_batches_tracked: filled with 0.
    Some but not all counters missing is an incomplete checkpoint: refused."""
    _, sd = xt_official
    counters = [k for k in sd if k.endswith('num_batches_tracked')]
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'dst.pth')
    torch.save(OrderedDict((k, v) for k, v in sd.items() if k not in counters), src)
    code, out = convert(capsys, 'scopevit', src, dst)
    assert code == 0, out
    assert f'filled {len(counters)} missing BatchNorm num_batches_tracked' in out
    assert all(
        load(dst)['state_dict'][SCOPEVIT.key_rules.official_to_mmscope_key(k, 4)] == 0
        for k in counters)
    torch.save(OrderedDict((k, v) for k, v in sd.items() if k != counters[0]), src)
    _refused(capsys, 'scopevit', src, str(tmp_path / 'other.pth'), expect=('missing (1)', ))


# -------------------------------------------------------------------------------------
# refusals
# -------------------------------------------------------------------------------------
def test_refuses_wrong_arch(tmp_path, capsys, xt_official):
    src, _ = xt_official
    dst = str(tmp_path / 'dst.pth')
    out = _refused(
        capsys,
        'scopevit',
        src,
        dst,
        '--arch',
        'small',
        expect=('is not a ScopeViT-small checkpoint', 'shape mismatch', 'against small'))
    # xtiny and tiny share widths: depth tells them apart
    out = _refused(capsys, 'scopevit', src, dst, '--arch', 't', expect=('ScopeViT-tiny', 'missing'))
    assert 'backbone.stages.0.blocks.1.mssa.norm1.weight' in out
    _refused(capsys, 'scopevit', src, dst, '--arch', 'huge', expect=('unknown ScopeViT arch', ))
    # a ScopeViT checkpoint given to the ScalableViT converter
    _refused(
        capsys,
        'scalablevit',
        src,
        dst,
        expect=('matches no ScalableViT variant', 'no mmscope counterpart',
                'checkpoint of another model'))


def test_refuses_missing_and_extra_keys(tmp_path, capsys, xt_official):
    _, sd = xt_official
    dst = str(tmp_path / 'dst.pth')

    missing = OrderedDict(sd)
    del missing['blocks3.1.gsda.attn.qkv.weight']
    src = str(tmp_path / 'missing.pth')
    torch.save(missing, src)
    _refused(
        capsys,
        'scopevit',
        src,
        dst,
        expect=('matches no ScopeViT variant', 'missing (1)',
                'backbone.stages.2.blocks.1.gsda.attn.qkv.weight '
                '(official: blocks3.1.gsda.attn.qkv.weight)'))

    for extra_key, text in (('foo.bar', 'foo.bar (no mmscope counterpart)'),
                            ('blocks2.7.mssa.norm1.weight', 'blocks2.7.mssa.norm1.weight -> '
                             'backbone.stages.1.blocks.7.mssa.norm1.weight')):
        extra = OrderedDict(sd)
        extra[extra_key] = torch.zeros(64)
        src = str(tmp_path / 'extra.pth')
        torch.save(extra, src)
        _refused(capsys, 'scopevit', src, dst, expect=('unexpected (1)', text))
        _refused(capsys, 'scopevit', src, dst, '--backbone-only', expect=(text, ))

    headless = OrderedDict((k, v) for k, v in sd.items() if not k.startswith('head.'))
    src = str(tmp_path / 'headless.pth')
    torch.save(headless, src)
    _refused(capsys, 'scopevit', src, dst, expect=('head.fc.weight', '--backbone-only'))
    assert convert(capsys, 'scopevit', src, dst, '--backbone-only')[0] == 0


def test_refuses_non_checkpoints(tmp_path, capsys):
    dst = str(tmp_path / 'dst.pth')
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    _refused(capsys, 'scopevit', str(text), dst, expect=('not a PyTorch checkpoint', ))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    _refused(capsys, 'scopevit', str(empty), dst, expect=('not a PyTorch checkpoint', ))
    archive = str(tmp_path / 'archive.pth')
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr('readme.txt', 'hello')
    _refused(capsys, 'scopevit', archive, dst, expect=('not a readable PyTorch checkpoint', ))
    a_list = str(tmp_path / 'list.pth')
    torch.save([torch.ones(1)], a_list)
    _refused(capsys, 'scopevit', a_list, dst, expect=('holds a list', ))
    no_weights = str(tmp_path / 'no_weights.pth')
    torch.save({'epoch': 1, 'lr': 0.1}, no_weights)
    _refused(capsys, 'scopevit', no_weights, dst, expect=('no weights found', ))
    _refused(capsys, 'scopevit', str(tmp_path / 'absent.pth'), dst, expect=('no such file', ))
    with pytest.raises(ConversionError, match='not a PyTorch checkpoint'):
        read_checkpoint(str(text))


class _SideEffect:
    """Unpickling this creates a directory: the stand-in for arbitrary code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


def test_pickled_code_does_not_run(tmp_path, capsys, xt_official):
    _, sd = xt_official
    marker = str(tmp_path / 'side_effect_happened')
    src, dst = str(tmp_path / 'evil.pth'), str(tmp_path / 'dst.pth')
    torch.save({'state_dict': sd, 'payload': _SideEffect(marker)}, src)
    out = _refused(capsys, 'scopevit', src, dst, expect=('--trust', 'os.makedirs'))
    assert not osp.exists(marker)
    # also as a legacy (non-zip) pickle
    legacy = str(tmp_path / 'evil_legacy.pth')
    torch.save({
        'state_dict': sd,
        'payload': _SideEffect(marker)
    },
               legacy,
               _use_new_zipfile_serialization=False)
    _refused(capsys, 'scopevit', legacy, dst, expect=('--trust', ))
    assert not osp.exists(marker)
    # with a plain pickle (not torch.save) too
    raw = str(tmp_path / 'evil_raw.pth')
    with open(raw, 'wb') as f:
        pickle.dump({'payload': _SideEffect(marker)}, f, protocol=2)
    _refused(capsys, 'scopevit', raw, dst)
    assert not osp.exists(marker)
    # the explicit opt-in unpickles everything (and so runs the payload)
    code, out = convert(capsys, 'scopevit', src, dst, '--trust')
    assert code == 0, out
    assert osp.isdir(marker)


def test_existing_destination(tmp_path, capsys, xt_official):
    src, _ = xt_official
    dst = tmp_path / 'dst.pth'
    dst.write_bytes(b'precious')
    code, out = convert(capsys, 'scopevit', src, str(dst))
    assert code == 1 and 'exists' in out and '--force' in out
    assert dst.read_bytes() == b'precious'
    code, out = convert(capsys, 'scopevit', src, str(dst), '--force')
    assert code == 0, out
    assert load(str(dst))['meta']['arch'] == 'xtiny'
    assert sorted(os.listdir(tmp_path)) == ['dst.pth']  # no temporary file left
