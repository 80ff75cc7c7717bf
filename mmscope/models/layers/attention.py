"""One attention kernel for every mmscope attention module.

``scaled_dot_attention`` computes ``softmax(q @ k^T * scale + bias) @ v`` either through
:func:`torch.nn.functional.scaled_dot_product_attention` (``'fused'``, the default: flash /
memory-efficient kernels that never hold the full attention matrix where the backend
allows it) or through plain matmul + softmax (``'reference'``, kept for tests and for the
side-by-side benchmark). Both read the same arguments and compute the same function.
"""
import contextlib
import threading
from typing import Optional

import torch
import torch.nn.functional as F

ATTN_IMPLS = ('fused', 'reference')
_state = threading.local()


def _check_impl(impl: str) -> str:
    if impl not in ATTN_IMPLS:
        raise ValueError(f'attention impl must be one of {ATTN_IMPLS}, got {impl!r}')
    return impl


def get_attention_impl() -> str:
    """The process-wide default used by modules whose ``attn_impl`` is ``None``."""
    return getattr(_state, 'impl', 'fused')


def set_attention_impl(impl: str) -> None:
    """Set the default attention implementation (``'fused'`` or ``'reference'``)."""
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
        impl: ``'fused'``, ``'reference'`` or None for :func:`get_attention_impl`.
    """
    impl = resolve_attention_impl(impl)
    if scale is None:
        scale = q.shape[-1]**-0.5
    if impl == 'fused':
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
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
