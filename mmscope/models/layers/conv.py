"""Convolutions that run on channels-last activations."""
import torch
import torch.nn as nn


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


__all__ = ['store_channels_last']
