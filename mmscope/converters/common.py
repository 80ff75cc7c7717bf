"""What every checkpoint converter shares: safe reading, unwrapping, atomic writing."""
import argparse
import contextlib
import hashlib
import os
import os.path as osp
import pickle
import tempfile
from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import torch

from ..utils.checkpoint import (NotACheckpointError, UntrustedCheckpointError,
                                check_checkpoint_file, safe_load)

#: Where official / timm-style training scripts keep the weights, in order of preference.
WRAPPER_KEYS = ('state_dict_ema', 'model_ema', 'model', 'state_dict', 'module')

#: Extra types allowed (on top of :func:`mmscope.utils.checkpoint.checkpoint_allowlist`)
#: when a converter reads a checkpoint: timm's ``train.py`` and DeiT-style ``main.py``
#: (the official ScopeViT / ScalableViT training scripts) store their command line as an
#: ``argparse.Namespace`` under ``args``. A Namespace is a plain attribute container whose
#: values are themselves checked by the ``weights_only`` unpickler.
CONVERTER_SAFE_GLOBALS = [argparse.Namespace]


class ConversionError(ValueError):
    """A checkpoint cannot be converted (wrong variant, missing or extra keys ...)."""


def read_checkpoint(path: str, trust: bool = False) -> dict:
    """Load a checkpoint file safely (``weights_only``) with a clear error otherwise.

    Args:
        path: the file.
        trust: unpickle it fully (only for files you trust).
    """
    if not osp.isfile(path):
        raise ConversionError(f'{path}: no such file')
    try:
        check_checkpoint_file(path)
        if trust:
            obj = torch.load(path, map_location='cpu', weights_only=False)
        else:
            with torch.serialization.safe_globals(CONVERTER_SAFE_GLOBALS):
                obj = safe_load(path, map_location='cpu')
    except UntrustedCheckpointError as exc:
        raise ConversionError(f'{exc}\n(or pass --trust to the converter)') from None
    except NotACheckpointError as exc:
        raise ConversionError(str(exc)) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ConversionError(f'{path}: not a readable PyTorch checkpoint: {exc}') from None
    if not isinstance(obj, dict):
        raise ConversionError(
            f'{path}: holds a {type(obj).__name__}, expected a dict of tensors or a dict '
            f'with one of {WRAPPER_KEYS}')
    return obj


def find_state_dict(ckpt: dict,
                    prefer: Optional[str] = None) -> Tuple[str, Dict[str, torch.Tensor]]:
    """Locate the weights inside ``ckpt``; returns ``(where, state_dict)``.

    ``where`` is ``'<bare>'`` for a plain dict of tensors, else the entry used: ``prefer``
    when given, otherwise the first non-empty dict among :data:`WRAPPER_KEYS` (EMA weights
    first). A leading ``module.`` (DataParallel/DDP) on every key is removed.

    Args:
        ckpt: the loaded checkpoint.
        prefer: take the weights under this key (e.g. ``'model'`` instead of the EMA).
    """
    if prefer is not None:
        if prefer not in ckpt:
            raise ConversionError(f'checkpoint has no {prefer!r} entry; it has '
                                  f'{sorted(map(str, ckpt))[:10]}')
        if not isinstance(ckpt[prefer], dict):
            raise ConversionError(f'checkpoint entry {prefer!r} is a '
                                  f'{type(ckpt[prefer]).__name__}, not a state dict')
        where, sd = prefer, ckpt[prefer]
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        where, sd = '<bare>', ckpt
    else:
        where = next((k for k in WRAPPER_KEYS if isinstance(ckpt.get(k), dict) and ckpt[k]), None)
        if where is None:
            raise ConversionError(
                f'no weights found: expected a dict of tensors or one under {WRAPPER_KEYS}, '
                f'got keys {sorted(map(str, ckpt))[:10]}')
        sd = ckpt[where]
    sd = OrderedDict(sd)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f'non-tensor entries in the weights ({where}): {bad[:10]}')
    if sd and all(isinstance(k, str) and k.startswith('module.') for k in sd):
        sd = OrderedDict((k[len('module.'):], v) for k, v in sd.items())
    return where, sd


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_checkpoint(obj: dict, dst: str, force: bool = False) -> str:
    """``torch.save`` to ``dst`` atomically (temporary file + rename); never overwrite an
    existing file unless ``force``. Returns the sha256 of the written file.

    The bytes do not depend on the file name (torch names the archive after the path it
    is given; here it is given an open file), so equal content gives an equal hash.
    """
    if osp.isdir(dst):
        raise IsADirectoryError(f'{dst} is a directory')
    if osp.lexists(dst) and not force:
        raise FileExistsError(f'{dst} exists; refusing to overwrite it (use --force)')
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.pth', dir=out_dir)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600 files
        if force:
            os.replace(tmp, dst)
        else:
            try:  # a hard link fails if dst appeared meanwhile: no race with other writers
                os.link(tmp, dst)
            except FileExistsError:
                raise FileExistsError(
                    f'{dst} exists; refusing to overwrite it (use --force)') from None
            except OSError:  # no hard links on this file system
                if osp.lexists(dst):
                    raise FileExistsError(
                        f'{dst} exists; refusing to overwrite it (use --force)') from None
                os.replace(tmp, dst)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)
    return sha256_of(dst)


BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked')


def num_params(sd: Dict[str, torch.Tensor]) -> int:
    """Learnable parameters in a state dict (BatchNorm statistics excluded)."""
    return sum(v.numel() for k, v in sd.items() if not k.endswith(BUFFER_SUFFIXES))


@contextlib.contextmanager
def meta_device() -> Iterator[None]:
    """Build models without allocating or initialising their weights (key/shape checks).

    The backbones create their stochastic-depth schedules with an explicit CPU device, so
    plain ``torch.device('meta')`` suffices.
    """
    with torch.device('meta'):
        yield
