from .checkpoint import (PATCH_ENV, TRUST_ENV, UntrustedCheckpointError,
                         checkpoint_allowlist, mmengine_is_patched, patch_mmengine, safe_load,
                         trust_checkpoint, trusted_files, unpatch_mmengine)
from .configs import (config_bases_registered, config_root, get_config_path,
                      register_config_bases, unregister_config_bases)

__all__ = [
    'PATCH_ENV', 'TRUST_ENV', 'UntrustedCheckpointError', 'checkpoint_allowlist',
    'mmengine_is_patched', 'patch_mmengine', 'safe_load', 'trust_checkpoint',
    'trusted_files', 'unpatch_mmengine', 'config_bases_registered', 'config_root',
    'get_config_path', 'register_config_bases', 'unregister_config_bases'
]
