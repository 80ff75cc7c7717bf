"""Checkpoint conversion between the official ScopeViT / ScalableViT layouts and mmscope."""
from .common import (ConversionError, num_params, read_checkpoint, sha256_of, summary,
                     unwrap_state_dict, write_checkpoint)

__all__ = ['ConversionError', 'num_params', 'read_checkpoint', 'sha256_of', 'summary',
           'unwrap_state_dict', 'write_checkpoint']
