"""What the tools do, as functions of the package: config handling, the library table,
running a config (train / test) and leaving a distributed job in order."""
from .config import build_model, load_config, model_cfg_for_cpu
from .libraries import LIBRARIES, Library, get_library, library_of
from .runner import (apply_common_args, build_runner, run_runner, shutdown_distributed,
                     trigger_visualization)

__all__ = ['LIBRARIES', 'Library', 'apply_common_args', 'build_model', 'build_runner',
           'get_library', 'library_of', 'load_config', 'model_cfg_for_cpu', 'run_runner',
           'shutdown_distributed', 'trigger_visualization']
