"""mmscope's training parts for the downstream libraries' runners: the optimizer wrapper
constructor that reads the backbone (:class:`BackboneOptimWrapperConstructor`)."""
from .optim_wrapper_constructor import BackboneOptimWrapperConstructor, find_backbone

__all__ = ['BackboneOptimWrapperConstructor', 'find_backbone']
