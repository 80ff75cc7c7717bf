"""Build the released (official) ScopeViT / ScalableViT models from their source files.

mmscope does not ship or depend on the released code. Two optional checks use it: the
logits comparison in ``tests/test_converters.py`` and the released-code comparison of
``tools/analysis_tools/benchmark.py`` (``official:`` models, ``--vs-official``). Both read
the released model files from a folder the user provides:

* ``folder`` (or the ``MMSCOPE_OFFICIAL_CODE`` environment variable) holds the two files
  under the names ``scopevit.py`` and ``scalablevit.py`` (see :data:`OFFICIAL_SOURCES` for
  where each one lives in its repository);
* the released files import ``timm`` and ``einops``; ``deps`` (or
  ``MMSCOPE_OFFICIAL_DEPS``) is an optional extra ``sys.path`` entry holding them, so
  they need not be installed into the mmscope environment.
"""
import contextlib
import importlib.util
import io
import os
import os.path as osp
import sys
from types import ModuleType
from typing import Dict, Optional

import torch.nn as nn

#: Per family: the file name expected in the folder, where it comes from, and the released
#: factory function of each arch (aliases accepted by :func:`build_official_model`).
OFFICIAL_SOURCES: Dict[str, Dict] = {
    'scopevit': dict(
        file='scopevit.py', repo='github.com/xuesongnie/ScopeViT', path='models/scopevit.py',
        factories={'xtiny': 'scopevit_xtiny', 'tiny': 'scopevit_tiny',
                   'small': 'scopevit_small'},
        aliases={'xt': 'xtiny', 'x-tiny': 'xtiny', 't': 'tiny', 's': 'small'}),
    'scalablevit': dict(
        file='scalablevit.py', repo='github.com/Yangr116/ScalableViT',
        path='image_classification/models/scalablevit.py',
        factories={'small': 'scalable_vit_small', 'base': 'scalable_vit_base',
                   'large': 'scalable_vit_large'},
        aliases={'s': 'small', 'b': 'base', 'l': 'large'}),
}


class OfficialCodeUnavailable(RuntimeError):
    """The released model file or its dependencies cannot be found or imported."""


def _family(family: str) -> Dict:
    if family not in OFFICIAL_SOURCES:
        raise ValueError(f'unknown model family {family!r}; choose from '
                         f'{sorted(OFFICIAL_SOURCES)}')
    return OFFICIAL_SOURCES[family]


def official_arch(family: str, arch: str) -> str:
    """The released arch name of ``arch`` (``'t'`` -> ``'tiny'``); ValueError if unknown."""
    src = _family(family)
    name = src['aliases'].get(arch.lower(), arch.lower())
    if name not in src['factories']:
        valid = sorted(set(src['factories']) | set(src['aliases']))
        raise ValueError(f'unknown released {family} arch {arch!r}; choose from {valid}')
    return name


def import_official_module(family: str,
                           folder: Optional[str] = None,
                           deps: Optional[str] = None) -> ModuleType:
    """Import the released model file of ``family`` (quietly: it prints while building)."""
    src = _family(family)
    folder = folder or os.environ.get('MMSCOPE_OFFICIAL_CODE')
    deps = deps or os.environ.get('MMSCOPE_OFFICIAL_DEPS')
    path = osp.join(folder or '', src['file'])
    if not folder or not osp.isfile(path):
        raise OfficialCodeUnavailable(
            f'the released {family} code is needed: pass a folder (or set '
            f'MMSCOPE_OFFICIAL_CODE) holding {src["file"]}, a copy of {src["path"]} from '
            f'{src["repo"]}' + (f'; {path} does not exist' if folder else ''))
    if deps and deps not in sys.path:
        sys.path.append(deps)
    name = f'mmscope_official_{family}'
    if name in sys.modules and getattr(sys.modules[name], '__file__', None) == path:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # timm's register_model looks the module up
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module_spec.loader.exec_module(module)
    except ImportError as e:
        del sys.modules[name]
        raise OfficialCodeUnavailable(
            f'{path} could not be imported ({e}); the released code needs timm and einops: '
            'install them or pass their folder (MMSCOPE_OFFICIAL_DEPS)') from e
    return module


def build_official_model(family: str,
                         arch: str,
                         folder: Optional[str] = None,
                         deps: Optional[str] = None,
                         **kwargs) -> nn.Module:
    """The released model of ``family``/``arch`` through its own factory function.

    ``kwargs`` go to the factory (the released ScopeViT defaults to 10 classes, so
    ``num_classes=1000`` is passed for it unless given).
    """
    arch = official_arch(family, arch)
    module = import_official_module(family, folder, deps)
    if family == 'scopevit':
        kwargs.setdefault('num_classes', 1000)
    with contextlib.redirect_stdout(io.StringIO()):
        return getattr(module, OFFICIAL_SOURCES[family]['factories'][arch])(**kwargs)
