# Each backbone module registers its class in mmscope.registry.MODELS on import.
from .base import NotScriptableError
from .scalablevit import ScalableViT
from .scopevit import ScopeViT

__all__ = ['NotScriptableError', 'ScalableViT', 'ScopeViT']
