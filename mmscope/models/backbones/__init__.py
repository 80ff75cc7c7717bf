# Each backbone module registers its class in mmscope.registry.MODELS on import.
__all__ = []
