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
A file that is no checkpoint at all (text, empty, truncated, damaged) is refused with
:class:`NotACheckpointError`, trusted or not: trusting it would not make it readable.

:func:`match_weights` is the one check of what a checkpoint covers: a backbone's
``Pretrained`` initialisation and ``tools/test.py`` refuse a checkpoint that matches
(name and shape) fewer than :data:`MIN_MATCHED_FRACTION` of the model's parameter
tensors, and warn, naming the keys, about a partial match.

:func:`patch_mmengine` routes mmengine's checkpoint loading (``load_from``, ``--resume``,
``tools/test.py``, ``init_cfg=Pretrained``) through :func:`safe_load`. Importing ``mmscope``
applies it (with the ``mmscope::`` config bases and the model names, the changes importing
mmscope makes to other packages, each one named function); set
``MMSCOPE_PATCH_MMENGINE=0`` to import mmscope without it, and :func:`unpatch_mmengine`
undoes it.
"""
import io
import os
import os.path as osp
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from typing import Any, Callable, List, Mapping, Union

import numpy as np
import torch

TRUST_ENV = 'MMSCOPE_TRUSTED_CHECKPOINTS'


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a global outside the allowlist and was not trusted."""


class NotACheckpointError(ValueError):
    """A file that is not a (readable) PyTorch checkpoint: text, empty, truncated..."""


class CheckpointMismatchError(ValueError):
    """A checkpoint that leaves most of a model's weights unloaded."""


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
    raise pickle.UnpicklingError(f'getattr({owner}, {name!r}) is not allowed in a checkpoint')


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
        allow += [v for k, v in vars(dtypes).items() if k.endswith('DType') and isinstance(v, type)]
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


#: What torch's unpicklers say about broken data (nothing refused).
_DAMAGE_MESSAGES = ('Unsupported operand', 'String is too long', 'Memo value not found',
                    'unsupported persistent id', 'truncated', 'invalid load key')


def _offending_global(message: str):
    """What an unpickler error says it refused (a global, a getattr, or an unknown
    refusal), or None when it only says that the data is broken."""
    for pattern in (r'Unsupported global: GLOBAL ([\w\.]+)', r'GLOBAL ([\w\.]+)',
                    r'(getattr\([\w\.]+, \'\w+\'\))', r"global '([\w\.]+)'",
                    r'([\w\.]+) was not an allowed global'):
        m = re.search(pattern, message)
        if m:
            return m.group(1)
    if not message.strip() or any(d in message for d in _DAMAGE_MESSAGES):
        return None
    return '<unknown: see the message below>'


def _unpickler_detail(message: str) -> str:
    """The part of torch's message that says what was refused (not its advice)."""
    detail = message.split('WeightsUnpickler error:', 1)[-1]
    paragraphs = [p.strip() for p in detail.split('\n\n') if p.strip()]
    keep = [
        p for p in paragraphs
        if not p.startswith(('Weights only load failed', 'Check the documentation'))
    ]
    return ' '.join(keep) or message.strip()


def check_checkpoint_file(path: Union[str, os.PathLike]) -> None:
    """Raise :class:`NotACheckpointError` unless ``path`` is a ``torch.save`` zip archive
    or a legacy (pre torch 1.6) pickle, which starts with the pickle PROTO opcode 0x80.

    Args:
        path: the file to check.
    """
    if zipfile.is_zipfile(path):
        return
    with open(path, 'rb') as f:
        head = f.read(2)
    if not head or head[0] != 0x80:
        kind = 'an empty file' if not head else 'neither a torch.save zip archive nor a ' \
            'legacy pickle (a text file, a truncated download, another format?)'
        raise NotACheckpointError(f'{path}: not a PyTorch checkpoint ({kind})')


#: Errors of ``torch.load`` on a file of the right kind whose content is damaged
#: (truncated pickles, broken archives); an ``UnpicklingError`` that names no global
#: is one too.
_DAMAGED = (EOFError, KeyError, IndexError, ValueError, zipfile.BadZipFile)


def _not_readable(where, exc: BaseException) -> NotACheckpointError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
    return NotACheckpointError(
        f'{where}: not a readable PyTorch checkpoint ({type(exc).__name__}'
        f'{": " + detail if detail else ""}); the file is truncated or damaged')


def _is_damage(exc: BaseException) -> bool:
    if isinstance(exc, _DAMAGED):
        return True
    return isinstance(exc, RuntimeError) and any(
        m in str(exc) for m in ('PytorchStreamReader', 'unexpected EOF', 'corrupted'))


def safe_load(f, map_location=None, **kwargs) -> Any:
    """``torch.load`` with ``weights_only=True`` plus :func:`checkpoint_allowlist`.

    Files listed in ``MMSCOPE_TRUSTED_CHECKPOINTS`` are loaded in full
    (``weights_only=False``). Anything else that needs an unlisted global raises
    :class:`UntrustedCheckpointError` before any of its code can run. A file that is not
    a readable checkpoint (:func:`check_checkpoint_file`, or damaged inside) raises
    :class:`NotACheckpointError`, trusted or not.
    """
    kwargs.pop('weights_only', None)
    is_path = isinstance(f, (str, os.PathLike))
    where = f if is_path else '<stream>'
    if is_path:
        check_checkpoint_file(f)
    if _is_trusted(f):
        try:
            return torch.load(f, map_location=map_location, weights_only=False, **kwargs)
        except (pickle.UnpicklingError, *_DAMAGED, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and not _is_damage(exc):
                raise
            raise _not_readable(where, exc) from None
    try:
        with torch.serialization.safe_globals(checkpoint_allowlist()):
            return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        name = _offending_global(str(exc))
        if name is None:  # no global was refused: the data itself is broken
            raise _not_readable(where, exc) from None
        raise UntrustedCheckpointError(
            f'Refusing to load checkpoint {where}: it needs the global `{name}`, which is '
            'not in mmscope\'s allowlist of checkpoint types, and unpickling it could run '
            'arbitrary code. If you trust this file, opt in explicitly with '
            f'`export {TRUST_ENV}={osp.realpath(where) if where != "<stream>" else "PATH"}` '
            '(several files separated by ":") or `--trust-checkpoint PATH` in mmscope\'s '
            f'tools.\nDetail: {_unpickler_detail(str(exc))}') from None
    except (*_DAMAGED, RuntimeError) as exc:
        if not _is_damage(exc):
            raise
        raise _not_readable(where, exc) from None


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


def safe_load_url(url: str,
                  model_dir: str = None,
                  map_location=None,
                  progress: bool = True,
                  **kwargs) -> Any:
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


#: A checkpoint that matches (name and shape) fewer than this fraction of a model's
#: parameter tensors is refused (:class:`CheckpointMismatchError`): it is another
#: family's or variant's, or not meant for this model. Exactly half is enough (a partial
#: match, with a warning).
MIN_MATCHED_FRACTION = 0.5


def weights_of(checkpoint: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """The tensors a checkpoint holds for a model, named as mmengine loads them: its
    ``state_dict`` entry (else the checkpoint itself), a leading ``module.`` (DDP)
    removed, non-tensor entries left out.

    Args:
        checkpoint: a loaded checkpoint (a dict).
    """
    if not isinstance(checkpoint, Mapping):
        raise NotACheckpointError(f'a checkpoint must hold a dict of weights, got a '
                                  f'{type(checkpoint).__name__}')
    sd = checkpoint.get('state_dict', checkpoint)
    sd = sd if isinstance(sd, Mapping) else {}
    return OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in sd.items()
                       if isinstance(k, str) and isinstance(v, torch.Tensor))


def _examples(names, n: int = 5) -> str:
    names = list(names)
    shown = ', '.join(names[:n])
    return (shown + f', ... ({len(names)} in all)') if len(names) > n else (shown or 'none')


def match_weights(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor],
                  source: str) -> 'OrderedDict[str, torch.Tensor]':
    """The entries of ``state_dict`` that fit ``model`` (same name, same shape).

    Raises :class:`CheckpointMismatchError` when they cover fewer than
    :data:`MIN_MATCHED_FRACTION` of the model's parameter tensors, saying what was
    expected and what was found (examples of both, and the shape mismatches). A partial
    match warns (``UserWarning``) with the model's keys it leaves unloaded and the
    checkpoint's keys it does not use.

    Args:
        model: the model (or backbone) the weights are for.
        state_dict: the weights, named as in ``model.state_dict()``.
        source: what they come from, for the messages (``'backbone.* of a.pth'``).
    """
    own = model.state_dict()
    params = [n for n, _ in model.named_parameters()]
    fits = OrderedDict(
        (k, v) for k, v in state_dict.items() if k in own and tuple(v.shape) == tuple(own[k].shape))
    reshaped = [
        f'{k} {tuple(v.shape)} (model: {tuple(own[k].shape)})' for k, v in state_dict.items()
        if k in own and k not in fits
    ]
    missing = [k for k in own if k not in fits]
    unused = [k for k in state_dict if k not in own]
    matched = sum(n in fits for n in params)
    name = type(model).__name__
    if matched < MIN_MATCHED_FRACTION * len(params):
        raise CheckpointMismatchError(
            f'{source} does not fit the {name}: {matched} of its {len(params)} parameter '
            f'tensors match (name and shape; at least {MIN_MATCHED_FRACTION:.0%} must). '
            f'Expected (model): {_examples(own)}. Found (checkpoint, {len(state_dict)} '
            f'tensors): {_examples(state_dict)}. Shape mismatches: {_examples(reshaped)}. '
            'Is it a checkpoint of another family or variant, or of another model?')
    if missing or unused:
        warnings.warn(
            f'{source} fits the {name} only in part: {matched} of its {len(params)} '
            f'parameter tensors are loaded. Missing (left as initialised): '
            f'{_examples(missing, 10)}. Unused in the checkpoint: {_examples(unused, 10)}. '
            f'Shape mismatches: {_examples(reshaped, 10)}.',
            UserWarning,
            stacklevel=2)
    return fits


#: State-dict entries a checkpoint may lack without changing any result (counters).
_NOT_WEIGHTS = ('num_batches_tracked', )

#: What a checkpoint is checked for (:func:`check_weights`).
PURPOSES = ('evaluate', 'finetune')


def weight_coverage(model: torch.nn.Module,
                    state_dict: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, dict]':
    """How far ``state_dict`` covers each part of ``model``, a part being a top-level
    child (``backbone``, ``neck``, ``head``, ``decode_head``, ``roi_head``...): for each,
    ``total`` (its state-dict tensors), ``loaded`` (those the checkpoint has, same name
    and shape), ``missing`` (the names it lacks) and ``reshaped`` (``name (checkpoint
    shape) vs (model shape)``). Counters (``num_batches_tracked``) are left out.

    Args:
        model: the model the weights are for.
        state_dict: the weights, named as in ``model.state_dict()``.
    """
    parts: 'OrderedDict[str, dict]' = OrderedDict()
    for key, value in model.state_dict().items():
        if key.rsplit('.', 1)[-1] in _NOT_WEIGHTS:
            continue
        part = parts.setdefault(
            key.split('.', 1)[0], dict(total=0, loaded=0, missing=[], reshaped=[]))
        part['total'] += 1
        if key not in state_dict:
            part['missing'].append(key)
        elif tuple(state_dict[key].shape) != tuple(value.shape):
            part['reshaped'].append(f'{key} {tuple(state_dict[key].shape)} in the checkpoint, '
                                    f'{tuple(value.shape)} in the model')
        else:
            part['loaded'] += 1
    return parts


def describe_coverage(parts: Mapping[str, dict]) -> str:
    """One line per part: ``backbone: 40 of 40 loaded``, ``head: 0 of 2 loaded (2 of
    another shape: head.fc.weight (4, 256) in the checkpoint, (2, 256) in the model)``."""
    lines = []
    for name, p in parts.items():
        line = f'{name}: {p["loaded"]} of {p["total"]} loaded'
        notes = []
        if p['missing']:
            notes.append(f'{len(p["missing"])} missing: {_examples(p["missing"], 3)}')
        if p['reshaped']:
            notes.append(f'{len(p["reshaped"])} of another shape: '
                         f'{_examples(p["reshaped"], 2)}')
        lines.append(line + (f' ({"; ".join(notes)})' if notes else ''))
    return '\n  '.join(lines)


def check_weights(model: torch.nn.Module,
                  state_dict: Mapping[str, torch.Tensor],
                  source: str,
                  purpose: str = 'evaluate') -> 'OrderedDict[str, torch.Tensor]':
    """The one check of whether a checkpoint may be loaded into a whole model (testing,
    inference, export, fine-tuning); returns the entries of ``state_dict`` that fit.

    ``purpose='evaluate'`` (``tools/test.py``, inference, ONNX export): every tensor of
    the model must be loaded, with its shape; otherwise
    :class:`CheckpointMismatchError` names each part (backbone / neck / head...) with how
    many of its tensors load, and what to do. No result is computed with weights that
    were not loaded.

    ``purpose='finetune'`` (``load_from`` in training): a new head (another class count)
    is legitimate, so parts left unloaded are named in a ``UserWarning``; but a
    checkpoint that loads no tensor of the model, or less than its whole backbone, is
    refused (:class:`CheckpointMismatchError`): training would start from scratch.

    Args:
        model: the model (not wrapped).
        state_dict: the weights, named as in ``model.state_dict()`` (:func:`weights_of`).
        source: what they come from, for the messages (``'checkpoint a.pth'``).
        purpose: ``'evaluate'`` or ``'finetune'``.
    """
    if purpose not in PURPOSES:
        raise ValueError(f'purpose must be one of {PURPOSES}, got {purpose!r}')
    parts = weight_coverage(model, state_dict)
    own = model.state_dict()
    fits = OrderedDict(
        (k, v) for k, v in state_dict.items() if k in own and tuple(v.shape) == tuple(own[k].shape))
    name = type(model).__name__
    total = sum(p['total'] for p in parts.values())
    loaded = sum(p['loaded'] for p in parts.values())
    short = [n for n, p in parts.items() if p['loaded'] < p['total']]
    table = describe_coverage(parts)
    found = f'The checkpoint holds {len(state_dict)} tensors: {_examples(state_dict, 4)}.'
    if purpose == 'evaluate':
        if short:
            raise CheckpointMismatchError(
                f'{source} does not fit the {name} of this config: it would leave '
                f'{total - loaded} of the model\'s {total} tensors unloaded or of another '
                f'shape, in {", ".join(short)}:\n  {table}\n{found}\nA result computed '
                'with weights that were not loaded would be wrong, so nothing is run. '
                'Give the checkpoint trained with this config, or the config it was '
                'trained with (another family, variant, task or class count does not '
                'fit). To train this config starting from this checkpoint (a new head), '
                'use tools/train.py CONFIG --cfg-options load_from=CHECKPOINT.')
        return fits
    backbone = parts.get('backbone')
    if loaded == 0 or (backbone is not None and backbone['loaded'] < backbone['total']):
        what = 'no tensor of the model' if loaded == 0 else 'less than its whole backbone'
        raise CheckpointMismatchError(
            f'{source} matches {what} (the {name} of this config):\n  {table}\n{found}\n'
            'Fine-tuning from it would train (almost) from scratch. load_from needs a '
            'checkpoint of the same model (the head may differ); to start only the '
            'backbone from a classifier or a converted checkpoint, set the backbone\'s '
            "init_cfg=dict(type='Pretrained', checkpoint=CHECKPOINT, prefix='backbone.') "
            'instead.')
    if short:
        warnings.warn(
            f'{source}: fine-tuning the {name} with {", ".join(short)} not (fully) '
            f'loaded, initialised anew instead (a new head is expected when the '
            f'classes differ):\n  {table}',
            UserWarning,
            stacklevel=2)
    return fits


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
    'PATCH_ENV', 'TRUST_ENV', 'MIN_MATCHED_FRACTION', 'UntrustedCheckpointError',
    'NotACheckpointError', 'CheckpointMismatchError', 'check_checkpoint_file',
    'checkpoint_allowlist', 'check_weights', 'describe_coverage', 'match_weights',
    'weight_coverage', 'mmengine_is_patched', 'patch_mmengine', 'safe_load', 'safe_load_url',
    'trust_checkpoint', 'trusted_files', 'unpatch_mmengine', 'weights_of'
]
