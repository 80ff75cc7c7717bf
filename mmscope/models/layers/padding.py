"""Padding and dilated-grid helpers for inputs of any size.

Eager and symbolic sizes. In eager mode the backbones decide with plain Python on the
map sizes (skip the padding, the mask and the crop when a map already fits), which is
what keeps eager runs fast and bit-identical. Under an exporter or a compiler the sizes
are symbolic (traced tensors for TorchScript/ONNX tracing, SymInts for ``torch.compile``
and ``torch.export``), and a Python ``if`` on them would be frozen at the size seen
while tracing: a graph that runs at other sizes and is silently wrong there, or a
recompilation per size. :func:`symbolic_shapes` tells the two apart, and in symbolic
mode every size-dependent step is written so that it holds at every size: padding
amounts ``(k - n % k) % k`` applied unconditionally (zero padding by 0 is a no-op), masks
built by comparing ``arange`` with the real size, crops ``[:n]`` always taken.

FX symbolic tracing (``torch.fx.symbolic_trace``, torchvision's
``create_feature_extractor``, timm's ``feature_cls='fx'``) is the third case: its sizes
are proxies that no Python ``if`` may test. The size decisions therefore live in small
functions (:func:`pad_to_multiple`, :func:`crop_to` and the masks of each backbone) that
the backbone modules declare with ``torch.fx.wrap``: an FX graph calls each of them as one
node, so at run time they take the eager decisions on the real sizes, and the graph
equals eager at every size.
"""
import contextlib
import threading
from typing import Tuple

import torch
import torch.nn.functional as F

_state = threading.local()


def symbolic_shapes() -> bool:
    """True while sizes may be symbolic: TorchScript tracing (``torch.onnx.export(...,
    dynamo=False)``, ``torch.jit.trace``), ``torch.compile`` and ``torch.export``
    (``torch.onnx.export(..., dynamo=True)``). Size-dependent Python branches must not be
    taken then (see the module docstring). False inside :func:`concrete_shapes`."""
    if torch.jit.is_tracing():
        return not getattr(_state, 'concrete', False)
    return bool(torch.compiler.is_compiling() or torch.compiler.is_exporting())


@contextlib.contextmanager
def concrete_shapes():
    """Context manager: a TorchScript trace inside it takes the eager decisions for the
    size it sees (no unconditional padding, the attention kernel chosen as in eager).
    For traces that serve one size only, such as FLOP counting: the count is then that
    of the eager computation."""
    old = getattr(_state, 'concrete', False)
    _state.concrete = True
    try:
        yield
    finally:
        _state.concrete = old


def fx_tracing() -> bool:
    """True while ``torch.fx`` symbolically traces (see the module docstring)."""
    return torch.fx._symbolic_trace.is_fx_symbolic_tracing()


def pad_amount(size, multiple: int):
    """How much to add to ``size`` to reach a multiple of ``multiple`` (an int, or a traced
    size: the arithmetic stays symbolic).

    Written as ``ceil(size / multiple) * multiple - size`` rather than
    ``(multiple - size % multiple) % multiple`` (the same value): a compiler can then see
    that ``size + pad`` is a multiple (``ceil(...) * multiple``) and reshape the padded
    map into groups without a guard on the size, so one graph serves every size."""
    return (size + multiple - 1) // multiple * multiple - size


def crop(x: torch.Tensor, dim: int, size) -> torch.Tensor:
    """The first ``size`` entries of ``x`` along ``dim``: a view (``narrow``), except under
    ``torch.compile`` / ``torch.export``, where it is a gather into a new tensor. A view
    whose contiguity depends on the size (a crop by 0 is contiguous, a real crop is not)
    makes the compiler guard on the size at the next operation, and recompile for every
    size that pads differently; the gathered tensor is contiguous at every size."""
    if torch.compiler.is_compiling():
        return x.index_select(dim, torch.arange(size, device=x.device))
    return x.narrow(dim, 0, size)


def pad_to_multiple(x: torch.Tensor, multiple: Tuple[int, int],
                    channels_last: bool) -> torch.Tensor:
    """``x`` zero-padded at the bottom/right to a multiple of ``multiple`` (height, width)
    in its spatial dims (1, 2 of ``(B, H, W, C)`` if ``channels_last``, else 2, 3 of
    ``(B, C, H, W)``): ``x`` itself in eager mode when it fits, always a pad (by 0 where it
    fits) under symbolic sizes."""
    dim = 1 if channels_last else 2
    ph, pw = pad_amount(x.shape[dim], multiple[0]), pad_amount(x.shape[dim + 1], multiple[1])
    if not symbolic_shapes() and not (ph or pw):
        return x
    return F.pad(x, (0, 0, 0, pw, 0, ph) if channels_last else (0, pw, 0, ph))


def crop_to(x: torch.Tensor, height, width) -> torch.Tensor:
    """The top-left ``height x width`` of a channels-last ``(B, Hp, Wp, C)`` map (see
    :func:`crop`): ``x`` itself in eager mode when it has that size already."""
    if not symbolic_shapes() and x.shape[1] == height and x.shape[2] == width:
        return x
    return crop(crop(x, 1, height), 2, width)


def valid_mask(h, w, pad_h, pad_w, device=None) -> torch.Tensor:
    """Boolean ``(h + pad_h, w + pad_w)`` map, True on real (unpadded) positions.

    Built from ``arange`` comparisons, so it also holds for symbolic sizes."""
    rows = torch.arange(h + pad_h, device=device) < h
    cols = torch.arange(w + pad_w, device=device) < w
    return rows[:, None] & cols[None, :]


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
