# Each backbone module registers its class in mmscope.registry.MODELS on import.
from .scalablevit import ScalableViT

__all__ = ['ScalableViT']
