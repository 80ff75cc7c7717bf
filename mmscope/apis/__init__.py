"""What the tools do, as functions of the package: config handling, the library table,
running a config (train / test) and leaving a distributed job in order, the CPU
allocator setting they run under (:mod:`.allocator`); and, as
submodules, params and FLOPs (:mod:`.complexity`, ``get_flops.py``), inference on images
(:mod:`.inference`, ``demo/image_demo.py``). The shapes demo that runs them end to end is a
project beside the package (``projects/shapes_demo``).
"""
from . import complexity, inference
from .allocator import tune_cpu_allocator
from .config import build_model, load_config, model_cfg_for_cpu
from .libraries import LIBRARIES, Library, get_library, library_of
from .runner import (apply_common_args, build_runner, run_runner, shutdown_distributed,
                     trigger_visualization)

__all__ = [
    'LIBRARIES', 'Library', 'apply_common_args', 'build_model', 'build_runner', 'complexity',
    'get_library', 'inference', 'library_of', 'load_config', 'model_cfg_for_cpu', 'run_runner',
    'shutdown_distributed', 'trigger_visualization', 'tune_cpu_allocator'
]
