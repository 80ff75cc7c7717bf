"""Convolutions that run on channels-last activations."""
import torch
import torch.nn as nn

from .padding import fx_tracing


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


__all__ = ['conv_fp32_in_cpu_training', 'store_channels_last']
