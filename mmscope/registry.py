"""mmscope's registries.

``MODELS`` and ``OPTIM_WRAPPER_CONSTRUCTORS`` are children of mmengine's root registries
with scope ``mmscope``. Because the children hang off the roots, every downstream library
reaches them by the scoped name ``type='mmscope.<Name>'`` (``constructor=
'mmscope.BackboneOptimWrapperConstructor'``): mmengine imports ``mmscope.registry`` on
demand and then the modules under ``locations``. Importing this file is cheap: it imports
no mmdet/mmseg.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmscope', locations=['mmscope.models'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmscope',
    locations=['mmscope.engine'])

__all__ = ['MODELS', 'OPTIM_WRAPPER_CONSTRUCTORS']
