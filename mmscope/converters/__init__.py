"""Checkpoint conversion between the released layouts of every registered backbone family
and mmscope (:mod:`.engine`), and the checkpoint I/O all converters share (:mod:`.common`).

Importing this package alone stays cheap (``tools/model_converters/publish_model.py``
uses only the I/O); the engine, which builds models, is loaded on first use.
"""
from .common import (ConversionError, find_state_dict, meta_device, num_params, read_checkpoint,
                     sha256_of, write_checkpoint)

__all__ = [
    'ConversionError', 'find_state_dict', 'meta_device', 'num_params', 'read_checkpoint',
    'sha256_of', 'write_checkpoint', 'convert_to_mmscope', 'convert_to_official', 'detect_family',
    'get_layout'
]


def __getattr__(name):
    if name in ('convert_to_mmscope', 'convert_to_official', 'detect_family', 'get_layout'):
        from . import engine
        return getattr(engine, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
