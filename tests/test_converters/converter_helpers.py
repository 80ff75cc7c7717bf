"""What the converter tests share: the official-layout state dicts they convert and the
converter's command line run in-process (``tests/test_converters/test_*.py``)."""
import os
import os.path as osp
import runpy
from collections import OrderedDict

import torch

import mmscope  # noqa: F401  (safe checkpoint loading in mmengine)
from mmscope.converters.engine import get_layout
from mmscope.models.family import get_family

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTERS = osp.join(ROOT, 'tools', 'model_converters')
# the converter's command line, loaded from the tool (not run as __main__)
main = runpy.run_path(osp.join(CONVERTERS, 'official_to_mmscope.py'))['main']
SPECS = {name: get_family(name) for name in ('scopevit', 'scalablevit')}
SCOPEVIT = SPECS['scopevit']
VARIANTS = [('scopevit', 'xtiny'), ('scopevit', 'tiny'), ('scopevit', 'small'),
            ('scalablevit', 'small'), ('scalablevit', 'base'), ('scalablevit', 'large')]


def _layout(family, arch, num_classes=None):
    spec = SPECS[family]
    return get_layout(spec.config_path(arch), num_classes)


def official_state_dict(family, arch, seed=0, scale=1.0, num_classes=None):
    """A random state dict in the official layout of ``family``/``arch``."""
    spec, layout = SPECS[family], _layout(family, arch, num_classes)
    numels = [torch.Size(s).numel() for s in layout.shapes.values()]
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(max(numels) + len(numels), generator=g) * scale
    sd = OrderedDict()
    for i, ((key, shape), n) in enumerate(zip(layout.shapes.items(), numels)):
        name = spec.key_rules.mmscope_to_official_key(key, layout.num_stages)
        if key.endswith('num_batches_tracked'):
            sd[name] = torch.tensor(i, dtype=torch.long)
        elif key.endswith('running_var'):
            sd[name] = base[i:i + n].abs().add(0.5).view(shape)
        else:
            sd[name] = base[i:i + n].view(shape)
    return sd


def convert(capsys, family, *argv):
    """Run the converter's command line in-process; returns (exit code, output)."""
    try:
        main(['--family', family, *map(str, argv)], prog='official_to_mmscope.py')
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_same_tensors(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def _refused(capsys, family, src, dst, *extra, expect=()):
    code, out = convert(capsys, family, src, dst, *extra)
    assert code == 1, out
    assert out.startswith('error: ') or '\nerror: ' in out, out
    for text in expect:
        assert text in out, out
    assert not osp.exists(dst)
    assert not [f for f in os.listdir(osp.dirname(dst)) if f.startswith('.tmp-')]
    return out
