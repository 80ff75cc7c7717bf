"""Mixed precision for the tools (``--amp``), the inference API and the demo, on GPUs and
on CPUs.

On CUDA, ``--amp`` is what the OpenMMLab tools do: the whole model under autocast
(mmengine's ``AmpOptimWrapper`` in training, the test loop's ``fp16`` switch in testing),
fp16 with a dynamic loss scaler by default, bf16 on request (``--amp-dtype bf16``, no loss
scaling needed).

On the CPU, mmengine 0.10.7 refuses ``AmpOptimWrapper`` (it asserts a GPU) and the CPU
has no fast fp16, so ``--amp`` means **bf16 autocast of the feature extractor**: the
model's ``backbone`` and ``neck`` run under ``torch.autocast('cpu', torch.bfloat16)`` and
hand fp32 features to the heads, which run in fp32 as usual
(:func:`autocast_feature_extractor`). The heads stay in fp32 because their post-processing
does not take bf16 on the CPU: mmcv's CPU NMS stops with ``expected scalar type Float but
found BFloat16`` (Mask R-CNN, RetinaNet) and mmpose's decoders with ``Got unsupported
ScalarType BFloat16`` (numpy has no bfloat16). Parameters, gradients and optimizer
states stay fp32; bf16 needs no loss scaler. fp16 on the CPU is refused with an error
that names bf16.

Whether bf16 is fast depends on the CPU, not on its name: a CPU whose flags list
``avx512_bf16`` or ``amx_bf16`` computes bf16 matrix products natively (oneDNN), one
without them emulates them and runs slower than fp32 (measured on an AVX2-only AMD EPYC:
a ScopeViT-T forward about 10x slower, see docs/benchmarks.md). :func:`cpu_bf16_support`
reads the flags; bf16 on a CPU without them still works and warns once
(:func:`warn_if_emulated_bf16`).
"""
import functools
import platform
import warnings
from typing import Any, Callable, FrozenSet, Optional, Sequence, Tuple

__all__ = [
    'AMP_DTYPES', 'NATIVE_BF16_FLAGS', 'cpu_flags', 'cpu_description', 'cpu_bf16_support',
    'warn_if_emulated_bf16', 'resolve_amp_dtype', 'autocast_feature_extractor', 'amp_context',
    'configure_amp', 'bf16_step_speedup'
]

#: ``--amp-dtype`` choices and their torch dtypes (by name, so importing this is cheap).
AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}
#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic: AVX512-BF16 and AMX-BF16.
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
#: The CPU flags that decide CPU speed in fp32 and bf16 (what :func:`cpu_description` names).
SPEED_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')
#: The parts of a model that CPU autocast covers (those a model has).
FEATURE_PARTS = ('backbone', 'neck')
#: What the one-time warning names as the way back to fp32 (per entry point).
FP32_HINT = ('run without --amp to stay in fp32 (a config with an AmpOptimWrapper: add '
             '--cfg-options optim_wrapper.type=OptimWrapper)')

_warned = set()


def cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> Optional[FrozenSet[str]]:
    """The feature flags of the first CPU in ``cpuinfo`` (Linux), or None when they cannot
    be read (another OS, no such file)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('flags', 'Features'):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def cpu_description(cpuinfo: str = '/proc/cpuinfo') -> dict:
    """What a result measured on this CPU should name: ``{'model': 'AMD EPYC',
    'flags': [...]}``, the CPU's model name and those of its flags among
    :data:`SPEED_FLAGS` (native bf16 or not, AVX-512, AMX). Unknowns are None."""
    model = None
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name':
                    model = value.strip()
                    break
    except OSError:
        pass
    flags = cpu_flags(cpuinfo)
    return dict(
        model=model or platform.processor() or None,
        flags=None if flags is None else [f for f in SPEED_FLAGS if f in flags])


def cpu_bf16_support(flags: Optional[FrozenSet[str]] = None) -> Tuple[Optional[bool], str]:
    """``(native, why)``: whether this CPU computes bf16 natively, from its flags, and a
    sentence saying why. ``native`` is None when the flags cannot be read. ``flags``
    defaults to :func:`cpu_flags`."""
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None, (f'the CPU flags cannot be read on {platform.system() or "this OS"}, '
                      'so native bf16 support is unknown')
    have = [f for f in NATIVE_BF16_FLAGS if f in flags]
    if have:
        return True, f'the CPU has native bf16 ({", ".join(have)})'
    return False, (f'the CPU has no native bf16: none of {", ".join(NATIVE_BF16_FLAGS)} '
                   'among its flags')


def warn_if_emulated_bf16(hint: str = FP32_HINT,
                          flags: Optional[FrozenSet[str]] = None) -> Optional[bool]:
    """Warn once per process (and ``hint``) when bf16 autocast on this CPU is emulated,
    i.e. slower than fp32. Returns :func:`cpu_bf16_support`'s ``native``."""
    native, why = cpu_bf16_support(flags)
    if native is False and hint not in _warned:
        _warned.add(hint)
        warnings.warn(
            f'bf16 autocast on this CPU is emulated and slower than fp32 ({why}; a '
            f'ScopeViT-T forward measured about 10x slower than fp32 on such a CPU): '
            f'{hint}.',
            RuntimeWarning,
            stacklevel=2)
    return native


def resolve_amp_dtype(device: str, amp_dtype: Optional[str] = None) -> str:
    """The autocast dtype (``'bf16'`` / ``'fp16'``) of ``--amp`` on ``device`` (``'cpu'``
    or ``'cuda'``): fp16 on CUDA and bf16 on the CPU unless ``amp_dtype`` says otherwise.
    ValueError for fp16 on the CPU and for a dtype that is not ``bf16``/``fp16``."""
    if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
        raise ValueError(f'--amp-dtype must be one of {sorted(AMP_DTYPES)}, got {amp_dtype!r}')
    if device == 'cpu':
        if amp_dtype == 'fp16':
            raise ValueError(
                'fp16 mixed precision is not supported on the CPU (no fast fp16 kernels, and '
                "mmengine's AmpOptimWrapper needs a GPU): use bf16, the CPU default "
                '(--amp, or --amp-dtype bf16)')
        return 'bf16'
    return amp_dtype or 'fp16'


def _to_float(obj: Any, low) -> Any:
    """``obj`` with every tensor of dtype ``low`` (in tuples, lists and dicts) as fp32."""
    import torch
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.dtype == low else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_float(o, low) for o in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _to_float(v, low)) for k, v in obj.items())
    return obj


def autocast_feature_extractor(model,
                               dtype: str = 'bf16',
                               device_type: str = 'cpu',
                               parts: Sequence[str] = FEATURE_PARTS) -> Tuple[str, ...]:
    """Run the ``parts`` of ``model`` (those it has, default ``backbone`` and ``neck``)
    under ``torch.autocast(device_type, dtype)``, with their outputs cast back to fp32,
    from now on (training and inference). ``model`` may be wrapped (DDP: ``.module``).

    Each part's bound ``forward`` is wrapped on the instance, so the state-dict keys, the
    parameters (fp32) and a compiled backbone stay as they were. Calling this again with
    the same settings changes nothing; other settings replace the earlier ones. Returns
    the names of the parts it covers; ValueError when the model has none of them."""
    import torch
    low = getattr(torch, AMP_DTYPES[dtype])
    model = getattr(model, 'module', model)
    covered = []
    for name in parts:
        part = getattr(model, name, None)
        if part is None or not isinstance(part, torch.nn.Module):
            continue
        inner = getattr(part, '_mmscope_autocast_inner', None) or part.forward

        @functools.wraps(inner)
        def forward(*args, _inner=inner, **kwargs):
            with torch.autocast(device_type, dtype=low):
                out = _inner(*args, **kwargs)
            return _to_float(out, low)

        part.forward = forward
        part._mmscope_autocast_inner = inner
        part._mmscope_autocast = (device_type, dtype)
        covered.append(name)
    if not covered:
        raise ValueError(f'{type(model).__name__} has none of {list(parts)} to run under '
                         'autocast')
    return tuple(covered)


def amp_context(dtype: Optional[str], device: str = 'cpu'):
    """A context manager for the whole forward of inference code: ``torch.autocast`` of
    ``device`` in ``dtype`` (``'bf16'``/``'fp16'``), or nothing for None/``'fp32'``."""
    import contextlib

    import torch
    if dtype in (None, 'fp32'):
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=getattr(torch, AMP_DTYPES[dtype]))


def configure_amp(cfg,
                  amp_dtype: Optional[str],
                  mode: str,
                  device: Optional[str] = None) -> Optional[Callable]:
    """Turn on mixed precision for ``cfg`` in ``mode`` (``'train'`` or ``'test'``), as
    ``--amp`` / ``--amp-dtype`` ask (module doc). Returns None, or a function of the
    runner that the tools call once it is built (CPU: autocast of the feature extractor).

    On CUDA, training gets ``AmpOptimWrapper`` (fp16: dynamic loss scaling; bf16:
    ``dtype='bfloat16'`` and a constant scale of 1) and testing the test loop's ``fp16``
    switch, with the autocast dtype of CUDA set to the chosen one. A config whose
    ``optim_wrapper`` already is an ``AmpOptimWrapper`` keeps it on CUDA."""
    import torch
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    dtype = resolve_amp_dtype(device, amp_dtype)
    if device == 'cpu':
        warn_if_emulated_bf16()
        if mode == 'train':
            _cpu_optim_wrapper(cfg)

        def prepare(runner):
            parts = autocast_feature_extractor(runner.model, dtype, 'cpu')
            runner.logger.info(f'mixed precision: {"+".join(parts)} under bf16 autocast on '
                               'the CPU, heads in fp32')

        return prepare
    torch.set_autocast_dtype('cuda', getattr(torch, AMP_DTYPES[dtype]))
    if mode == 'train':
        wrapper = cfg.optim_wrapper
        if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            wrapper.type = 'AmpOptimWrapper'
            wrapper.dtype = AMP_DTYPES[dtype]
            wrapper.setdefault('loss_scale', 'dynamic' if dtype == 'fp16' else 1.0)
    else:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    return None


def _cpu_optim_wrapper(cfg) -> None:
    """A config's ``AmpOptimWrapper`` on the CPU: a plain ``OptimWrapper`` (the autocast
    comes from :func:`autocast_feature_extractor`); its fp16 is refused."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
        return
    if str(wrapper.get('dtype', 'bfloat16')).replace('torch.', '') == 'float16':
        resolve_amp_dtype('cpu', 'fp16')
    wrapper.type = 'OptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        wrapper.pop(key, None)


def bf16_step_speedup(model, inputs, rounds: int = 3) -> float:
    """How much faster a training step of the OpenMMLab ``model`` (``forward(inputs,
    mode='tensor')`` in train mode, backward of the summed outputs; no optimizer step) is
    with the feature extractor under CPU bf16 autocast than in fp32: the median over
    ``rounds`` of ``t(fp32) / t(bf16)``,
    the two alternating after one untimed step each. ``model`` is left as it was (its
    forward wrappers removed, gradients cleared)."""
    import copy
    import statistics
    import time
    low = copy.deepcopy(model).train()
    autocast_feature_extractor(low)
    arms = {'fp32': copy.deepcopy(model).train(), 'bf16': low}

    def step(m):
        t0 = time.perf_counter()
        out = m(inputs, mode='tensor')
        out = out if isinstance(out, (tuple, list)) else (out, )
        sum(o.float().sum() for o in out).backward()
        m.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    for m in arms.values():
        step(m)
    ratios = []
    for _ in range(rounds):
        ratios.append(step(arms['fp32']) / step(arms['bf16']))
    return statistics.median(ratios)
