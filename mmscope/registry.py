"""mmscope's registries.

``MODELS`` is a child of mmengine's root ``MODELS`` with scope ``mmscope``. Because the
child hangs off the root, every downstream library reaches it by the scoped name
``type='mmscope.<Name>'`` (mmengine imports ``mmscope.registry`` on demand and then the
modules under ``locations``). Importing this file is cheap: it imports no mmdet/mmseg.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmscope', locations=['mmscope.models'])

__all__ = ['MODELS']
