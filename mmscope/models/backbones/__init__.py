# Each backbone module registers its class in mmscope.registry.MODELS on import.
from .scalablevit import ScalableViT
from .scopevit import ScopeViT

__all__ = ['ScalableViT', 'ScopeViT']
