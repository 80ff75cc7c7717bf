"""Convolutions that run on channels-last activations."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from .cache import DerivedCache
from .padding import fx_tracing, symbolic_shapes


def store_channels_last(*convs: nn.Conv2d) -> None:
    """Keep the weights of ``convs`` in channels-last order (in place, values unchanged).

    Our blocks hand their convolutions NCHW *views* of channels-last ``(B, H, W, C)``
    maps. On such inputs PyTorch's convolution kernels (oneDNN on CPU, cuDNN on GPU)
    return the weight gradient channels-last. A weight stored contiguous then disagrees
    with its own gradient:

    * where the two layouts differ in memory (a dense ``k x k`` conv over several input
      channels), autograd copies every gradient into the weight's layout, every step;
    * where they differ only in the strides of size-1 dims (depth-wise ``(C, 1, k, k)``
      and point-wise ``(O, I, 1, 1)`` weights: the same bytes in the same order), autograd
      keeps the gradient as it is, and DDP, which lays its bucket views out like the
      parameters, warns ``Grad strides do not match bucket view strides`` and copies
      with strided reads.

    Stored channels-last, weight and gradient agree. The kernel already ran channels-last
    (the input decides), so outputs and gradients stay bit-identical. Later in-place
    initialisation, ``load_state_dict`` (a copy into the parameter) and ``.to()`` keep
    the layout.
    """
    for conv in convs:
        w = conv.weight
        # ``contiguous(memory_format=...)`` would return an ambiguous weight (size-1 dims)
        # unchanged; an explicit channels-last tensor gets the strides the kernel returns.
        w.data = torch.empty_like(w, memory_format=torch.channels_last).copy_(w.data)


def conv_fp32_in_cpu_training(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``; under CPU autocast, when gradients flow, in fp32 (``x`` cast to fp32).

    For the depth-wise key/value reductions of both families (ScalableViT's strided
    ``reduce_dw``, ScopeViT's MSSA ``kv_convs``). oneDNN's bf16 backward of these
    convolutions is slower than its fp32 one on a CPU with native bf16: 4-15x where they
    are strided, 1.2-1.8x for the 5x5 and 7x7 kernels at stride 1 (one thread, batch 8,
    224; ScalableViT-S stage 1: 62 ms against 4 ms with the cast). So a training step runs
    them in fp32 and the next projection casts the (smaller) output back. Without
    gradients the bf16 forward is as fast as fp32 and runs as autocast says; other devices
    and autocast off are unchanged (docs/benchmarks.md, issue 35).
    """
    if (torch.is_autocast_enabled('cpu') and torch.is_grad_enabled() and not fx_tracing()
            and x.device.type == 'cpu' and (x.requires_grad or conv.weight.requires_grad)):
        with torch.autocast('cpu', enabled=False):
            return conv(x.to(conv.weight.dtype))
    return conv(x)


def folds_into_conv(norm: nn.Module) -> bool:
    """Whether ``norm`` is a BatchNorm that normalises with its running statistics now
    (eval mode, statistics tracked): then it is a per-channel affine map."""
    return (isinstance(norm, _BatchNorm) and not norm.training and norm.running_mean is not None
            and norm.running_var is not None)


def folded_conv_bn(conv: nn.Conv2d, norm: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the one convolution that computes ``norm(conv(x))`` for an
    eval-mode BatchNorm ``norm`` (:func:`folds_into_conv`), in the parameters' dtype, the
    weight in ``conv.weight``'s memory layout."""
    dtype = conv.weight.dtype
    work = torch.promote_types(dtype, torch.float32)  # fold in at least fp32

    def get(t):
        return None if t is None else t.to(work)

    scale = torch.rsqrt(get(norm.running_var) + norm.eps)
    if norm.weight is not None:
        scale = scale * get(norm.weight)
    bias = -get(norm.running_mean) if conv.bias is None else get(conv.bias) - get(norm.running_mean)
    bias = bias * scale
    if norm.bias is not None:
        bias = bias + get(norm.bias)
    weight = get(conv.weight) * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    # the strides of conv.weight (channels-last where store_channels_last made it so)
    weight = torch.empty_strided(
        weight.shape, conv.weight.stride(), dtype=dtype, device=weight.device).copy_(weight)
    bias = bias.to(dtype)
    return weight, bias


def conv_bn(conv: nn.Conv2d,
            norm: nn.Module,
            x: torch.Tensor,
            cache: Optional[DerivedCache] = None) -> torch.Tensor:
    """``norm(conv(x))``: where ``norm`` is an eval-mode BatchNorm (:func:`folds_into_conv`),
    in eager mode, one convolution with the BatchNorm folded into its weight and bias.

    The same function without the normalisation's pass over the output (and its
    allocation): ScopeViT-T's inverted residuals, in the model, measured 1.17x faster in
    bf16 and 1.46x in fp32 (docs/benchmarks.md, issue 35). With ``cache``, the folded
    weights are kept while no gradient can flow into them (:class:`DerivedCache`).
    Training-mode BatchNorms (batch statistics), other norms, exporters, compilers,
    TorchScript and FX traces (FLOP counts included) get ``norm(conv(x))``.
    """
    if (not folds_into_conv(norm) or symbolic_shapes() or fx_tracing() or torch.jit.is_tracing()):
        if cache is not None and norm.training:
            # a train-mode BatchNorm updates its running statistics inside its kernel,
            # which does not bump their version counters: forget the folded weights
            cache.clear()
        return norm(conv(x))
    # num_batches_tracked: bumped (in Python) by every train-mode forward of a BatchNorm,
    # also one that does not go through conv_bn
    sources = (conv.weight, conv.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var,
               getattr(norm, 'num_batches_tracked', None))
    if cache is None:
        weight, bias = folded_conv_bn(conv, norm)
    else:
        weight, bias = cache.get(sources, (norm.eps, ), lambda: folded_conv_bn(conv, norm))
    return conv._conv_forward(x, weight, bias)


__all__ = [
    'conv_bn', 'conv_fp32_in_cpu_training', 'folded_conv_bn', 'folds_into_conv',
    'store_channels_last'
]
