from .runner import (LIBRARIES, apply_common_args, build_runner, library_of,
                     load_config, run_runner, shutdown_distributed, trigger_visualization)

__all__ = ['LIBRARIES', 'apply_common_args', 'build_runner', 'library_of', 'load_config',
           'run_runner', 'shutdown_distributed', 'trigger_visualization']
