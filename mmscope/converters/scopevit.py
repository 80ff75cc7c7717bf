"""Official ScopeViT (xuesongnie/ScopeViT, timm-style) <-> mmscope checkpoints."""
from ..models.backbones.scopevit import KEY_RULES
from .engine import ModelSpec


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
    # the official classifier is one Linear on the pooled last stage (LinearClsHead ``fc``)
    head_weight = 'head.fc.weight'
    key_rules = KEY_RULES


SCOPEVIT = ScopeViTSpec()
