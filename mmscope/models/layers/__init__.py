"""Building blocks shared by the mmscope backbones (one place each)."""
from .attention import (ATTN_IMPLS, attention_impl, attention_path, get_attention_impl,
                        resolve_attention_impl, scaled_dot_attention, set_attention_impl)
from .cache import DerivedCache
from .conv import (conv_bn, conv_fp32_in_cpu_training, folded_conv_bn, folds_into_conv,
                   store_channels_last)
from .dispatch import (attention_benchmark, clear_dispatch_cache, cpu_dispatch_rules,
                       dispatch_choices, set_attention_benchmark)
from .mlp import LayerScale, Mlp
from .padding import (concrete_shapes, crop, crop_to, export_layout, flat_view, fx_tracing,
                      grid_partition, grid_reverse, group_valid_mask, make_contiguous,
                      map_to_tokens, pad_amount, pad_to_multiple, symbolic_shapes)

__all__ = [
    'ATTN_IMPLS', 'DerivedCache', 'conv_bn', 'folded_conv_bn', 'folds_into_conv', 'attention_impl',
    'attention_path', 'attention_benchmark', 'clear_dispatch_cache', 'conv_fp32_in_cpu_training',
    'cpu_dispatch_rules', 'dispatch_choices', 'get_attention_impl', 'set_attention_benchmark',
    'resolve_attention_impl', 'scaled_dot_attention', 'set_attention_impl', 'store_channels_last',
    'LayerScale', 'Mlp', 'concrete_shapes', 'export_layout', 'crop', 'crop_to', 'flat_view',
    'fx_tracing', 'grid_partition', 'grid_reverse', 'make_contiguous', 'map_to_tokens',
    'pad_amount', 'pad_to_multiple', 'symbolic_shapes', 'group_valid_mask'
]
