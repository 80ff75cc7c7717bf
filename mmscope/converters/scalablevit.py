"""Official ScalableViT (Yangr116/ScalableViT, DeiT-style) <-> mmscope checkpoints."""
import re

import torch

from ..models.backbones.scalablevit import KEY_RULES
from .engine import ModelSpec

_OUTPUT_NORM = re.compile(r'norm(\d+)\.(weight|bias)')


class ScalableViTSpec(ModelSpec):
    name = 'ScalableViT'
    config_dir = 'scalablevit'
    official_repo = 'github.com/Yangr116/ScalableViT'
    # the official main.py (--resume / --finetune) reads checkpoint['model']
    official_wrapper = 'model'
    archs = {
        'small': 'scalablevit-s_8xb128_in1k.py',
        'base': 'scalablevit-b_8xb128_in1k.py',
        'large': 'scalablevit-l_8xb128_in1k.py',
    }
    aliases = {'s': 'small', 'b': 'base', 'l': 'large'}
    head_weight = 'head.layers.1.fc.weight'
    key_rules = KEY_RULES

    def init_dense_extra(self, key: str, shape: torch.Size) -> torch.Tensor:
        """The per-output LayerNorms ``norm0 .. norm{n-2}`` of the dense backbone have no
        released counterpart (the released model normalises only its last stage): they
        start as identity affines (weight 1, bias 0), their own initialisation."""
        m = _OUTPUT_NORM.fullmatch(key)
        if m is None:
            return super().init_dense_extra(key, shape)
        fill = torch.ones if m.group(2) == 'weight' else torch.zeros
        return fill(shape)


SCALABLEVIT = ScalableViTSpec()
