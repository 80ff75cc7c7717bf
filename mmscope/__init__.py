"""mmscope: ScopeViT and ScalableViT backbones for OpenMMLab 2.0.

Importing mmscope is cheap (no mmdet/mmseg/mmpretrain import). It makes mmengine's
checkpoint loading work on torch >= 2.6 without enabling arbitrary pickle execution
(see :mod:`mmscope.utils.checkpoint`). The models register on demand: building
``type='mmscope.ScopeViT'`` from any OpenMMLab registry imports ``mmscope.models``.
"""
from .utils.checkpoint import patch_mmengine
from .version import __version__

patch_mmengine()

__all__ = ['__version__']
