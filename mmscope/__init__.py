"""mmscope: ScopeViT and ScalableViT backbones for OpenMMLab 2.0.

Importing mmscope is cheap (no mmdet/mmseg/mmpretrain import). It changes three things
outside the package, each through one named function:

* :func:`mmscope.utils.checkpoint.patch_mmengine`: mmengine's checkpoint loading works
  on torch >= 2.6 without running arbitrary pickled code;
* :func:`mmscope.utils.configs.register_config_bases`: ``_base_ = ['mmscope::...']``
  resolves to the configs installed with the package;
* :func:`mmscope.utils.model_index.register_model_names`: our model names work in
  mmpretrain's ``get_model`` / ``list_models`` and in the libraries' inferencers.

All run here, so configs that load mmscope through ``custom_imports`` get the first one,
and scripts that import mmscope before reading a config get the second. Set
``MMSCOPE_PATCH_MMENGINE=0`` before the import to leave mmengine (and the libraries) as
they are; ``mmscope.utils.unpatch_mmengine()``, ``unregister_config_bases()`` and
``unregister_model_names()`` undo them later. The
models register on demand: building ``type='mmscope.ScopeViT'`` from any OpenMMLab registry
imports ``mmscope.models``.
"""
import os

from .utils.checkpoint import PATCH_ENV, patch_mmengine
from .utils.configs import register_config_bases
from .utils.model_index import register_model_names
from .version import __version__

if os.environ.get(PATCH_ENV, '1') != '0':
    patch_mmengine()
    register_config_bases()
    register_model_names()

__all__ = ['__version__']
