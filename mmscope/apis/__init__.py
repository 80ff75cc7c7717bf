from .runner import (LIBRARIES, apply_common_args, build_runner, library_of,
                     load_config, trigger_visualization)

__all__ = ['LIBRARIES', 'apply_common_args', 'build_runner', 'library_of', 'load_config',
           'trigger_visualization']
