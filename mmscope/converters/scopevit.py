"""Official ScopeViT (xuesongnie/ScopeViT, timm-style) <-> mmscope checkpoints."""
from ..models.backbones.scopevit import mmscope_to_official_key, official_to_mmscope_key
from .engine import BACKBONE, ModelSpec

# The official classifier is one Linear on the pooled last stage; mmpretrain's
# LinearClsHead calls it ``fc``.
_HEAD = {'head.weight': 'head.fc.weight', 'head.bias': 'head.fc.bias'}
_HEAD_BACK = {v: k for k, v in _HEAD.items()}


class ScopeViTSpec(ModelSpec):
    name = 'ScopeViT'
    config_dir = 'scopevit'
    official_repo = 'github.com/xuesongnie/ScopeViT'
    # timm's load_checkpoint and the official dense-prediction init read ``state_dict``
    official_wrapper = 'state_dict'
    archs = {
        'xtiny': 'scopevit-xt_8xb128_in1k.py',
        'tiny': 'scopevit-t_8xb128_in1k.py',
        'small': 'scopevit-s_8xb128_in1k.py',
    }
    aliases = {'xt': 'xtiny', 'x-tiny': 'xtiny', 't': 'tiny', 's': 'small'}
    head_weight = 'head.fc.weight'

    def official_to_ours(self, key: str, num_stages: int) -> str:
        if key in _HEAD:
            return _HEAD[key]
        return BACKBONE + official_to_mmscope_key(key)

    def ours_to_official(self, key: str, num_stages: int) -> str:
        if key in _HEAD_BACK:
            return _HEAD_BACK[key]
        if not key.startswith(BACKBONE):
            raise KeyError(key)
        return mmscope_to_official_key(key[len(BACKBONE):])


SCOPEVIT = ScopeViTSpec()
