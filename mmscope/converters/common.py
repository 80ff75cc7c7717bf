"""What every checkpoint converter shares: safe reading, unwrapping, atomic writing."""
import hashlib
import os
import os.path as osp
import pickle
import tempfile
import zipfile
from collections import OrderedDict
from typing import Dict, Optional

import torch

from ..utils.checkpoint import UntrustedCheckpointError, safe_load

#: Where official / timm-style training scripts keep the weights, in order of preference.
WRAPPER_KEYS = ('state_dict_ema', 'model_ema', 'model', 'state_dict', 'module')


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
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            head = f.read(2)
        # legacy (pre torch 1.6) checkpoints are raw pickles starting with PROTO 0x80
        if not head or head[0] != 0x80:
            raise ConversionError(
                f'{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a '
                'legacy pickle)')
    try:
        if trust:
            obj = torch.load(path, map_location='cpu', weights_only=False)
        else:
            obj = safe_load(path, map_location='cpu')
    except UntrustedCheckpointError as exc:
        raise ConversionError(f'{exc}\n(or pass --trust to the converter)') from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ConversionError(f'{path}: not a readable PyTorch checkpoint: {exc}') from None
    if not isinstance(obj, dict):
        raise ConversionError(
            f'{path}: holds a {type(obj).__name__}, expected a dict of tensors or a dict '
            f'with one of {WRAPPER_KEYS}')
    return obj


def unwrap_state_dict(ckpt: dict, prefer: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The weights inside ``ckpt``: bare, or under ``state_dict_ema``/``model``/... keys,
    with a leading ``module.`` (DataParallel/DDP) removed.

    Args:
        ckpt: the loaded checkpoint.
        prefer: take the weights under this key (e.g. ``'model'`` instead of the EMA).
    """
    if prefer is not None:
        if prefer not in ckpt:
            raise ConversionError(f'checkpoint has no {prefer!r} entry; it has '
                                  f'{sorted(ckpt)[:10]}')
        sd = ckpt[prefer]
    elif all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt
    else:
        sd = next((ckpt[k] for k in WRAPPER_KEYS
                   if isinstance(ckpt.get(k), dict) and ckpt[k]), None)
        if sd is None:
            raise ConversionError(
                f'no weights found: expected a dict of tensors or one under {WRAPPER_KEYS}, '
                f'got keys {sorted(ckpt)[:10]}')
    sd = OrderedDict(sd)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f'non-tensor entries in the weights: {bad[:10]}')
    if sd and all(k.startswith('module.') for k in sd):
        sd = OrderedDict((k[len('module.'):], v) for k, v in sd.items())
    return sd


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def write_checkpoint(obj: dict, dst: str, force: bool = False) -> str:
    """``torch.save`` to ``dst`` atomically (temporary file + rename); never overwrite an
    existing file unless ``force``. Returns the sha256 of the written file."""
    if osp.exists(dst) and not force:
        raise FileExistsError(f'{dst} exists; refusing to overwrite it (use --force)')
    if osp.isdir(dst):
        raise IsADirectoryError(f'{dst} is a directory')
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.pth', dir=out_dir)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return sha256_of(dst)


BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked')


def num_params(sd: Dict[str, torch.Tensor]) -> int:
    """Learnable parameters in a state dict (BatchNorm statistics excluded)."""
    return sum(v.numel() for k, v in sd.items() if not k.endswith(BUFFER_SUFFIXES))


def summary(variant: str, sd: Dict[str, torch.Tensor], dst: str, digest: str) -> str:
    return (f'variant: {variant}\ntensors: {len(sd)}\nparams: {num_params(sd):,}\n'
            f'output: {osp.abspath(dst)}\nsha256: {digest}')
