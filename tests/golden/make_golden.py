"""Write the golden data of the released models (run by a developer, never by CI).

    MMSCOPE_OFFICIAL_CODE=DIR MMSCOPE_OFFICIAL_DEPS=DEPS python tests/golden/make_golden.py

``DIR`` holds the released ``scopevit.py`` (xuesongnie/ScopeViT ``models/scopevit.py``) and
``scalablevit.py`` (Yangr116/ScalableViT ``image_classification/models/scalablevit.py``);
``DEPS`` a folder with timm and einops (e.g. ``pip install --no-deps --target DEPS
timm==1.0.31 einops==0.8.2 huggingface_hub safetensors``). Neither is committed.

Writes, next to this file:

* ``official_shapes.json``: per variant, the released model's state-dict keys, shapes,
  dtypes and kinds (``param`` or ``buffer``), in its order;
* ``official_logits.json``: per variant, the released model's logits (eval mode) for the
  seeded weights and input of :mod:`synth`, with the commits of the released files.
"""
import hashlib
import json
import os
import os.path as osp
import sys

import torch

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, osp.dirname(osp.dirname(HERE)))

from synth import BATCH, INPUT_SEED, VARIANTS, WEIGHT_SEED, seeded_input, synthesize  # noqa

from mmscope.converters.official_code import build_official_model  # noqa
from mmscope.models.family import get_family  # noqa


def main():
    folder = os.environ.get('MMSCOPE_OFFICIAL_CODE')
    if not folder:
        sys.exit('set MMSCOPE_OFFICIAL_CODE (and MMSCOPE_OFFICIAL_DEPS), see the docstring')
    torch.set_num_threads(max(1, torch.get_num_threads()))
    shapes, logits = {}, {}
    for family, variants in VARIANTS.items():
        src = get_family(family).official
        with open(osp.join(folder, src.file), 'rb') as f:
            source_sha = hashlib.sha256(f.read()).hexdigest()
        for arch, size in variants:
            name = f'{family}-{arch}'
            torch.manual_seed(0)
            model = build_official_model(family, arch).eval()
            params = {k for k, _ in model.named_parameters()}
            table = [[k, list(v.shape),
                      str(v.dtype), 'param' if k in params else 'buffer']
                     for k, v in model.state_dict().items()]
            model.load_state_dict(synthesize(table), strict=True)
            with torch.no_grad():
                out = model(seeded_input(size))
            shapes[name] = table
            logits[name] = dict(
                size=size,
                batch=BATCH,
                weight_seed=WEIGHT_SEED,
                input_seed=INPUT_SEED,
                source=src.repo + '/' + src.path,
                source_sha256=source_sha,
                logits=out.tolist())
            print(f'{name}: {len(table)} tensors, logits std {out.std():.3f}', flush=True)
    with open(osp.join(HERE, 'official_shapes.json'), 'w') as f:
        json.dump(shapes, f, separators=(',', ':'))
    with open(osp.join(HERE, 'official_logits.json'), 'w') as f:
        json.dump(dict(torch=torch.__version__, variants=logits), f, separators=(',', ':'))


if __name__ == '__main__':
    main()
