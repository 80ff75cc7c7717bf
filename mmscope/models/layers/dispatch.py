"""Which kernel the attention runs: measured on the running machine, or by fixed rules.

:func:`~mmscope.models.layers.scaled_dot_attention` has two kernels that compute the same
function: ``F.scaled_dot_product_attention`` (SDPA: flash / memory-efficient kernels) and
plain matmul + softmax. Which one is faster depends on the machine, the dtype and the
shapes: on one AVX2 CPU in fp32 SDPA's flash kernel wins from a few million multiply-adds
on, on a CPU with native bf16 the plain matmuls (oneDNN bf16 GEMMs) beat it for every call
of ScopeViT-T and ScalableViT-S at 224 (docs/benchmarks.md). So the default mode
``'auto'`` **measures**, as ``torch.backends.cudnn.benchmark`` does:

* the first call of each *signature* (:func:`call_signature`: device, dtypes, shapes and
  strides of q/k/v, the bias or mask, whether gradients flow, dropout, autocast and the
  number of threads) runs both kernels on its own inputs, a few rounds in alternating
  order (forward, plus backward when gradients flow), and keeps the faster
  (:func:`measured_choice`); in CPU inference without dropout, where the attention matrix
  is larger than :data:`CHUNK_BYTES`, the plain matmuls one chunk at a time are a third
  candidate (``'chunked'``, the same arithmetic per row); every later call with that
  signature looks the choice up in a per-process cache (:func:`dispatch_choices`,
  :func:`clear_dispatch_cache`);
* a call whose reference attention matrix would exceed
  :data:`BENCHMARK_MAX_REFERENCE_BYTES` runs SDPA without a measurement: the matmuls
  would hold the whole matrix (memory is SDPA's point there, whatever the speed);
* no measurement while sizes are symbolic or a graph is recorded (``torch.compile``,
  ``torch.export``, TorchScript tracing, FX proxies, fake / meta tensors): those get the
  deterministic choice below, which does not depend on timing.

:func:`attention_benchmark` / :func:`set_attention_benchmark` switch the measurement off
(or on; environment: ``MMSCOPE_ATTN_BENCHMARK=0``). Off, ``'auto'`` takes the
deterministic default, which is what ``'fused'`` does: SDPA, except on CPU in the cases
below (:func:`cpu_matmul_is_faster`), where the plain matmuls were measured to be faster
in fp32 on one CPU:

* a float bias that needs a gradient (a learned relative-position bias during training):
  no CPU SDPA kernel returns a bias gradient, so SDPA would run its unfused math fallback,
  which is slower than the reference code (same memory);
* small calls, under :data:`CPU_SMALL_ATTENTION_MACS` multiply-adds;
* q/k and v with different head sizes (ScalableViT's SSA) and fewer keys than
  :data:`CPU_MIXED_HEAD_MIN_KEYS`, in a training step, or in inference when q/k are the
  narrower side.

Both thresholds were measured per call inside the backbones with
``tools/analysis_tools/attention_profile.py`` (the ratios below are
``t(reference) / t(fused)``: under 1, the plain matmuls are faster). On a GPU none of
these rules applies. The forced modes take precedence over all of this:
``attention_impl('reference')`` always runs the matmuls, ``attention_impl('fused')`` the
rules above without a measurement, and :func:`cpu_dispatch_rules` ``(False)`` sends every
``'fused'`` / ``'auto'`` call on CPU to SDPA (tests and checks of the SDPA path at small
sizes).
"""
import contextlib
import math
import threading
import time
from typing import Callable, Dict, Optional, Tuple

import torch

from ...utils.env import env_switch

#: On CPU, attention with fewer multiply-adds than this (``batch x heads x queries x keys x
#: (q/k head size + v head size)``) runs the plain matmuls: the flash kernel's fixed cost
#: per call outweighs what it saves. Measured per call inside the backbones at 224, batch
#: 1, one thread (``tools/analysis_tools/attention_profile.py``), ref/fused time: 0.62-0.89
#: from 1.2M to 5.5M multiply-adds, 0.90-1.19 from 8.4M to 12.8M. The attention matrix
#: the matmuls hold is then at most 8M / 32 floats (1 MB).
CPU_SMALL_ATTENTION_MACS = 8_000_000

#: On CPU, with fewer keys than this, attention whose q/k head size differs from v's
#: (ScalableViT's SSA) runs the plain matmuls in a training step, and in inference too
#: when q/k are the narrower side: zero-extending the heads for the flash kernel costs
#: more than it saves. Forward + backward, q/k head 64 and v head 32, ref/fused time: 0.63
#: at 49 keys, 0.74 at 64, 1.09 at 100, 1.17 at 144; inference with q/k 8 or 16 and v 32
#: (ScalableViT-L) at 49 keys: 0.86 and 0.93; inference with wider q/k favours the flash
#: kernel at every size (1.05 at 49 keys, 2.3 at 256).
CPU_MIXED_HEAD_MIN_KEYS = 96

#: The measurement leaves out the matmuls (and runs SDPA) when their attention matrix,
#: ``batch x heads x queries x keys`` in the input dtype, would be larger than this: they
#: hold all of it (and keep it for the backward), SDPA's tiled kernels never do.
BENCHMARK_MAX_REFERENCE_BYTES = 256 * 2**20

#: The attention matrix of one chunk of the ``'chunked'`` candidate (about a core's L2
#: cache): the plain matmuls and softmax run on that many bytes of it at a time, which stay
#: in the cache between the three passes. ScopeViT-T's MSSA at 224 (3136 queries x 225
#: keys, 1.4 MB per head) runs 1.2x faster chunked than either whole kernel in bf16
#: (docs/benchmarks.md, issue 35); the measurement decides where it is used.
CHUNK_BYTES = 1 << 20

#: Timed rounds per kernel and signature (after one untimed call of each); the fastest
#: round of each kernel is compared.
BENCHMARK_ROUNDS = 5

_state = threading.local()  # cpu_rules: this thread's cpu_dispatch_rules switch


def _env_enabled() -> bool:
    return env_switch('MMSCOPE_ATTN_BENCHMARK')


def _wall_timer(impl: str, run: Callable[[], None]) -> float:
    """Wall seconds of one ``run()`` (which synchronises its device itself)."""
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def _cpu_timer(impl: str, run: Callable[[], None]) -> float:
    """Process CPU seconds of one ``run()``: with one thread on CPU, the work of the call
    without the time spent waiting for a shared CPU (steadier on a loaded machine)."""
    t0 = time.process_time()
    run()
    return time.process_time() - t0


# process-wide, like torch.backends.cudnn.benchmark: the switch, the timer (None: the
# default clocks) and the choices
_benchmark = dict(enabled=_env_enabled(), timer=None)
_choices: Dict[tuple, str] = {}
_choices_lock = threading.Lock()


def benchmark_enabled() -> bool:
    """Whether ``'auto'`` attention measures its kernels (:mod:`module docstring <.dispatch>`)."""
    return _benchmark['enabled']


def set_attention_benchmark(enabled: bool) -> None:
    """Switch the measured dispatch of ``'auto'`` attention on or off, process-wide (off:
    the deterministic CPU rules, as ``'fused'``). Choices already measured stay cached."""
    _benchmark['enabled'] = bool(enabled)


@contextlib.contextmanager
def attention_benchmark(enabled: bool):
    """Context manager: :func:`set_attention_benchmark` inside it, the old value after."""
    old = benchmark_enabled()
    set_attention_benchmark(enabled)
    try:
        yield
    finally:
        set_attention_benchmark(old)


@contextlib.contextmanager
def benchmark_timer(timer: Callable[[str, Callable[[], None]], float]):
    """Context manager: time the candidate kernels with ``timer(impl, run) -> seconds``
    (``impl``: ``'fused'`` or ``'reference'``; ``run()`` runs the kernel once) instead of
    the wall clock, e.g. a fake clock in tests."""
    old = _benchmark['timer']
    _benchmark['timer'] = timer
    try:
        yield
    finally:
        _benchmark['timer'] = old


def dispatch_choices() -> Dict[tuple, str]:
    """A copy of the measured choices of this process: ``{call_signature: impl}``."""
    with _choices_lock:
        return dict(_choices)


def clear_dispatch_cache() -> None:
    """Forget every measured choice (the next call of each signature measures again)."""
    with _choices_lock:
        _choices.clear()


@contextlib.contextmanager
def cpu_dispatch_rules(enabled: bool):
    """Context manager: with ``enabled=False``, every ``'fused'`` or ``'auto'`` call on CPU
    goes to ``F.scaled_dot_product_attention``: neither the CPU rules that send small
    calls, mixed head sizes with few keys and learned biases to the plain matmuls
    (:func:`cpu_matmul_is_faster`) nor a measurement apply, in this thread. For tests and
    checks of the SDPA path at small sizes; the results are the same function."""
    old = getattr(_state, 'cpu_rules', True)
    _state.cpu_rules = bool(enabled)
    try:
        yield
    finally:
        _state.cpu_rules = old


def cpu_rules_enabled() -> bool:
    """This thread's :func:`cpu_dispatch_rules` switch."""
    return getattr(_state, 'cpu_rules', True)


def needs_grad(q, k, v, bias) -> bool:
    """Whether a backward can flow from this call into its inputs."""
    return torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad or
                                        (bias is not None and bias.requires_grad))


def cpu_matmul_is_faster(q, k, v, bias, lead: Tuple[int, ...]) -> bool:
    """Cases where the deterministic default runs the plain matmuls on CPU, measured to be
    faster there in fp32 (``lead``: the broadcast leading shape of q, k and v). The
    caller applies :func:`cpu_dispatch_rules`."""
    if q.device.type != 'cpu':
        return False
    grad = needs_grad(q, k, v, bias)
    # a bias that needs a gradient: no CPU SDPA kernel returns one, so SDPA would run its
    # unfused math fallback, which is slower than the reference code (same memory)
    if grad and bias is not None and bias.requires_grad:
        return True
    macs = math.prod(lead) * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    if macs < CPU_SMALL_ATTENTION_MACS:
        return True
    if q.shape[-1] == v.shape[-1] or k.shape[-2] >= CPU_MIXED_HEAD_MIN_KEYS:
        return False
    return grad or q.shape[-1] < v.shape[-1]


def measurable(*tensors: Optional[torch.Tensor]) -> bool:
    """Whether a call on these tensors may be timed: plain tensors on a CPU or CUDA device,
    no graph being recorded (TorchScript tracing, ``torch.compile`` / ``torch.export``,
    FX proxies and fake or functional tensors are other types)."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    for t in tensors:
        if t is not None and (type(t) is not torch.Tensor or t.device.type not in ('cpu', 'cuda')):
            return False
    return True


def call_signature(q, k, v, bias, dropout_p: float) -> tuple:
    """What a measured choice is cached under: device, dtypes, shapes and strides of q/k/v,
    the bias (None, or its dtype, shape, strides and whether it gets a gradient), whether
    gradients flow (then the backward is timed too), dropout, the autocast state and the
    number of intra-op threads."""
    grad = needs_grad(q, k, v, bias)
    mask = None if bias is None else (bias.dtype, tuple(bias.shape), bias.stride(),
                                      grad and bias.requires_grad)
    return (str(q.device), q.dtype, k.dtype, v.dtype, tuple(q.shape), tuple(k.shape),
            tuple(v.shape), q.stride(), k.stride(), v.stride(), mask, grad, dropout_p
            > 0, torch.is_autocast_enabled(q.device.type), torch.get_num_threads())


def should_measure(q, k, v, bias, lead: Tuple[int, ...]) -> bool:
    """Whether an ``'auto'`` call picks its kernel by measurement: the measurement is on,
    the tensors are :func:`measurable`, and the attention matrix that the plain matmuls
    would hold (``lead``: the broadcast leading shape) is at most
    :data:`BENCHMARK_MAX_REFERENCE_BYTES`."""
    if not benchmark_enabled() or not measurable(q, k, v, bias):
        return False
    nbytes = math.prod(lead) * q.shape[-2] * k.shape[-2] * q.element_size()
    return nbytes <= BENCHMARK_MAX_REFERENCE_BYTES


def measured_choice(key: tuple, candidates: Dict[str, Callable[[], None]]) -> str:
    """The cached choice for ``key``, or, the first time, the faster of ``candidates``
    (``{impl: run}``, each ``run()`` one call of that kernel): one untimed call of each,
    then :data:`BENCHMARK_ROUNDS` timed rounds in alternating order, the fastest round of
    each kernel compared (a tie keeps the first candidate). Clock: the process CPU time
    with one thread on CPU, the wall time otherwise (CUDA runs synchronise), or the
    :func:`benchmark_timer` in force. Both clocks count the page faults of memory that
    glibc's default ``malloc`` unmaps and maps again: on that allocator a training call
    of ScopeViT-T's stage-1 MSSA spent up to 48 of its 75 ms faulting in the matmuls'
    logits, and SDPA (1.6x slower without the faults) was picked in some processes. The
    tools set the allocator to keep freed memory (:func:`mmscope.apis.tune_cpu_allocator`),
    after which the rounds are free of faults."""
    with _choices_lock:
        choice = _choices.get(key)
    if choice is not None:
        return choice
    timer = _benchmark['timer']
    if timer is None:  # key[0]: the device; one CPU thread: CPU time, else wall time
        timer = _cpu_timer if key[0] == 'cpu' and torch.get_num_threads() == 1 else _wall_timer
    names = list(candidates)
    for name in names:
        candidates[name]()
    best = {name: math.inf for name in names}
    for i in range(BENCHMARK_ROUNDS):
        for name in (names if i % 2 == 0 else names[::-1]):
            best[name] = min(best[name], timer(name, candidates[name]))
    choice = min(names, key=lambda n: best[n])
    with _choices_lock:
        _choices[key] = choice
    return choice
