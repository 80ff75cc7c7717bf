"""mmscope models: importing this registers every component in ``mmscope.registry.MODELS``."""
from . import backbones  # noqa: F401
from .backbones import *  # noqa: F401,F403
