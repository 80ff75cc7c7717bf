from .checkpoint import (PATCH_ENV, TRUST_ENV, UntrustedCheckpointError,
                         checkpoint_allowlist, mmengine_is_patched, patch_mmengine, safe_load,
                         trust_checkpoint, trusted_files, unpatch_mmengine)

__all__ = [
    'PATCH_ENV', 'TRUST_ENV', 'UntrustedCheckpointError', 'checkpoint_allowlist',
    'mmengine_is_patched', 'patch_mmengine', 'safe_load', 'trust_checkpoint',
    'trusted_files', 'unpatch_mmengine'
]
