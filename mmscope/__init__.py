"""mmscope: ScopeViT and ScalableViT backbones for OpenMMLab 2.0.

Importing mmscope is cheap (no mmdet/mmseg/mmpretrain import) and changes one thing
outside it: :func:`mmscope.utils.checkpoint.patch_mmengine` makes mmengine's checkpoint
loading work on torch >= 2.6 without enabling arbitrary pickle execution. It runs here so
that configs loading mmscope through ``custom_imports`` get it too; set
``MMSCOPE_PATCH_MMENGINE=0`` before the import to leave mmengine as it is
(``mmscope.utils.unpatch_mmengine()`` undoes it later). The models register on demand:
building ``type='mmscope.ScopeViT'`` from any OpenMMLab registry imports ``mmscope.models``.
"""
import os

from .utils.checkpoint import PATCH_ENV, patch_mmengine
from .version import __version__

if os.environ.get(PATCH_ENV, '1') != '0':
    patch_mmengine()

__all__ = ['__version__']
