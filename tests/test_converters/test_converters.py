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
import glob
import logging
import os
import os.path as osp
import pickle
import runpy
import sys
import zipfile
from collections import OrderedDict

import pytest
import torch

import mmscope  # noqa: F401  (safe checkpoint loading in mmengine)
from mmscope.converters import ConversionError, read_checkpoint, sha256_of
from mmscope.converters.common import meta_device
from mmscope.converters.engine import get_layout, main
from mmscope.models.family import get_family

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTERS = osp.join(ROOT, 'tools', 'model_converters')
SPECS = {name: get_family(name) for name in ('scopevit', 'scalablevit')}
SCOPEVIT = SPECS['scopevit']
VARIANTS = [('scopevit', 'xtiny'), ('scopevit', 'tiny'), ('scopevit', 'small'),
            ('scalablevit', 'small'), ('scalablevit', 'base'), ('scalablevit', 'large')]


def _layout(family, arch, num_classes=None):
    spec = SPECS[family]
    return get_layout(spec.config_path(arch), num_classes)


def official_state_dict(family, arch, seed=0, scale=1.0, num_classes=None):
    """A random state dict in the official layout of ``family``/``arch``."""
    spec, layout = SPECS[family], _layout(family, arch, num_classes)
    numels = [torch.Size(s).numel() for s in layout.shapes.values()]
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(max(numels) + len(numels), generator=g) * scale
    sd = OrderedDict()
    for i, ((key, shape), n) in enumerate(zip(layout.shapes.items(), numels)):
        name = spec.key_rules.mmscope_to_official_key(key, layout.num_stages)
        if key.endswith('num_batches_tracked'):
            sd[name] = torch.tensor(i, dtype=torch.long)
        elif key.endswith('running_var'):
            sd[name] = base[i:i + n].abs().add(0.5).view(shape)
        else:
            sd[name] = base[i:i + n].view(shape)
    return sd


def convert(capsys, family, *argv):
    """Run the converter's command line in-process; returns (exit code, output)."""
    try:
        main(['--family', family, *map(str, argv)], prog='official_to_mmscope.py')
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_same_tensors(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.fixture(scope='module')
def xt_official(tmp_path_factory):
    """A ScopeViT-XT checkpoint in the official layout (timm ``state_dict``)."""
    path = str(tmp_path_factory.mktemp('official') / 'scopevit_xt.pth')
    sd = official_state_dict('scopevit', 'xtiny', seed=1)
    torch.save({'state_dict': sd, 'epoch': 10, 'arch': 'scopevit_xtiny'}, path)
    return path, sd


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
@pytest.mark.parametrize('form', ['bare', 'model', 'state_dict', 'state_dict_ema',
                                  'module.', 'model+module.', 'args'])
def test_wrapper_forms(tmp_path, capsys, xt_official, form):
    _, sd = xt_official
    module_sd = OrderedDict(('module.' + k, v) for k, v in sd.items())
    import argparse
    ckpt = {
        'bare': sd,
        'model': {'model': sd, 'optimizer': {'state': {}}, 'epoch': 3},
        'state_dict': {'state_dict': sd, 'metric': 80.1},
        'state_dict_ema': {'state_dict': {}, 'state_dict_ema': sd},
        'module.': module_sd,
        'model+module.': {'model': module_sd},
        # DeiT/timm training checkpoints store their command line as a Namespace
        'args': {'model': sd, 'args': argparse.Namespace(lr=1e-3, model='scopevit_xtiny')},
    }[form]
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'dst.pth')
    torch.save(ckpt, src)
    code, out = convert(capsys, 'scopevit', src, dst)
    assert code == 0, out
    expected = {SCOPEVIT.key_rules.official_to_mmscope_key(k, 4): v for k, v in sd.items()}
    assert_same_tensors(load(dst)['state_dict'], expected)


def test_ema_preferred_and_key_option(tmp_path, capsys, xt_official):
    _, sd = xt_official
    other = OrderedDict((k, v.clone() + 1 if v.is_floating_point() else v)
                        for k, v in sd.items())
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
    assert all(load(dst)['state_dict'][SCOPEVIT.key_rules.official_to_mmscope_key(k, 4)] == 0
               for k in counters)
    torch.save(OrderedDict((k, v) for k, v in sd.items() if k != counters[0]), src)
    _refused(capsys, 'scopevit', src, str(tmp_path / 'other.pth'), expect=('missing (1)', ))


# -------------------------------------------------------------------------------------
# refusals
# -------------------------------------------------------------------------------------
def _refused(capsys, family, src, dst, *extra, expect=()):
    code, out = convert(capsys, family, src, dst, *extra)
    assert code == 1, out
    assert out.startswith('error: ') or '\nerror: ' in out, out
    for text in expect:
        assert text in out, out
    assert not osp.exists(dst)
    assert not [f for f in os.listdir(osp.dirname(dst)) if f.startswith('.tmp-')]
    return out


def test_refuses_wrong_arch(tmp_path, capsys, xt_official):
    src, _ = xt_official
    dst = str(tmp_path / 'dst.pth')
    out = _refused(capsys, 'scopevit', src, dst, '--arch', 'small',
                   expect=('is not a ScopeViT-small checkpoint', 'shape mismatch',
                           'against small'))
    # xtiny and tiny share widths: depth tells them apart
    out = _refused(capsys, 'scopevit', src, dst, '--arch', 't',
                   expect=('ScopeViT-tiny', 'missing'))
    assert 'backbone.stages.0.blocks.1.mssa.norm1.weight' in out
    _refused(capsys, 'scopevit', src, dst, '--arch', 'huge', expect=('unknown ScopeViT arch',))
    # a ScopeViT checkpoint given to the ScalableViT converter
    _refused(capsys, 'scalablevit', src, dst,
             expect=('matches no ScalableViT variant', 'no mmscope counterpart',
                     'checkpoint of another model'))


def test_refuses_missing_and_extra_keys(tmp_path, capsys, xt_official):
    _, sd = xt_official
    dst = str(tmp_path / 'dst.pth')

    missing = OrderedDict(sd)
    del missing['blocks3.1.gsda.attn.qkv.weight']
    src = str(tmp_path / 'missing.pth')
    torch.save(missing, src)
    _refused(capsys, 'scopevit', src, dst,
             expect=('matches no ScopeViT variant', 'missing (1)',
                     'backbone.stages.2.blocks.1.gsda.attn.qkv.weight '
                     '(official: blocks3.1.gsda.attn.qkv.weight)'))

    for extra_key, text in (('foo.bar', 'foo.bar (no mmscope counterpart)'),
                            ('blocks2.7.mssa.norm1.weight',
                             'blocks2.7.mssa.norm1.weight -> '
                             'backbone.stages.1.blocks.7.mssa.norm1.weight')):
        extra = OrderedDict(sd)
        extra[extra_key] = torch.zeros(64)
        src = str(tmp_path / 'extra.pth')
        torch.save(extra, src)
        _refused(capsys, 'scopevit', src, dst, expect=('unexpected (1)', text))
        _refused(capsys, 'scopevit', src, dst, '--backbone-only', expect=(text,))

    headless = OrderedDict((k, v) for k, v in sd.items() if not k.startswith('head.'))
    src = str(tmp_path / 'headless.pth')
    torch.save(headless, src)
    _refused(capsys, 'scopevit', src, dst, expect=('head.fc.weight', '--backbone-only'))
    assert convert(capsys, 'scopevit', src, dst, '--backbone-only')[0] == 0


def test_refuses_non_checkpoints(tmp_path, capsys):
    dst = str(tmp_path / 'dst.pth')
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    _refused(capsys, 'scopevit', str(text), dst, expect=('not a PyTorch checkpoint',))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    _refused(capsys, 'scopevit', str(empty), dst, expect=('not a PyTorch checkpoint',))
    archive = str(tmp_path / 'archive.pth')
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr('readme.txt', 'hello')
    _refused(capsys, 'scopevit', archive, dst, expect=('not a readable PyTorch checkpoint',))
    a_list = str(tmp_path / 'list.pth')
    torch.save([torch.ones(1)], a_list)
    _refused(capsys, 'scopevit', a_list, dst, expect=('holds a list',))
    no_weights = str(tmp_path / 'no_weights.pth')
    torch.save({'epoch': 1, 'lr': 0.1}, no_weights)
    _refused(capsys, 'scopevit', no_weights, dst, expect=('no weights found',))
    _refused(capsys, 'scopevit', str(tmp_path / 'absent.pth'), dst, expect=('no such file',))
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
    torch.save({'state_dict': sd, 'payload': _SideEffect(marker)}, legacy,
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


# -------------------------------------------------------------------------------------
# the actual scripts
# -------------------------------------------------------------------------------------
def run_script(capsys, monkeypatch, name, *argv):
    """Run ``tools/model_converters/<name>`` as ``__main__`` (in this interpreter, which
    saves the start-up of a new one); returns (exit code, stdout, stderr)."""
    script = osp.join(CONVERTERS, name)
    monkeypatch.setattr(sys, 'argv', [script, *map(str, argv)])
    try:
        runpy.run_path(script, run_name='__main__')
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_command_line_scripts(tmp_path, capsys, monkeypatch, xt_official):
    src, _ = xt_official
    dst = str(tmp_path / 'dst.pth')
    script = 'official_to_mmscope.py'
    # the family is found from the keys
    code, out, err = run_script(capsys, monkeypatch, script, src, dst)
    assert code == 0, out + err
    for line in ('ScopeViT official -> mmscope (classifier)', 'variant: xtiny',
                 'tensors: 472', 'params: ', f'output: {dst}', f'sha256: {sha256_of(dst)}'):
        assert line in out
    code, out, err = run_script(capsys, monkeypatch, script, src, dst)
    assert code == 1 and 'exists' in err
    code, out, err = run_script(capsys, monkeypatch, script, src, str(tmp_path / 'other.pth'),
                                '--family', 'scalablevit')
    assert code == 1 and 'matches no ScalableViT variant' in err
    # back to the official layout: the family is found from our keys
    back = str(tmp_path / 'back.pth')
    code, out, err = run_script(capsys, monkeypatch, script, dst, back, '--to-official')
    assert code == 0 and 'ScopeViT mmscope -> official (classifier)' in out, out + err
    foreign = str(tmp_path / 'foreign.pth')
    torch.save({'state_dict': {'conv.weight': torch.zeros(2), 'fc.bias': torch.zeros(2)}},
               foreign)
    code, out, err = run_script(capsys, monkeypatch, script, foreign, str(tmp_path / 'f.pth'))
    assert code == 1 and 'cannot tell the model family' in err and '--family' in err
    assert not osp.exists(tmp_path / 'f.pth')
    code, out, err = run_script(capsys, monkeypatch, script, '--help')
    assert code == 0 and '--to-official' in out
    assert 'small (s)' in out and 'xtiny (xt/x-tiny)' in out


# -------------------------------------------------------------------------------------
# dense prediction: backbone-only files through init_cfg
# -------------------------------------------------------------------------------------
def _dense_config(family, kind):
    """(Config, how it was found) of the smallest variant's Mask R-CNN / UperNet."""
    from mmengine.config import Config
    pattern = {'mask-rcnn': 'mask-rcnn_{f}-{a}_fpn_1x_coco.py',
               'upernet': 'upernet_{f}-{a}_*ade20k*.py'}[kind]
    short = {'scopevit': 'xt', 'scalablevit': 's'}[family]
    found = sorted(glob.glob(osp.join(ROOT, 'configs', family,
                                      pattern.format(f=family, a=short))))
    if found:
        return Config.fromfile(found[0]), osp.relpath(found[0], ROOT)
    # no dense config for this family yet: the ScalableViT one with the backbone swapped
    base = sorted(glob.glob(osp.join(ROOT, 'configs', 'scalablevit',
                                     pattern.format(f='scalablevit', a='s'))))[0]
    cfg = Config.fromfile(base)
    widths = [32, 64, 128, 256]
    cfg.model.backbone = dict(
        type='mmscope.ScopeViT', arch='xtiny', out_indices=(0, 1, 2, 3),
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
         ('scalablevit', 'small', 'upernet', 'mmseg'),
         ('scopevit', 'xtiny', 'mask-rcnn', 'mmdet'),
         ('scopevit', 'xtiny', 'upernet', 'mmseg')]


@pytest.mark.parametrize('family,arch,kind,scope', DENSE,
                         ids=[f'{f}-{k}' for f, _, k, _ in DENSE])
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
        assert sorted(extras) == [f'backbone.norm{i}.{p}' for i in range(3)
                                  for p in ('bias', 'weight')]
        for k in extras:
            assert torch.equal(weights[k], torch.ones_like(weights[k]) if k.endswith(
                'weight') else torch.zeros_like(weights[k]))
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
    _refused(capsys, 'scalablevit', det, out_path, '--to-official',
             expect=('--backbone-only', 'neck.lateral_convs.0.conv.weight'))
    code, out = convert(capsys, 'scalablevit', det, out_path, '--to-official',
                        '--backbone-only')
    assert code == 0, out
    assert 'dropped 6 dense-only tensors' in out and 'ignored 2 non-backbone' in out
    back = load(out_path)['model']
    assert_same_tensors(back, OrderedDict((k, v) for k, v in sd.items()
                                          if not k.startswith('head.')))


# -------------------------------------------------------------------------------------
# publish_model
# -------------------------------------------------------------------------------------
def test_publish_model(tmp_path, capsys, monkeypatch):
    from mmengine.logging import HistoryBuffer
    losses = HistoryBuffer()
    for value in (1.0, 0.5):
        losses.update(value)
    sd = OrderedDict(w=torch.randn(3, 4), b=torch.randn(3))
    train = str(tmp_path / 'epoch_300.pth')
    torch.save({
        'meta': {'epoch': 300, 'iter': 1000, 'seed': 0, 'cfg': 'model = dict()',
                 'hook_msgs': {'best_score': 0.8}, 'dataset_meta': {'classes': ['a', 'b']}},
        'state_dict': sd,
        'optimizer': {'state': {0: {'exp_avg': torch.ones(3)}}, 'param_groups': [{'lr': 1}]},
        'param_schedulers': [{'last_epoch': 300}],
        'message_hub': {'log_scalars': {'train/loss': losses}},
    }, train)
    out = str(tmp_path / 'scopevit-xt_in1k.pth')
    code, stdout, stderr = run_script(capsys, monkeypatch, 'publish_model.py', train, out)
    assert code == 0, stdout + stderr
    published = glob.glob(str(tmp_path / 'scopevit-xt_in1k-*.pth'))
    assert len(published) == 1
    digest = sha256_of(published[0])
    assert osp.basename(published[0]) == f'scopevit-xt_in1k-{digest[:8]}.pth'
    assert digest in stdout
    ckpt = load(published[0])
    assert set(ckpt) == {'state_dict', 'meta'}  # no optimizer/schedulers/message hub
    assert_same_tensors(ckpt['state_dict'], sd)
    assert ckpt['meta']['dataset_meta'] == {'classes': ['a', 'b']}
    assert ckpt['meta']['epoch'] == 300 and 'hook_msgs' not in ckpt['meta']
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['epoch_300.pth', osp.basename(published[0])])
    # the same output again: refused without --force, replaced with it
    code, stdout, stderr = run_script(capsys, monkeypatch, 'publish_model.py', train, out)
    assert code == 1 and 'exists' in stderr
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['epoch_300.pth', osp.basename(published[0])])
    code, stdout, stderr = run_script(capsys, monkeypatch, 'publish_model.py', train, out,
                                      '--force')
    assert code == 0, stderr
    assert glob.glob(str(tmp_path / 'scopevit-xt_in1k-*.pth')) == published
