"""Safe checkpoint loading for mmengine 0.10.x on torch >= 2.6.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. Since torch 2.6 that means
``weights_only=True`` with torch's small default allowlist, which refuses the checkpoints
mmengine itself writes (they hold a ``MessageHub`` state with ``HistoryBuffer`` objects and
numpy arrays/scalars). Turning pickle execution back on (``weights_only=False``) would let
any checkpoint run arbitrary code, so instead :func:`safe_load` keeps ``weights_only=True``
and adds an allowlist of exactly the types such checkpoints contain.

A checkpoint that needs any other global is refused with :class:`UntrustedCheckpointError`,
which names the global and the explicit opt-in: list the file in the environment variable
``MMSCOPE_TRUSTED_CHECKPOINTS`` (paths separated by ``os.pathsep``), or pass
``--trust-checkpoint PATH`` to our tools. Only listed files are ever unpickled in full.

:func:`patch_mmengine` routes mmengine's checkpoint loading (``load_from``, ``--resume``,
``tools/test.py``, ``init_cfg=Pretrained``) through :func:`safe_load`. Importing ``mmscope``
applies it, the one change importing mmscope makes to another package; set
``MMSCOPE_PATCH_MMENGINE=0`` to import mmscope without it, and :func:`unpatch_mmengine`
undoes it.
"""
import io
import os
import os.path as osp
import pickle
import re
from typing import Any, Callable, List, Union

import numpy as np
import torch

TRUST_ENV = 'MMSCOPE_TRUSTED_CHECKPOINTS'


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a global outside the allowlist and was not trusted."""


def _history_buffer_cls():
    from mmengine.logging.history_buffer import HistoryBuffer
    return HistoryBuffer


def _restricted_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling.

    ``HistoryBuffer`` pickles its statistics methods as ``getattr(buffer, 'mean')``.
    Allowing the real ``getattr`` would let a pickle reach any attribute of anything
    (``getattr(os, 'system')``); this one only returns registered statistics methods of a
    ``HistoryBuffer``.
    """
    hb = _history_buffer_cls()
    allowed = set(getattr(hb, '_statistics_methods', {})) | {'min', 'max', 'mean', 'current'}
    if (isinstance(obj, hb) or obj is hb) and name in allowed:
        return getattr(obj, name)
    owner = obj.__qualname__ if isinstance(obj, type) else type(obj).__qualname__
    raise pickle.UnpicklingError(
        f'getattr({owner}, {name!r}) is not allowed in a checkpoint')


def checkpoint_allowlist() -> List[Union[Callable, tuple]]:
    """The globals that mmengine/mmdet/mmseg/mmpretrain checkpoints contain."""
    try:  # numpy 2.x
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allow: List[Union[Callable, tuple]] = [
        _history_buffer_cls(),
        np.ndarray,
        np.dtype,
        multiarray._reconstruct,
        multiarray.scalar,
        (_restricted_getattr, 'builtins.getattr'),
    ]
    # numpy >= 1.25 pickles dtypes as instances of these classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allow += [v for k, v in vars(dtypes).items()
                  if k.endswith('DType') and isinstance(v, type)]
    # the same numpy functions under their other module name (numpy 1.x <-> 2.x files)
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allow += [(multiarray._reconstruct, f'{mod}._reconstruct'),
                  (multiarray.scalar, f'{mod}.scalar')]
    return allow


def trusted_files() -> List[str]:
    """Real paths listed in ``MMSCOPE_TRUSTED_CHECKPOINTS``."""
    value = os.environ.get(TRUST_ENV, '')
    return [osp.realpath(p) for p in value.split(os.pathsep) if p.strip()]


def trust_checkpoint(path: str) -> None:
    """Add ``path`` to ``MMSCOPE_TRUSTED_CHECKPOINTS`` for this process and its children."""
    files = os.environ.get(TRUST_ENV, '')
    os.environ[TRUST_ENV] = os.pathsep.join([p for p in (files, path) if p])


def _is_trusted(f) -> bool:
    return isinstance(f, (str, os.PathLike)) and osp.realpath(f) in trusted_files()


def _offending_global(message: str) -> str:
    for pattern in (r'Unsupported global: GLOBAL ([\w\.]+)', r'GLOBAL ([\w\.]+)',
                    r'(getattr\([\w\.]+, \'\w+\'\))',
                    r"global '([\w\.]+)'", r'([\w\.]+) was not an allowed global'):
        m = re.search(pattern, message)
        if m:
            return m.group(1)
    return '<unknown: see the message below>'


def _unpickler_detail(message: str) -> str:
    """The part of torch's message that says what was refused (not its advice)."""
    detail = message.split('WeightsUnpickler error:', 1)[-1]
    paragraphs = [p.strip() for p in detail.split('\n\n') if p.strip()]
    keep = [p for p in paragraphs
            if not p.startswith(('Weights only load failed', 'Check the documentation'))]
    return ' '.join(keep) or message.strip()


def safe_load(f, map_location=None, **kwargs) -> Any:
    """``torch.load`` with ``weights_only=True`` plus :func:`checkpoint_allowlist`.

    Files listed in ``MMSCOPE_TRUSTED_CHECKPOINTS`` are loaded in full
    (``weights_only=False``). Anything else that needs an unlisted global raises
    :class:`UntrustedCheckpointError` before any of its code can run.
    """
    kwargs.pop('weights_only', None)
    if _is_trusted(f):
        return torch.load(f, map_location=map_location, weights_only=False, **kwargs)
    try:
        with torch.serialization.safe_globals(checkpoint_allowlist()):
            return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        name = _offending_global(str(exc))
        where = f if isinstance(f, (str, os.PathLike)) else '<stream>'
        raise UntrustedCheckpointError(
            f'Refusing to load checkpoint {where}: it needs the global `{name}`, which is '
            'not in mmscope\'s allowlist of checkpoint types, and unpickling it could run '
            'arbitrary code. If you trust this file, opt in explicitly with '
            f'`export {TRUST_ENV}={osp.realpath(where) if where != "<stream>" else "PATH"}` '
            '(several files separated by ":") or `--trust-checkpoint PATH` in mmscope\'s '
            f'tools.\nDetail: {_unpickler_detail(str(exc))}') from None


class _TorchWithSafeLoad:
    """Proxy for the ``torch`` module inside mmengine modules whose ``load`` is safe."""

    def __init__(self, module):
        self._module = module

    def load(self, f, map_location=None, *args, **kwargs):
        if isinstance(f, (bytes, bytearray)):
            f = io.BytesIO(f)
        return safe_load(f, map_location, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)


def safe_load_url(url: str, model_dir: str = None, map_location=None,
                  progress: bool = True, **kwargs) -> Any:
    """Download ``url`` into torch's hub cache (once) and :func:`safe_load` it.

    Replaces ``torch.hub.load_state_dict_from_url``, which mmengine uses for URLs and
    which defaults to ``weights_only=False``.
    """
    from urllib.parse import urlparse

    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.exists(cached):
        download_url_to_file(url, cached, None, progress=progress)
    return safe_load(cached, map_location=map_location)


#: Set to ``0`` to import mmscope without :func:`patch_mmengine` (nor the ``mmscope::``
#: config bases of :func:`mmscope.utils.configs.register_config_bases`).
PATCH_ENV = 'MMSCOPE_PATCH_MMENGINE'
_ORIGINAL = {}


def patch_mmengine() -> None:
    """Make mmengine's checkpoint loading go through :func:`safe_load`.

    ``import mmscope`` calls this (unless ``MMSCOPE_PATCH_MMENGINE=0``), so it also
    applies to configs that load mmscope through ``custom_imports``. It is needed on
    torch >= 2.6, where mmengine 0.10.7's ``torch.load`` calls refuse mmengine's own
    checkpoints (see the module doc). Inside ``mmengine.runner.checkpoint`` (local files,
    object stores, ``open-mmlab://``, ``mmcls://``, URLs) every ``torch.load`` becomes
    :func:`safe_load` and ``load_url`` becomes :func:`safe_load_url`. ``torch.load``
    itself, and so every other caller, keeps torch's own behaviour. Idempotent;
    :func:`unpatch_mmengine` undoes it.
    """
    import mmengine.runner.checkpoint as ckpt_module
    if not isinstance(ckpt_module.torch, _TorchWithSafeLoad):
        _ORIGINAL.setdefault('torch', ckpt_module.torch)
        _ORIGINAL.setdefault('load_url', ckpt_module.load_url)
        ckpt_module.torch = _TorchWithSafeLoad(ckpt_module.torch)
    ckpt_module.load_url = safe_load_url


def unpatch_mmengine() -> None:
    """Give mmengine its own checkpoint loading back (the opposite of
    :func:`patch_mmengine`; nothing happens if it was not patched)."""
    import mmengine.runner.checkpoint as ckpt_module
    if isinstance(ckpt_module.torch, _TorchWithSafeLoad):
        ckpt_module.torch = _ORIGINAL.get('torch', torch)
        ckpt_module.load_url = _ORIGINAL.get('load_url', ckpt_module.load_url)


def mmengine_is_patched() -> bool:
    """Whether mmengine's checkpoint loading goes through :func:`safe_load` now."""
    import mmengine.runner.checkpoint as ckpt_module
    return isinstance(ckpt_module.torch, _TorchWithSafeLoad)


__all__ = [
    'PATCH_ENV', 'TRUST_ENV', 'UntrustedCheckpointError', 'checkpoint_allowlist',
    'mmengine_is_patched', 'patch_mmengine', 'safe_load', 'safe_load_url',
    'trust_checkpoint', 'trusted_files', 'unpatch_mmengine'
]
