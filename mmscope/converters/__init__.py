"""Checkpoint conversion between the official ScopeViT / ScalableViT layouts and mmscope.

The family specs (:data:`SCOPEVIT`, :data:`SCALABLEVIT`) import the backbones, so they are
loaded lazily: ``from mmscope.converters import SCOPEVIT`` works, while importing this
package alone stays cheap (``tools/model_converters/publish_model.py`` uses only the I/O).
"""
from .common import (ConversionError, find_state_dict, meta_device, num_params,
                     read_checkpoint, sha256_of, summary, unwrap_state_dict,
                     write_checkpoint)

__all__ = [
    'ConversionError', 'find_state_dict', 'meta_device', 'num_params', 'read_checkpoint',
    'sha256_of', 'summary', 'unwrap_state_dict', 'write_checkpoint', 'SCOPEVIT',
    'SCALABLEVIT', 'convert_to_mmscope', 'convert_to_official', 'get_layout'
]


def __getattr__(name):
    if name == 'SCOPEVIT':
        from .scopevit import SCOPEVIT
        return SCOPEVIT
    if name == 'SCALABLEVIT':
        from .scalablevit import SCALABLEVIT
        return SCALABLEVIT
    if name in ('convert_to_mmscope', 'convert_to_official', 'get_layout'):
        from . import engine
        return getattr(engine, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
