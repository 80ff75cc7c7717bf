"""Fidelity to the released code without the released code: golden data.

``tests/golden/official_shapes.json`` (every state-dict key, shape and dtype of each
released variant) and ``official_logits.json`` (the released models' logits for seeded
weights and inputs) were written by ``tests/golden/make_golden.py`` from the released
model files (see its docstring to regenerate). Here the same seeded weights are rebuilt
from the table, converted by our converter (so its key rules meet checkpoints shaped by
the released code, not by our own mapping) and run through our classifiers.
"""
import json
import os.path as osp
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GOLDEN = osp.join(ROOT, 'tests', 'golden')
sys.path.insert(0, GOLDEN)

from synth import VARIANTS, seeded_input, synthesize  # noqa: E402

from mmscope.converters.engine import convert_to_mmscope, convert_to_official  # noqa: E402
from mmscope.converters.scalablevit import SCALABLEVIT  # noqa: E402
from mmscope.converters.scopevit import SCOPEVIT  # noqa: E402

SPECS = {'scopevit': SCOPEVIT, 'scalablevit': SCALABLEVIT}
CASES = [(family, arch, size) for family, vs in VARIANTS.items() for arch, size in vs]


def _load(name):
    with open(osp.join(GOLDEN, name)) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def golden():
    return _load('official_shapes.json'), _load('official_logits.json')['variants']


def _classifier(family, arch):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(Config.fromfile(SPECS[family].config_path(arch)).model)


def test_golden_data_covers_every_variant(golden):
    shapes, logits = golden
    names = {f'{f}-{a}' for f, a, _ in CASES}
    assert set(shapes) == names and set(logits) == names
    for name, rec in logits.items():
        out = torch.tensor(rec['logits'])
        assert out.shape == (rec['batch'], 1000) and out.std() > 0.5, name
        assert len(rec['source_sha256']) == 64


@pytest.mark.parametrize('family,arch,size', CASES, ids=[f'{f}-{a}' for f, a, _ in CASES])
def test_logits_match_released_model(golden, family, arch, size):
    """Seeded released-layout weights -> our converter (variant detected) -> our
    classifier: the logits are the released model's."""
    shapes, logits = golden
    name = f'{family}-{arch}'
    result = convert_to_mmscope(SPECS[family], synthesize(shapes[name]))
    assert result.variant == arch
    model = _classifier(family, arch)
    model.load_state_dict(result.state_dict, strict=True)
    model.eval()
    with torch.no_grad():
        got = model(seeded_input(size), mode='tensor')
    expected = torch.tensor(logits[name]['logits'])
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4, f'{name}: max |logit difference| {diff:.3g}'


@pytest.mark.parametrize('family,arch,size', CASES, ids=[f'{f}-{a}' for f, a, _ in CASES])
def test_converter_round_trip_reproduces_released_layout(golden, family, arch, size):
    """official -> ours -> official gives back exactly the released keys, order-free,
    with the released shapes and the same values."""
    shapes, _ = golden
    name = f'{family}-{arch}'
    official = synthesize(shapes[name])
    ours = convert_to_mmscope(SPECS[family], official).state_dict
    back = convert_to_official(SPECS[family], ours).state_dict
    assert set(back) == set(official)
    for key, value in official.items():
        assert back[key].shape == value.shape, key
        assert torch.equal(back[key], value), key
