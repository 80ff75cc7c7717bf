"""Seeded weights and inputs for the golden data of the released models.

Both sides use these functions: ``make_golden.py`` (with the released code) loads the
weights into the released model and stores its logits;
``tests/test_models/test_backbones/test_golden.py`` (without it) rebuilds the
same weights from the stored key/shape table, converts them with our converter and
compares our logits with the stored ones.
"""
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import torch

#: family -> (arch, input size) of every released variant
VARIANTS: Dict[str, List[Tuple[str, int]]] = {
    # the released ScopeViT needs inputs that are multiples of 256, ScalableViT of 224
    'scopevit': [('xtiny', 256), ('tiny', 256), ('small', 256)],
    'scalablevit': [('small', 224), ('base', 224), ('large', 224)],
}
WEIGHT_SEED = 0
INPUT_SEED = 1
BATCH = 2


def synthesize(table: Sequence[Sequence], seed: int = WEIGHT_SEED) -> 'OrderedDict':
    """A state dict with every tensor of ``table`` (``[key, shape, dtype, kind]`` rows, in
    the released model's order) random, at scales that keep the logits O(1)."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for key, shape, dtype, *_ in table:
        shape = torch.Size(shape)
        if not dtype.startswith('torch.float'):
            sd[key] = torch.full(shape, 5, dtype=getattr(torch, dtype.split('.')[1]))
        elif key.endswith('running_var'):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(('running_mean', 'bias')):
            sd[key] = torch.randn(shape, generator=g) * 0.05
        elif key.endswith('gamma'):
            sd[key] = torch.rand(shape, generator=g) * 0.8 + 0.2
        elif len(shape) == 1:
            sd[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            sd[key] = torch.randn(shape, generator=g) / shape[1:].numel()**0.5
    return sd


def seeded_input(size: int, seed: int = INPUT_SEED) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, 3, size, size, generator=g)


def load_golden() -> Tuple[dict, dict]:
    """The stored golden data: ``(official_shapes.json, official_logits.json['variants'])``
    (key/shape/dtype tables and released logits per ``family-arch``)."""
    here = osp.dirname(osp.abspath(__file__))
    with open(osp.join(here, 'official_shapes.json')) as f:
        shapes = json.load(f)
    with open(osp.join(here, 'official_logits.json')) as f:
        logits = json.load(f)['variants']
    return shapes, logits
