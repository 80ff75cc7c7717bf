"""Build the released (official) models of the backbone families from their source files.

mmscope does not ship or depend on the released code. Optional checks use it: the logits
comparison in ``tests/test_converters/test_converters.py``, the golden data of
``tests/golden`` and the released-code comparison of ``tools/analysis_tools/benchmark.py``
(``official:`` models, ``--vs-official``). They read the released model files from a
folder the user provides:

* ``folder`` (or the ``MMSCOPE_OFFICIAL_CODE`` environment variable) holds one file per
  family, under the name its descriptor gives (``OfficialCode.file``: ``scopevit.py``,
  ``scalablevit.py``; ``OfficialCode.repo`` / ``.path`` say where each comes from);
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
from typing import Dict, Optional, Tuple

import torch.nn as nn

from ..models.family import BackboneFamily, OfficialCode, families, get_family
from ..models.utils import resolve_arch_alias


class OfficialCodeUnavailable(RuntimeError):
    """The released model file or its dependencies cannot be found or imported."""


def released_families() -> Dict[str, BackboneFamily]:
    """Family key -> descriptor, for every registered family with released code."""
    return {f.key: f for f in families() if f.official is not None}


def _family(family: str) -> Tuple[BackboneFamily, OfficialCode]:
    released = released_families()
    if str(family).lower() not in released:
        raise ValueError(f'unknown model family {family!r}; choose from {sorted(released)}')
    fam = get_family(family)
    return fam, fam.official


def official_arch(family: str, arch: str) -> str:
    """The released arch name of ``arch`` (``'t'`` -> ``'tiny'``) of a family with released
    code, from its descriptor's ``official.factories``; ValueError if unknown."""
    fam, src = _family(family)
    name = resolve_arch_alias(arch, fam.aliases)
    if name not in src.factories:
        valid = sorted(
            set(src.factories) | {a
                                  for a, c in fam.aliases.items() if c in src.factories})
        raise ValueError(f'unknown released {fam.key} arch {arch!r}; choose from {valid}')
    return name


def import_official_module(family: str,
                           folder: Optional[str] = None,
                           deps: Optional[str] = None) -> ModuleType:
    """Import the released model file of ``family`` (quietly: it prints while building)."""
    fam, src = _family(family)
    family = fam.key
    folder = folder or os.environ.get('MMSCOPE_OFFICIAL_CODE')
    deps = deps or os.environ.get('MMSCOPE_OFFICIAL_DEPS')
    path = osp.join(folder or '', src.file)
    if not folder or not osp.isfile(path):
        raise OfficialCodeUnavailable(
            f'the released {family} code is needed: pass a folder (or set '
            f'MMSCOPE_OFFICIAL_CODE) holding {src.file}, a copy of {src.path} from '
            f'{src.repo}' + (f'; {path} does not exist' if folder else ''))
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

    ``kwargs`` go to the factory, on top of the descriptor's ``factory_kwargs`` (e.g. the
    released ScopeViT defaults to 10 classes, so ``num_classes=1000`` is passed for it).
    """
    _, src = _family(family)
    arch = official_arch(family, arch)
    module = import_official_module(family, folder, deps)
    kwargs = {**src.factory_kwargs, **kwargs}
    with contextlib.redirect_stdout(io.StringIO()):
        return getattr(module, src.factories[arch])(**kwargs)
