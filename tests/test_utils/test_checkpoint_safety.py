"""mmengine checkpoints load on torch >= 2.6 after ``import mmscope``, and nothing else runs."""
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch.utils.data import Dataset

import mmscope  # noqa: F401  (applies the patch)
from mmscope.utils.checkpoint import (TRUST_ENV, UntrustedCheckpointError, safe_load,
                                      trust_checkpoint)


class _Regressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, inputs, target=None, mode='loss'):
        out = self.fc(inputs)
        if mode == 'loss':
            return dict(loss=(out.squeeze(-1) - target).pow(2).mean())
        return out


class _Data(Dataset):
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(3, generator=g)
        return dict(inputs=x, target=x.sum())


def _collate(batch):
    return dict(
        inputs=torch.stack([b['inputs'] for b in batch]),
        target=torch.stack([b['target'] for b in batch]))


def _runner(work_dir, max_iters, **kw):
    return Runner(
        model=_Regressor(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=_Data(),
            batch_size=4,
            collate_fn=_collate,
            sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05)),
        param_scheduler=dict(
            type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        randomness=dict(seed=0),
        **kw)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('run'))
    runner = _runner(work_dir, 4)
    runner.train()
    return work_dir, runner


def test_plain_torch_load_refuses_mmengine_checkpoint(trained):
    """The problem being fixed: torch's default weights_only load refuses these files."""
    work_dir, _ = trained
    with pytest.raises(pickle.UnpicklingError):
        torch.load(osp.join(work_dir, 'iter_4.pth'))


def test_runner_checkpoint_loads_with_message_hub(trained):
    work_dir, runner = trained
    ckpt = _load_checkpoint(osp.join(work_dir, 'iter_4.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 4
    hub = ckpt['message_hub']
    assert hub['log_scalars']['train/loss'].mean() == pytest.approx(
        runner.message_hub.get_scalar('train/loss').mean())
    for k, v in runner.model.state_dict().items():
        torch.testing.assert_close(ckpt['state_dict'][k], v)


def test_resume_continues_iteration_and_schedule(trained, tmp_path):
    work_dir, _ = trained
    resumed = _runner(str(tmp_path), 6, resume=True, load_from=osp.join(work_dir, 'iter_4.pth'))
    resumed.train()
    assert resumed.iter == 6
    # LinearLR from 0.5 to 1.0 over 6 iterations continued from iteration 4
    lr = resumed.optim_wrapper.get_lr()['lr'][0]
    assert lr == pytest.approx(0.05, rel=1e-6)
    assert osp.isfile(osp.join(str(tmp_path), 'iter_6.pth'))


def test_load_from_via_runner(trained, tmp_path):
    work_dir, runner = trained
    fresh = _runner(str(tmp_path), 4, load_from=osp.join(work_dir, 'iter_2.pth'))
    fresh.load_or_resume()
    ref = _load_checkpoint(osp.join(work_dir, 'iter_2.pth'))['state_dict']
    for k, v in fresh.model.state_dict().items():
        torch.testing.assert_close(v, ref[k])


class _SideEffect:
    """Unpickling this creates a marker file: stands for arbitrary code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _write_malicious(path, marker):
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': _SideEffect(marker)}, path)


def test_malicious_pickle_refused_without_side_effect(tmp_path):
    ckpt, marker = str(tmp_path / 'evil.pth'), str(tmp_path / 'PWNED')
    _write_malicious(ckpt, marker)
    with pytest.raises(UntrustedCheckpointError) as info:
        _load_checkpoint(ckpt, map_location='cpu')
    msg = str(info.value)
    assert 'builtins.open' in msg or 'io.open' in msg, msg  # names the offending global
    assert TRUST_ENV in msg and '--trust-checkpoint' in msg  # and the opt-in
    assert not osp.exists(marker)


def test_malicious_pickle_refused_through_runner_resume(tmp_path):
    ckpt, marker = str(tmp_path / 'evil.pth'), str(tmp_path / 'PWNED')
    _write_malicious(ckpt, marker)
    runner = _runner(str(tmp_path / 'wd'), 2, resume=True, load_from=ckpt)
    with pytest.raises(UntrustedCheckpointError):
        runner.load_or_resume()
    assert not osp.exists(marker)


def test_getattr_gadget_refused(tmp_path):
    """``builtins.getattr`` is only honoured for HistoryBuffer statistics methods."""

    import numpy as np
    from mmengine.logging import HistoryBuffer

    for owner, attr in ((np.ndarray, 'tofile'), (HistoryBuffer, '__init__')):

        class Gadget:

            def __reduce__(self):
                return (getattr, (owner, attr))

        path = str(tmp_path / 'gadget.pth')
        torch.save({'x': Gadget()}, path)
        with pytest.raises(pickle.UnpicklingError, match=attr):
            safe_load(path)


def test_explicit_trust_opt_in(tmp_path, monkeypatch):
    ckpt, marker = str(tmp_path / 'trusted.pth'), str(tmp_path / 'MARK')
    _write_malicious(ckpt, marker)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UntrustedCheckpointError):
        safe_load(ckpt)
    trust_checkpoint(ckpt)
    assert osp.realpath(ckpt) in os.environ[TRUST_ENV].split(os.pathsep)
    safe_load(ckpt)  # trusted: fully unpickled, the side effect happens
    assert osp.exists(marker)


def test_plain_torch_load_is_untouched():
    """The fix is scoped to mmengine's loader: torch.load keeps torch's own defaults."""
    import mmengine.runner.checkpoint as mod
    assert torch.load.__module__ == 'torch.serialization'
    assert mod.torch.load is not torch.load


def test_patch_is_explicit_and_can_be_declined():
    """``import mmscope`` patches mmengine (one named function) and registers our model
    names; MMSCOPE_PATCH_MMENGINE=0 declines both, and unpatch_mmengine() undoes the patch
    in a running process."""
    code = ('import mmscope, mmengine.runner.checkpoint as m; '
            'from mmscope.utils import mmengine_is_patched, unpatch_mmengine, patch_mmengine; '
            'from mmscope.utils import model_names_registered as names; '
            'a = mmengine_is_patched(); unpatch_mmengine(); b = mmengine_is_patched(); '
            'import torch; c = m.torch is torch; patch_mmengine(); patch_mmengine(); '
            'print(a, b, c, mmengine_is_patched(), names())')
    for value, expected in ((None, 'True False True True True'),
                            ('0', 'False False True True False'), ('1',
                                                                   'True False True True True')):
        env = {k: v for k, v in os.environ.items() if k != 'MMSCOPE_PATCH_MMENGINE'}
        if value is not None:
            env['MMSCOPE_PATCH_MMENGINE'] = value
        out = subprocess.run([sys.executable, '-c', code],
                             capture_output=True,
                             text=True,
                             env=env,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split()[-5:] == expected.split(), (value, out.stdout)


def test_import_mmscope_is_cheap():
    code = ('import sys, mmscope, mmscope.registry; '
            'bad = [m for m in ("mmdet", "mmseg", "mmpretrain") if m in sys.modules]; '
            'print(bad); sys.exit(1 if bad else 0)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _granted_names():
    """``{qualified name: object}`` of every global the allowlist lets a pickle use."""
    from mmscope.utils.checkpoint import checkpoint_allowlist
    names = {}
    for entry in checkpoint_allowlist():
        obj, name = entry if isinstance(
            entry, tuple) else (entry, f'{entry.__module__}.{entry.__qualname__}')
        names[name] = obj
    return names


#: numpy 1.26 (pinned) pickles dtypes as instances of these classes
NUMPY_DTYPE_CLASSES = ('Bool', 'Int8', 'UInt8', 'Int16', 'UInt16', 'Int32', 'UInt32', 'Int64',
                       'UInt64', 'LongLong', 'ULongLong', 'Float16', 'Float32', 'Float64',
                       'LongDouble', 'Complex64', 'Complex128', 'CLongDouble', 'Object', 'Bytes',
                       'Str', 'Void', 'DateTime64', 'TimeDelta64')


def test_allowlist_is_exactly_what_checkpoints_need():
    """The exact set of globals granted, pinned: adding one (``eval``, a module's
    function) must be a reviewed change of this list."""
    from mmscope.utils.checkpoint import _restricted_getattr
    names = _granted_names()
    expected = {
        'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray', 'numpy.dtype',
        'numpy.core.multiarray._reconstruct', 'numpy.core.multiarray.scalar',
        'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar', 'builtins.getattr'
    } | {f'numpy.dtypes.{n}DType'
         for n in NUMPY_DTYPE_CLASSES}
    assert set(names) == expected, (sorted(set(names) - expected), sorted(expected - set(names)))
    # 'builtins.getattr' is the restricted stand-in, never the real one
    assert names['builtins.getattr'] is _restricted_getattr
    import builtins
    assert all(obj is not getattr(builtins, 'getattr') for obj in names.values())


class _Payload:
    """Pickles as ``func(*args)``: what a crafted checkpoint would run on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    import importlib
    import operator

    import numpy as np
    try:
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    write = f'open({marker!r}, "w").write("x")'
    module_of_allowed = _Payload(getattr, multiarray.scalar, '__self__')  # a numpy module
    return {
        'eval': (_Payload(eval, write), 'eval'),
        'exec': (_Payload(exec, write), 'exec'),
        '__import__': (_Payload(__import__, 'os'), '__import__'),
        'getattr on a module': (_Payload(getattr, module_of_allowed, 'fromfile'), '__self__'),
        'getattr on numpy': (_Payload(getattr, np.ndarray, 'tofile'), 'tofile'),
        'subprocess.Popen': (_Payload(subprocess.Popen, ['touch', marker]), 'Popen'),
        'importlib.import_module': (_Payload(importlib.import_module, 'os'), 'import_module'),
        'operator.attrgetter': (_Payload(operator.attrgetter, 'system'), 'attrgetter'),
        'os.system': (_Payload(os.system, f'touch {marker}'), 'system'),
    }


@pytest.mark.parametrize('kind', list(_payloads('m')))
def test_crafted_payloads_are_refused_without_side_effect(tmp_path, monkeypatch, kind):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = str(tmp_path / 'PWNED')
    payload, named = _payloads(marker)[kind]
    path = str(tmp_path / 'crafted.pth')
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': payload}, path)
    with pytest.raises(pickle.UnpicklingError) as info:
        safe_load(path)
    assert named in str(info.value), str(info.value)  # it names what it refused
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(path, map_location='cpu')  # mmengine's loader, patched
    assert not osp.exists(marker)


# --------------------------------------------------------------- files that are no checkpoint
def _no_checkpoints(tmp_path):
    """``{kind: path}``: a text file, an empty file, a checkpoint cut in half, one missing
    only its last byte (a near miss of a valid file) and a legacy-format one cut short."""
    good, legacy = tmp_path / 'good.pth', tmp_path / 'legacy.pth'
    torch.save({'state_dict': {'w': torch.arange(1000.)}}, good)
    torch.save({'state_dict': {
        'w': torch.arange(1000.)
    }},
               legacy,
               _use_new_zipfile_serialization=False)
    zipped, old = good.read_bytes(), legacy.read_bytes()
    assert old[0] == 0x80  # a raw pickle, as torch < 1.6 wrote
    files = {
        'text': b'not a checkpoint\n',
        'empty': b'',
        'half': zipped[:len(zipped) // 2],
        'last byte missing': zipped[:-1],
        'legacy cut short': old[:len(old) // 2]
    }
    paths = {}
    for kind, data in files.items():
        paths[kind] = tmp_path / (kind.replace(' ', '_') + '.pth')
        paths[kind].write_bytes(data)
    return good, paths


def test_files_that_are_no_checkpoint_are_named_so_trusted_or_not(tmp_path, monkeypatch):
    """Text, empty and truncated files are "not a PyTorch checkpoint": never reported as
    untrusted, never with advice to trust them, and trusting them gives the same answer
    (not a bare EOFError / ValueError from the full unpickler)."""
    from mmscope.utils.checkpoint import NotACheckpointError
    good, paths = _no_checkpoints(tmp_path)
    assert safe_load(str(good))['state_dict']['w'][-1] == 999  # the intact file loads
    for kind, path in paths.items():
        for trusted in (False, True):
            monkeypatch.delenv(TRUST_ENV, raising=False)
            if trusted:
                trust_checkpoint(str(path))
            for load in (safe_load, _load_checkpoint):
                with pytest.raises(NotACheckpointError) as info:
                    load(str(path))
                msg = str(info.value)
                assert str(path) in msg and 'PyTorch checkpoint' in msg, (kind, msg)
                assert 'trust' not in msg.lower() and TRUST_ENV not in msg, (kind, msg)
                assert not isinstance(info.value, UntrustedCheckpointError)
    assert 'an empty file' in str(
        pytest.raises(NotACheckpointError, safe_load, str(paths['empty'])).value)


def test_a_crafted_file_is_still_untrusted_not_damaged(tmp_path):
    """The near miss the other way: a well-formed file that needs a global (zip or legacy
    format) is refused as untrusted, with the opt-in, and nothing runs."""
    for fmt in (True, False):
        path, marker = str(tmp_path / f'evil{fmt}.pth'), str(tmp_path / 'PWNED')
        torch.save({
            'state_dict': {
                'w': torch.zeros(2)
            },
            'meta': _SideEffect(marker)
        },
                   path,
                   _use_new_zipfile_serialization=fmt)
        with pytest.raises(UntrustedCheckpointError, match=TRUST_ENV):
            safe_load(path)
        assert not osp.exists(marker)
