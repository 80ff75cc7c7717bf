"""One attention kernel for every mmscope attention module.

``scaled_dot_attention`` computes ``softmax(q @ k^T * scale + bias) @ v`` either through
:func:`torch.nn.functional.scaled_dot_product_attention` (SDPA: flash / memory-efficient
kernels that never hold the full attention matrix where the backend allows it) or through
plain matmul + softmax. Both read the same arguments and compute the same function. The
modes (:data:`ATTN_IMPLS`):

* ``'auto'`` (the default): per call signature, the kernel measured to be faster on the
  running machine, measured once per process (or, with the measurement switched off and
  under compilers / exporters, the deterministic choice of ``'fused'``): :mod:`.dispatch`.
  In CPU inference a third candidate is measured too, the plain matmuls one chunk of the
  batch / heads at a time (:func:`_chunked_attention`: each chunk's attention matrix
  stays in the cache between the matmuls and the softmax);
* ``'fused'``: SDPA, except on CPU where fixed rules send calls to the plain matmuls
  (:func:`~.dispatch.cpu_matmul_is_faster`; :func:`~.dispatch.cpu_dispatch_rules`
  ``(False)`` turns them off); never measured;
* ``'reference'``: always the plain matmuls (tests, the side-by-side benchmark).

What the fused path does so that SDPA's CPU flash kernel (tiled, never holds the attention
matrix) is really used; PyTorch silently takes its unfused "math" fallback otherwise, which
is slower than the reference code and materialises the whole matrix:

* inputs are folded to 4-D ``(batch, heads, N, D)``: the CPU kernel rejects any other rank,
  so ``(B, groups, heads, L, D)`` inputs are folded into the batch or the head axis, chosen
  so that the bias stays a broadcast view whenever possible (:func:`_fold_to_4d`);
* on CPU, q/k and v with different head sizes (e.g. ScalableViT's SSA, whose queries/keys
  are ``c_ratio`` times wider than its values) are zero-padded to a common head size and
  the output is cropped: zero columns change neither the logits nor the kept outputs;
* on CPU, a float bias that needs a gradient (a learned relative-position bias during
  training) goes through the reference code: no CPU kernel returns a bias gradient, and
  the math fallback SDPA would pick is slower than the reference code;
* on CPU, ``'fused'`` runs small calls and mixed head sizes with few keys on the plain
  matmuls, measured to be faster there in fp32: the thresholds, their measurements and
  the switch that turns these rules off (:func:`~.dispatch.cpu_dispatch_rules`) are in
  :mod:`.dispatch`, with the measured choice of ``'auto'``.

Under symbolic sizes (:func:`~mmscope.models.layers.padding.symbolic_shapes`) no decision
depends on a size, so a traced or compiled graph holds at every size:

* **TorchScript tracing** (the default ONNX exporter, mmdeploy) always gets the plain
  matmuls: ``MatMul``/``Softmax``/``Where`` in ONNX, which every runtime runs, with boolean
  masks applied by ``masked_fill`` (no ``scaled_dot_product_attention`` node: its export
  and mmdeploy's rewrite of it do not handle our boolean masks);
* **torch.export** gets the plain matmuls too, except where the key count depends on the
  input size and no mask is given (MSSA's and SSA's reduced keys): there
  ``F.scaled_dot_product_attention``, because the matmul's reshapes would make the
  exporter guard on a key count of 1 (a 1x1 last stage), which SDPA does not
  (:mod:`mmscope.deploy.export`);
* **torch.compile** always gets ``F.scaled_dot_product_attention`` (the compiler picks the
  kernel), except for a float bias that needs a gradient (as in eager: no CPU kernel
  returns it), and folds to 4-D by a rule that reads only which axes the bias broadcasts.
"""
import contextlib
import math
import threading
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from . import dispatch
from .dispatch import (call_signature, cpu_matmul_is_faster, cpu_rules_enabled, measured_choice,
                       needs_grad, should_measure)
from .padding import symbolic_shapes

ATTN_IMPLS = ('auto', 'fused', 'reference')
_state = threading.local()


def _check_impl(impl: str) -> str:
    if impl not in ATTN_IMPLS:
        raise ValueError(f'attention impl must be one of {ATTN_IMPLS}, got {impl!r}')
    return impl


def get_attention_impl() -> str:
    """The process-wide default used by modules whose ``attn_impl`` is ``None``."""
    return getattr(_state, 'impl', 'auto')


def set_attention_impl(impl: str) -> None:
    """Set the default attention implementation (``'auto'``, ``'fused'`` or
    ``'reference'``) of this thread."""
    _state.impl = _check_impl(impl)


@contextlib.contextmanager
def attention_impl(impl: str):
    """Context manager: run the enclosed forward passes with ``impl``."""
    old = get_attention_impl()
    set_attention_impl(impl)
    try:
        yield
    finally:
        _state.impl = old


def resolve_attention_impl(impl: Optional[str]) -> str:
    """A module's ``attn_impl`` argument, with ``None`` meaning the current default."""
    return get_attention_impl() if impl is None else _check_impl(impl)


def _bias_lead(lead: Tuple[int, ...], bias: torch.Tensor) -> Tuple[int, ...]:
    """The leading dims of ``bias`` aligned with the inputs' ``lead`` (1 where it
    broadcasts)."""
    bias_lead = (1, ) * max(len(lead) - bias.dim() + 2, 0) + tuple(bias.shape[:-2])
    if len(bias_lead) != len(lead):
        raise ValueError(f'bias of shape {tuple(bias.shape)} has more leading dims than '
                         f'the inputs {tuple(lead)}')
    return bias_lead


def _bias_axis(dims_bias, dims) -> int:
    """Size of one 4-D bias axis covering the input dims ``dims``."""
    return 1 if all(d == 1 for d in dims_bias) else math.prod(dims)


def _fold_split(lead: Tuple[int, ...], bias: Optional[torch.Tensor]) -> int:
    """Where :func:`_fold_to_4d` splits ``lead`` into its batch and head axes."""
    n = len(lead)
    if bias is None:
        return max(n - 1, 0)
    bias_lead = _bias_lead(lead, bias)
    splits = list(range(n + 1))  # list.sort: torch.compile traces it (not min with a key)
    if symbolic_shapes():  # no comparison of (symbolic) sizes: fewest full bias axes

        def full(dims_bias):
            return 0 if all(d == 1 for d in dims_bias) else 1

        splits.sort(key=lambda s: (full(bias_lead[:s]) + full(bias_lead[s:]), -s))
    else:
        splits.sort(key=lambda s:
                    (_bias_axis(bias_lead[:s], lead[:s]) * _bias_axis(bias_lead[s:], lead[s:]), -s))
    return splits[0]


def _fold_to_4d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor],
                lead: Tuple[int, ...]) -> Tuple[torch.Tensor, ...]:
    """Reshape ``(*lead, N, D)`` inputs (any number of leading dims) to ``(b, h, N, D)``.

    The leading dims are split at position ``s``: ``lead[:s]`` becomes the batch axis and
    ``lead[s:]`` the head axis. ``s`` is chosen to minimise the size of the 4-D bias: an
    axis over which the bias only broadcasts (all its dims are 1) stays a size-1 broadcast
    axis, so e.g. a per-head bias ``(h, L, L)`` on ``(B, G, h, L, D)`` groups becomes a
    ``(1, h, L, L)`` view over a ``B * G`` batch, and a per-group bias ``(G, h, L, L)``
    becomes a ``(1, G * h, L, L)`` view over a ``B`` batch. No bias: batch = all leading
    dims but the last.
    """
    s = _fold_split(lead, bias)
    b, h = math.prod(lead[:s]), math.prod(lead[s:])

    def fold(t):
        return t.expand(*lead, *t.shape[-2:]).reshape(b, h, *t.shape[-2:])

    q, k, v = fold(q), fold(k), fold(v)
    if bias is not None:
        bias_lead = _bias_lead(lead, bias)
        bias = bias.reshape(bias_lead + tuple(bias.shape[-2:]))
        bb, bh = _bias_axis(bias_lead[:s], lead[:s]), _bias_axis(bias_lead[s:], lead[s:])
        shape = ((lead[:s] if bb > 1 else bias_lead[:s]) + (lead[s:] if bh > 1 else bias_lead[s:]))
        bias = bias.expand(*shape, *bias.shape[-2:]).reshape(bb, bh, *bias.shape[-2:])
    return q, k, v, bias


def scaled_dot_attention(q: torch.Tensor,
                         k: torch.Tensor,
                         v: torch.Tensor,
                         bias: Optional[torch.Tensor] = None,
                         scale: Optional[float] = None,
                         dropout_p: float = 0.,
                         impl: Optional[str] = None) -> torch.Tensor:
    """Multi-head attention on ``(..., N, D)`` tensors.

    Args:
        q, k, v: queries ``(..., Nq, D)``, keys ``(..., Nk, D)``, values ``(..., Nk, Dv)``.
        bias: additive float bias broadcastable to ``(..., Nq, Nk)`` (use ``-inf`` to mask a
            key) or a boolean mask where ``True`` means *attend*.
        scale: logit scale; ``D ** -0.5`` when None.
        dropout_p: attention dropout probability (pass 0 in eval mode).
        impl: ``'auto'``, ``'fused'``, ``'reference'`` or None for
            :func:`get_attention_impl`.

    Returns:
        ``(..., Nq, Dv)`` with the broadcast leading shape of ``q``, ``k`` and ``v``.
    """
    if scale is None:
        scale = q.shape[-1]**-0.5
    if symbolic_shapes():
        return _symbolic_attention(q, k, v, bias, scale, dropout_p)
    impl = resolve_attention_impl(impl)
    if impl != 'reference':
        lead = _broadcast_lead(q, k, v)  # (*lead, N, D) after broadcasting
        kernel = _eager_kernel(impl, q, k, v, bias, scale, dropout_p, lead)
        if kernel == 'fused':
            return _fused_attention(q, k, v, bias, scale, dropout_p, lead)
        if kernel == 'chunked':
            return _chunked_attention(q, k, v, bias, scale, lead)
    return _reference_attention(q, k, v, bias, scale, dropout_p)


def attention_path(q, k, v, bias=None, scale=None, dropout_p=0., impl=None) -> str:
    """Which kernel :func:`scaled_dot_attention` runs for these arguments in eager mode:
    ``'sdpa'``, ``'matmul'`` or ``'chunked'`` (the matmuls one chunk at a time, which only
    the measurement of ``'auto'`` picks); for ``'auto'``, measured now if not yet cached."""
    impl = resolve_attention_impl(impl)
    if impl == 'reference':
        return 'matmul'
    scale = q.shape[-1]**-0.5 if scale is None else scale
    kernel = _eager_kernel(impl, q, k, v, bias, scale, dropout_p, _broadcast_lead(q, k, v))
    return {'fused': 'sdpa', 'reference': 'matmul', 'chunked': 'chunked'}[kernel]


def _eager_kernel(impl, q, k, v, bias, scale, dropout_p, lead) -> str:
    """The eager choice of ``'fused'`` / ``'auto'`` (:mod:`.dispatch`): ``'fused'`` (SDPA),
    ``'reference'`` or ``'chunked'``."""
    if q.device.type == 'cpu' and not cpu_rules_enabled():
        return 'fused'
    if impl == 'auto' and should_measure(q, k, v, bias, lead):
        runs = _candidates(q, k, v, bias, scale, dropout_p, lead)
        return measured_choice(call_signature(q, k, v, bias, dropout_p), runs)
    return 'reference' if cpu_matmul_is_faster(q, k, v, bias, lead) else 'fused'


def _candidates(q, k, v, bias, scale, dropout_p, lead):
    """``{impl: run}`` for :func:`~.dispatch.measured_choice`: ``run()`` is one call of
    that kernel on detached copies of these inputs (same strides), with its backward when
    gradients flow, on the same random numbers (dropout) as the real call will see.
    ``'chunked'`` is a candidate in CPU inference (no gradient, no dropout), where it makes
    more than one chunk (:func:`_chunk_plan`)."""
    grad = needs_grad(q, k, v, bias)
    cuda = q.device.type == 'cuda'

    def run(kernel):
        leaves = [t.detach().requires_grad_(grad and t.requires_grad) for t in (q, k, v)]
        b = None if bias is None else bias.detach().requires_grad_(grad and bias.requires_grad)
        devices = [q.device.index or 0] if cuda else []
        with torch.random.fork_rng(devices, enabled=dropout_p > 0), \
                torch.set_grad_enabled(grad):
            out = kernel(*leaves, b)
            if grad:
                wrt = [t for t in leaves + [b] if t is not None and t.requires_grad]
                torch.autograd.grad(out, wrt, torch.ones_like(out))
        if cuda:
            torch.cuda.synchronize(q.device)

    def fused(q, k, v, b):
        return _fused_attention(q, k, v, b, scale, dropout_p, lead)

    def reference(q, k, v, b):
        return _reference_attention(q, k, v, b, scale, dropout_p)

    def chunked(q, k, v, b):
        return _chunked_attention(q, k, v, b, scale, lead)

    runs = {'fused': lambda: run(fused), 'reference': lambda: run(reference)}
    if (not grad and dropout_p == 0 and q.device.type == 'cpu'
            and _chunk_plan(q, k, v, bias, lead)[2] > 1):
        runs['chunked'] = lambda: run(chunked)
    return runs


def _symbolic_attention(q, k, v, bias, scale, dropout_p):
    """The size-independent choice under exporters / compilers (module docstring)."""
    if torch.jit.is_tracing() or (bias is not None and bias.requires_grad
                                  and torch.is_grad_enabled() and q.device.type == 'cpu'):
        return _reference_attention(q, k, v, bias, scale, dropout_p)
    if torch.compiler.is_exporting() and (bias is not None or isinstance(k.shape[-2], int)):
        return _reference_attention(q, k, v, bias, scale, dropout_p)
    return _fused_attention(q, k, v, bias, scale, dropout_p, _broadcast_lead(q, k, v))


def _broadcast_lead(*tensors: torch.Tensor) -> Tuple[int, ...]:
    """The broadcast leading shape (all dims but the last two) of ``tensors``, in plain
    Python: this runs on every call, and ``torch.broadcast_shapes`` costs ~10 us there."""
    # sizes may be traced tensors (also in a concrete-size trace: FLOP counting) or SymInts
    if torch.jit.is_tracing() or symbolic_shapes():
        return tuple(torch.broadcast_shapes(*(t.shape[:-2] for t in tensors)))
    n = max(t.dim() for t in tensors) - 2
    lead = []
    for i in range(n, 0, -1):
        sizes = {t.shape[-2 - i] for t in tensors if t.dim() - 2 >= i} - {1}
        if len(sizes) > 1:
            raise RuntimeError('attention inputs do not broadcast: leading shapes ' +
                               ', '.join(str(tuple(t.shape[:-2])) for t in tensors))
        lead.append(sizes.pop() if sizes else 1)
    return tuple(lead)


def _reference_attention(q, k, v, bias, scale, dropout_p):
    attn = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        if bias.dtype == torch.bool:
            attn = attn.masked_fill(~bias, float('-inf'))
        else:
            attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout_p > 0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


def _chunk_plan(q, k, v, bias, lead) -> Tuple[int, int, int]:
    """``(rows, heads, count)``: one chunk of :func:`_chunked_attention` takes ``rows``
    entries of the batch axis and ``heads`` of the head axis of the 4-D fold
    (:func:`_fold_to_4d`), about :data:`~.dispatch.CHUNK_BYTES` of attention matrix (at least one
    head); ``count`` chunks in all."""
    s = _fold_split(lead, bias)
    batch, heads = math.prod(lead[:s]), math.prod(lead[s:])
    per_head = q.shape[-2] * k.shape[-2] * q.element_size()
    chunk_heads = min(heads, max(1, dispatch.CHUNK_BYTES // max(per_head, 1)))
    rows = max(1, dispatch.CHUNK_BYTES // max(per_head * heads, 1)) if chunk_heads == heads else 1
    return rows, chunk_heads, -(-batch // rows) * -(-heads // chunk_heads)


def _chunked_attention(q, k, v, bias, scale, lead):
    """:func:`_reference_attention` in inference (no dropout) one chunk at a time
    (:func:`_chunk_plan`), so that each chunk's attention matrix stays in the cache between
    its two matmuls and softmax. The same arithmetic per row, and the same output dtype
    (under autocast too: the first chunk's)."""
    rows, heads, _ = _chunk_plan(q, k, v, bias, lead)
    q, k, v, bias = _fold_to_4d(q, k, v, bias, lead)
    out = None
    for i in range(0, q.shape[0], rows):
        for j in range(0, q.shape[1], heads):
            part = (slice(i, i + rows), slice(j, j + heads))
            b = None if bias is None else bias[tuple(p if n > 1 else slice(None)
                                                     for p, n in zip(part, bias.shape))]
            chunk = _reference_attention(q[part], k[part], v[part], b, scale, 0.)
            if out is None:
                out = chunk.new_empty(*q.shape[:-1], chunk.shape[-1])
            out[part] = chunk
    return out.reshape(*lead, *out.shape[-2:])


def _fused_attention(q, k, v, bias, scale, dropout_p, lead):
    folded = not (q.dim() == k.dim() == v.dim() == 4 and (bias is None or bias.dim() <= 4))
    if folded:
        q, k, v, bias = _fold_to_4d(q, k, v, bias, lead)
    dv = v.shape[-1]
    if q.device.type == 'cpu' and q.shape[-1] != dv:
        # The CPU flash kernel needs one head size for q, k and v (else: math fallback).
        # Zero columns change neither q @ k^T nor the kept output columns; the scale was
        # fixed above from the true head size.
        d = max(q.shape[-1], dv)
        if q.shape[-1] < d:
            q, k = F.pad(q, (0, d - q.shape[-1])), F.pad(k, (0, d - k.shape[-1]))
        if dv < d:
            v = F.pad(v, (0, d - dv))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    if out.shape[-1] != dv:
        out = out[..., :dv]
    # unfolded, ``out`` has the leading shape already (a reshape to the same shape would
    # still make torch.export ask whether the map is 1x1, where the layout is ambiguous)
    return out.reshape(*lead, *out.shape[-2:]) if folded else out
