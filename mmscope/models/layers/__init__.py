"""Building blocks shared by the mmscope backbones (one place each)."""
from .attention import (ATTN_IMPLS, attention_impl, get_attention_impl,
                        record_attention_calls, resolve_attention_impl,
                        scaled_dot_attention, set_attention_impl)
from .mlp import LayerScale, Mlp
from .padding import (grid_partition, grid_reverse, pad_amount, pad_to_multiple,
                      valid_mask, window_partition, window_reverse)

__all__ = [
    'ATTN_IMPLS', 'attention_impl', 'get_attention_impl', 'record_attention_calls',
    'resolve_attention_impl',
    'scaled_dot_attention', 'set_attention_impl', 'LayerScale', 'Mlp', 'grid_partition',
    'grid_reverse', 'pad_amount', 'pad_to_multiple', 'valid_mask', 'window_partition',
    'window_reverse'
]
