from .checkpoint import (MIN_MATCHED_FRACTION, PATCH_ENV, TRUST_ENV, CheckpointMismatchError,
                         NotACheckpointError, UntrustedCheckpointError, check_checkpoint_file,
                         checkpoint_allowlist, match_weights, mmengine_is_patched, patch_mmengine,
                         safe_load, trust_checkpoint, trusted_files, unpatch_mmengine, weights_of)
from .configs import (config_bases_registered, config_root, get_config_path, register_config_bases,
                      unregister_config_bases)
from .model_index import (NoPublishedWeightsError, model_names, model_names_registered,
                          register_model_names, unregister_model_names)

__all__ = [
    'MIN_MATCHED_FRACTION', 'PATCH_ENV', 'TRUST_ENV', 'CheckpointMismatchError',
    'NotACheckpointError', 'UntrustedCheckpointError', 'check_checkpoint_file',
    'checkpoint_allowlist', 'match_weights', 'mmengine_is_patched', 'patch_mmengine', 'safe_load',
    'trust_checkpoint', 'trusted_files', 'unpatch_mmengine', 'weights_of',
    'config_bases_registered', 'config_root', 'get_config_path', 'register_config_bases',
    'unregister_config_bases', 'NoPublishedWeightsError', 'model_names', 'model_names_registered',
    'register_model_names', 'unregister_model_names'
]
