"""Which implementation the fused attention path runs on CPU: the dispatch thresholds.

:func:`~mmscope.models.layers.scaled_dot_attention` with ``impl='fused'`` calls
``F.scaled_dot_product_attention`` (SDPA), except on CPU in the cases below, where the plain
matmuls of the reference path were measured to be faster (:func:`cpu_matmul_is_faster`):

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
these rules applies. :func:`cpu_dispatch_rules` switches them off in one thread (tests and
checks of the fused path at small sizes; the results are the same function).
"""
import contextlib
import math
import threading
from typing import Tuple

import torch

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

_state = threading.local()


@contextlib.contextmanager
def cpu_dispatch_rules(enabled: bool):
    """Context manager: with ``enabled=False``, every fused call on CPU goes to
    ``F.scaled_dot_product_attention``, as every call does on a GPU: the CPU rules that
    send small calls, mixed head sizes with few keys and learned biases to the plain
    matmuls (:func:`cpu_matmul_is_faster`) are switched off in this thread. For tests
    and checks of the fused path at small sizes; the results are the same function."""
    old = getattr(_state, 'cpu_rules', True)
    _state.cpu_rules = bool(enabled)
    try:
        yield
    finally:
        _state.cpu_rules = old


def cpu_matmul_is_faster(q, k, v, bias, lead: Tuple[int, ...]) -> bool:
    """Cases where the default path runs the plain matmuls on CPU, being faster there
    (``lead``: the broadcast leading shape of q, k and v)."""
    if q.device.type != 'cpu' or not getattr(_state, 'cpu_rules', True):
        return False
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad or
                                        (bias is not None and bias.requires_grad))
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
