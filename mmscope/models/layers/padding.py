"""Padding and window helpers for inputs of any size."""
from typing import Tuple

import torch
import torch.nn.functional as F


def pad_amount(size: int, multiple: int) -> int:
    """How much to add to ``size`` to reach a multiple of ``multiple``."""
    return (multiple - size % multiple) % multiple


def pad_to_multiple(x: torch.Tensor, multiple_h: int, multiple_w: int = None,
                    channels_last: bool = False) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Zero-pad the spatial dims of ``x`` at the bottom/right to multiples.

    Args:
        x: ``(B, C, H, W)`` or, with ``channels_last=True``, ``(B, H, W, C)``.
        multiple_h, multiple_w: the multiples (``multiple_w`` defaults to ``multiple_h``).

    Returns:
        The (possibly unchanged) tensor and the ``(pad_h, pad_w)`` that were added.
    """
    multiple_w = multiple_h if multiple_w is None else multiple_w
    h, w = (x.shape[1], x.shape[2]) if channels_last else (x.shape[-2], x.shape[-1])
    ph, pw = pad_amount(h, multiple_h), pad_amount(w, multiple_w)
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph) if channels_last else (0, pw, 0, ph))
    return x, (ph, pw)


def valid_mask(h: int, w: int, pad_h: int, pad_w: int,
               device=None) -> torch.Tensor:
    """Boolean ``(h + pad_h, w + pad_w)`` map, True on real (unpadded) positions."""
    mask = torch.zeros(h + pad_h, w + pad_w, dtype=torch.bool, device=device)
    mask[:h, :w] = True  # slicing with the real size, never ``[-0:]``
    return mask


def window_partition(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, nH, nW, wh * ww, C)`` contiguous local windows."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c).transpose(2, 3)
    return x.reshape(b, h // wh, w // ww, wh * ww, c)


def window_reverse(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B, nH, nW, wh * ww, C)`` -> ``(B, H, W, C)``."""
    b, nh, nw, _, c = x.shape
    wh, ww = window
    x = x.view(b, nh, nw, wh, ww, c).transpose(2, 3)
    return x.reshape(b, nh * wh, nw * ww, c)


def grid_partition(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Dilated (strided) grouping: ``(B, H, W, C)`` -> ``(B, H/gh, W/gw, gh * gw, C)``.

    Group ``(i, j)`` gathers the tokens ``x[:, i::H/gh, j::W/gw]``: a ``gh x gw`` grid
    spread over the whole map (global, dilated attention), the transpose of
    :func:`window_partition`.
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
