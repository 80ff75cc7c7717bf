"""Padding and dilated-grid helpers for inputs of any size."""
from typing import Tuple

import torch


def pad_amount(size: int, multiple: int) -> int:
    """How much to add to ``size`` to reach a multiple of ``multiple``."""
    return (multiple - size % multiple) % multiple


def valid_mask(h: int, w: int, pad_h: int, pad_w: int,
               device=None) -> torch.Tensor:
    """Boolean ``(h + pad_h, w + pad_w)`` map, True on real (unpadded) positions."""
    mask = torch.zeros(h + pad_h, w + pad_w, dtype=torch.bool, device=device)
    mask[:h, :w] = True  # slicing with the real size, never ``[-0:]``
    return mask


def grid_partition(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Dilated (strided) grouping: ``(B, H, W, C)`` -> ``(B, H/gh, W/gw, gh * gw, C)``.

    Group ``(i, j)`` gathers the tokens ``x[:, i::H/gh, j::W/gw]``: a ``gh x gw`` grid
    spread over the whole map (global, dilated attention); local windows would instead
    gather ``gh x gw`` neighbours.
    """
    b, h, w, c = x.shape
    gh, gw = grid
    x = x.view(b, gh, h // gh, gw, w // gw, c).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, h // gh, w // gw, gh * gw, c)


def grid_reverse(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`grid_partition`."""
    b, sh, sw, _, c = x.shape
    gh, gw = grid
    x = x.view(b, sh, sw, gh, gw, c).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, gh * sh, gw * sw, c)
