from .checkpoint import (TRUST_ENV, UntrustedCheckpointError, checkpoint_allowlist,
                         patch_mmengine, safe_load, trust_checkpoint, trusted_files)

__all__ = [
    'TRUST_ENV', 'UntrustedCheckpointError', 'checkpoint_allowlist', 'patch_mmengine',
    'safe_load', 'trust_checkpoint', 'trusted_files'
]
