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

``torch.export`` adds one more kind of question: PyTorch's own shape code (views,
contiguity, a convolution's layout) asks whether a size is 1, and the exporter keeps the
answer as a guard. :func:`flat_view`, :func:`export_layout`, :func:`make_contiguous` and
:func:`map_to_tokens` (plain reshapes and views outside ``torch.export``) avoid those
questions, so one exported program holds at every size (:mod:`mmscope.deploy.export`).
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


def group_valid_mask(height,
                     width,
                     cell: Tuple[int, int],
                     dilated: bool,
                     device=None) -> torch.Tensor:
    """Which tokens of each group are real for a ``height x width`` map zero-padded at the
    bottom/right to a multiple of ``cell``: bool ``(G, ch * cw)``, True = real.

    The groups are those of :func:`grid_partition` when ``dilated`` (a ``ch x cw`` grid
    spread over the map: member ``p`` of group ``s`` along an axis is token
    ``p * (padded size / ch) + s``), else non-overlapping ``ch x cw`` windows (member ``r``
    of window ``a`` is token ``a * ch + r``), both in row-major group order.

    Built from ``arange`` arithmetic on the sizes, with no view or reshape that splits a
    size, so the same graph holds at every size under ``torch.export`` (a split would make
    the exporter guard on the sizes it sees)."""

    # Every broadcast is an explicit ``expand`` to the full shape: an implicit one makes
    # the exporter ask whether a group count is 1.
    def axis(size, k):  # (groups, k): is each member of each group inside the map?
        groups = (size + pad_amount(size, k)) // k
        g = torch.arange(groups, device=device)[:, None].expand(groups, k)
        member = torch.arange(k, device=device)[None, :].expand(groups, k)
        return (member * groups + g if dilated else g * k + member) < size

    rows, cols = axis(height, cell[0]), axis(width, cell[1])
    shape = (rows.shape[0], cols.shape[0], cell[0], cell[1])  # gH, gW, ch, cw
    mask = rows[:, None, :, None].expand(shape) & cols[None, :, None, :].expand(shape)
    return flat_view(mask, shape[0] * shape[1], cell[0] * cell[1])


def flat_view(x: torch.Tensor, *shape) -> torch.Tensor:
    """``x.reshape(shape)``, written for ``torch.export`` at every size.

    The exporter's view algorithm compares each new size with the old ones and guards on
    the outcome (for example on whether a group count is 1, or whether a permuted map is
    contiguous, which it is at 1x1). Under ``torch.export`` the tensor is therefore copied
    to a contiguous one, flattened and split again, where every comparison is decided by
    the size ranges alone; elsewhere this is ``x.reshape(shape)``."""
    if not torch.compiler.is_exporting():
        return x.reshape(*shape)
    return x.clone(memory_format=torch.contiguous_format).view(-1).view(*shape)


def export_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself, except under ``torch.export``: there a contiguous copy.

    Our blocks hand convolutions and linear layers NCHW / NHWC views of maps stored the
    other way round. Exporting, PyTorch asks which layout such a view has, and a view
    whose batch or map is 1 has both, so the exporter would guard on those sizes being
    above 1 (a 32-pixel input has a 1x1 last stage). The copy's layout is known at every
    size; the values are the same either way."""
    if torch.compiler.is_exporting():
        return x.clone(memory_format=torch.contiguous_format)
    return x


def make_contiguous(x: torch.Tensor) -> torch.Tensor:
    """``x.contiguous()``; under ``torch.export`` always a copy (whether a permuted map
    is contiguous already depends on whether it is 1x1: the exporter would guard on it)."""
    if torch.compiler.is_exporting():
        return x.clone(memory_format=torch.contiguous_format)
    return x.contiguous()


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` map -> ``(B, H * W, C)`` tokens (a view where the map is stored
    channels-last; see :func:`flat_view` for ``torch.export``)."""
    b, c, h, w = x.shape
    if not torch.compiler.is_exporting():
        return x.flatten(2).transpose(1, 2)
    return flat_view(x.permute(0, 2, 3, 1), b, h * w, c)


def grid_partition(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Dilated (strided) grouping: ``(B, H, W, C)`` -> ``(B, H/gh, W/gw, gh * gw, C)``.

    Group ``(i, j)`` gathers the tokens ``x[:, i::H/gh, j::W/gw]``: a ``gh x gw`` grid
    spread over the whole map (global, dilated attention); local windows would instead
    gather ``gh x gw`` neighbours.
    """
    b, h, w, c = x.shape
    gh, gw = grid
    x = flat_view(x, b, gh, h // gh, gw, w // gw, c).permute(0, 2, 4, 1, 3, 5)
    return flat_view(x, b, h // gh, w // gw, gh * gw, c)


def grid_reverse(x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`grid_partition`."""
    b, sh, sw, _, c = x.shape
    gh, gw = grid
    x = x.view(b, sh, sw, gh, gw, c).permute(0, 3, 1, 4, 2, 5)
    return flat_view(x, b, gh * sh, gw * sw, c)
