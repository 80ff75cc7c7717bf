"""Outputs of every mmscope variant for seeded weights: the before/after record of a refactor.

    python tests/golden/make_eager_outputs.py [--out tests/golden/eager_outputs.pt] [--full]

For each released arch of both families, the dense backbone (every stage as output) gets
the seeded weights of :func:`synth.synthesize` (drawn from its own key/shape table, so the
weights depend only on the state-dict layout, which a refactor must keep) and runs in eval
mode on two seeded inputs: an odd size that needs every padding path and a size whose maps
fit the released models. Small outputs are stored whole; for large ones the sum, the sum of
absolute values and an evenly strided sample of 4096 values. ``--full`` stores every output
whole (for a bit-for-bit comparison on one machine; too large for git).

``tests/test_models/test_backbones/test_golden.py`` rebuilds the weights and compares.
The stored file was written before the architecture refactor (the code of commit c298dee),
with ``OMP_NUM_THREADS=1``.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

import torch

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)

from synth import synthesize  # noqa: E402

#: family registry type -> [(arch, sizes)]: an odd size and a size without padding
CASES = OrderedDict([
    ('ScopeViT', [('xtiny', [(67, 91), (256, 256)]), ('tiny', [(67, 91), (256, 256)]),
                  ('small', [(67, 91), (256, 256)])]),
    ('ScalableViT', [('small', [(67, 91), (224, 224)]), ('base', [(67, 91), (224, 224)]),
                     ('large', [(67, 91), (224, 224)])]),
])
WHOLE_LIMIT = 20000
SAMPLES = 4096
SEED = 3


def build(family: str, arch: str) -> torch.nn.Module:
    import mmscope  # noqa: F401
    from mmscope.registry import MODELS
    return MODELS.build(dict(type=f'mmscope.{family}', arch=arch, out_indices=(0, 1, 2, 3)))


def seeded_weights(model: torch.nn.Module) -> 'OrderedDict':
    table = [(k, list(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]
    return synthesize(table, seed=SEED)


def seeded_image(h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(h * 1000 + w)
    return torch.randn(1, 3, h, w, generator=g)


def summarize(t: torch.Tensor, full: bool) -> dict:
    flat = t.detach().flatten().double()
    if full or flat.numel() <= WHOLE_LIMIT:
        return dict(shape=tuple(t.shape), whole=t.detach().clone())
    return dict(
        shape=tuple(t.shape),
        sum=flat.sum().item(),
        abs_sum=flat.abs().sum().item(),
        sample=t.detach().flatten()[sample_index(flat.numel())].clone())


def sample_index(numel: int) -> torch.Tensor:
    """The evenly strided positions of the stored sample of a large output."""
    return torch.linspace(0, numel - 1, SAMPLES).long()


def outputs(full: bool = False) -> 'OrderedDict':
    torch.manual_seed(0)
    record = OrderedDict()
    for family, archs in CASES.items():
        for arch, sizes in archs:
            model = build(family, arch)
            model.load_state_dict(seeded_weights(model))
            model.eval()
            for h, w in sizes:
                with torch.no_grad():
                    outs = model(seeded_image(h, w))
                record[f'{family}-{arch}-{h}x{w}'] = [summarize(o, full) for o in outs]
            del model
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=osp.join(HERE, 'eager_outputs.pt'))
    p.add_argument('--full', action='store_true', help='store every output whole')
    args = p.parse_args(argv)
    torch.save(dict(seed=SEED, torch=str(torch.__version__), outputs=outputs(args.full)), args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
