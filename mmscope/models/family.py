"""Backbone family descriptors: everything the rest of mmscope knows about a family.

The descriptors of the built-in families are at the end of this module (their key tables
in :mod:`mmscope.models.utils.key_tables`); another family registers its own with
:func:`register_family` (as ``tests/fixtures/toy_family.py`` does). The converters, the
released-code loader, the benchmark's model list, the FLOPs tool, the configs' tests and
the backbone contract tests all read the registered descriptors (:func:`families`,
:func:`get_family`), so a new family is its backbone file, its key table, its descriptor
and its configs, nothing else.

What a descriptor holds, and what it derives from the backbone class:

* ``backbone``: the class (registered in ``mmscope.registry.MODELS``); its ``arch_zoo``
  (canonical arch name -> settings) and ``arch_aliases`` (other spelling -> canonical
  name) give :attr:`BackboneFamily.archs`, :meth:`~BackboneFamily.canonical_arch` and
  :meth:`~BackboneFamily.widths`;
* ``key_rules``: the :class:`~mmscope.models.utils.KeyRules` between the released
  checkpoint and our classifier keys, ``head_weight`` (the classifier key whose first
  dimension is the class count) and ``init_dense_extra`` (the value of a dense-backbone
  tensor the classifier lacks);
* ``cls_configs``: the classification config of every canonical arch, relative to the
  installed config root (:func:`mmscope.utils.configs.config_root`);
* ``no_decay_keys`` (from the backbone class, :attr:`MMScopeBackbone.no_decay_keys`):
  parameter-name fragments trained without weight decay, which
  :class:`mmscope.engine.BackboneOptimWrapperConstructor` adds to a recipe's
  ``paramwise_cfg``;
* ``official``: where the released code lives and how its models are built
  (:class:`OfficialCode`), or None for a family without released code.
"""
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch

from .backbones import ScalableViT, ScopeViT
from .utils import SCALABLEVIT_KEY_RULES, SCOPEVIT_KEY_RULES, resolve_arch_alias

__all__ = [
    'OfficialCode', 'BackboneFamily', 'register_family', 'unregister_family', 'families',
    'get_family', 'family_of_type', 'config_root', 'SCALABLEVIT', 'SCOPEVIT'
]


def config_root() -> str:
    """The folder of the installed configs (:func:`mmscope.utils.configs.config_root`)."""
    from ..utils.configs import config_root as root
    return root()


@dataclass(frozen=True)
class OfficialCode:
    """The released implementation of a family (not shipped, not a dependency).

    Args:
        repo: its repository, e.g. ``'github.com/xuesongnie/ScopeViT'``.
        path: the model file inside the repository.
        file: the name under which a user's folder holds a copy of that file.
        factories: canonical arch -> the released factory function's name.
        factory_kwargs: arguments every factory call gets unless the caller gives them.
        wrapper: the checkpoint entry its training script reads the weights from.
        fork_feat: the factory argument that makes it return every stage (dense
            prediction), or None if it has none.
    """
    repo: str
    path: str
    file: str
    factories: Mapping[str, str]
    factory_kwargs: Mapping[str, object] = field(default_factory=dict)
    wrapper: str = 'state_dict'
    fork_feat: Optional[str] = None


@dataclass(frozen=True)
class BackboneFamily:
    """What mmscope knows about one backbone family (see the module doc)."""
    backbone: type
    key_rules: object
    cls_configs: Mapping[str, str]
    head_weight: str = 'head.fc.weight'
    official: Optional[OfficialCode] = None
    init_dense_extra: Optional[Callable] = None

    # ------------------------------------------------------------------------ names
    @property
    def name(self) -> str:
        """The registry type, e.g. ``'ScopeViT'`` (``type='mmscope.ScopeViT'``)."""
        return self.backbone.__name__

    @property
    def key(self) -> str:
        """Lower-case name: config folder, model-name prefix (``scopevit-t``)."""
        return self.name.lower()

    @property
    def archs(self) -> Tuple[str, ...]:
        """Canonical arch names, in the order of ``arch_zoo``."""
        return tuple(self.backbone.arch_zoo)

    @property
    def aliases(self) -> Dict[str, str]:
        """Other spelling -> canonical arch name."""
        return dict(getattr(self.backbone, 'arch_aliases', {}))

    @property
    def no_decay_keys(self) -> Tuple[str, ...]:
        """Parameter-name fragments trained without weight decay (the backbone's)."""
        return tuple(self.backbone.no_decay_keys)

    def arch_names(self) -> List[str]:
        """Every accepted spelling (canonical names and aliases), sorted."""
        return sorted(set(self.archs) | set(self.aliases))

    def canonical_arch(self, arch: str) -> str:
        """``'t'`` -> ``'tiny'``; ValueError (naming the valid spellings) if unknown."""
        key = resolve_arch_alias(arch, self.aliases)
        if key not in self.archs:
            raise ValueError(f'unknown {self.name} arch {arch!r}; choose from '
                             f'{self.arch_names()}')
        return key

    def short_names(self, arch: str) -> List[str]:
        """The aliases of a canonical arch (``'tiny'`` -> ``['t']``)."""
        return [a for a, c in self.aliases.items() if c == arch]

    def widths(self, arch: str) -> List[int]:
        """Channels of every stage output of ``arch``."""
        return list(self.backbone.arch_zoo[self.canonical_arch(arch)]['embed_dims'])

    def config_path(self, arch: str) -> str:
        """The classification config of ``arch`` (an absolute path)."""
        return osp.join(config_root(), self.cls_configs[self.canonical_arch(arch)])


_FAMILIES: Dict[str, BackboneFamily] = {}


def register_family(family: BackboneFamily) -> BackboneFamily:
    """Make ``family`` known to every tool (re-registering the same class replaces it)."""
    if not isinstance(family, BackboneFamily):
        raise TypeError(f'expected a BackboneFamily, got {type(family).__name__}')
    missing = sorted(set(family.archs) - set(family.cls_configs))
    if missing:
        raise ValueError(f'{family.name}: no classification config for the archs {missing}')
    bad = {a: c for a, c in family.aliases.items() if c not in family.archs}
    if bad:
        raise ValueError(f'{family.name}: aliases of unknown archs {bad}')
    _FAMILIES[family.key] = family
    return family


def unregister_family(name: str) -> None:
    """Forget a family (tests that register a toy family clean up with this)."""
    _FAMILIES.pop(name.lower(), None)


def families() -> List[BackboneFamily]:
    """Every registered family (the built-in ones first)."""
    return list(_FAMILIES.values())


def get_family(name: str) -> BackboneFamily:
    """The family called ``name`` (``'scopevit'``, ``'ScopeViT'``...); ValueError if none."""
    found = {f.key: f for f in families()}
    key = str(name).lower()
    if key.startswith('mmscope.'):
        key = key[len('mmscope.'):]
    if key not in found:
        raise ValueError(f'unknown backbone family {name!r}; registered: {sorted(found)}')
    return found[key]


def family_of_type(type_name) -> Optional[BackboneFamily]:
    """The family of a backbone config ``type`` (``'ScopeViT'``, ``'mmscope.ScopeViT'`` or
    the class itself), or None if it is not an mmscope backbone."""
    if isinstance(type_name, type):
        return next((f for f in families() if f.backbone is type_name), None)
    name = str(type_name)
    if name.startswith('mmscope.'):
        name = name[len('mmscope.'):]
    return next((f for f in families() if f.name == name), None)


# ---------------------------------------------------------------------------------------
# the built-in families (registered in this order: the order of every family listing)
# ---------------------------------------------------------------------------------------
_SCALABLEVIT_OUTPUT_NORM = re.compile(r'norm(\d+)\.(weight|bias)')


def _scalablevit_dense_extra(key: str, shape: torch.Size) -> torch.Tensor:
    """The per-output LayerNorms ``norm0 .. norm{n-2}`` of the dense backbone have no
    released counterpart (the released model normalises only its last stage): they start
    as identity affines (weight 1, bias 0), their own initialisation. KeyError for any
    other key."""
    m = _SCALABLEVIT_OUTPUT_NORM.fullmatch(key)
    if m is None:
        raise KeyError(key)
    return (torch.ones if m.group(2) == 'weight' else torch.zeros)(shape)


#: What the rest of mmscope knows about ScalableViT (the fields: :class:`BackboneFamily`).
SCALABLEVIT = register_family(
    BackboneFamily(
        backbone=ScalableViT,
        key_rules=SCALABLEVIT_KEY_RULES,
        cls_configs={
            'small': 'scalablevit/scalablevit-s_8xb128_in1k.py',
            'base': 'scalablevit/scalablevit-b_8xb128_in1k.py',
            'large': 'scalablevit/scalablevit-l_8xb128_in1k.py',
        },
        # the released head: Linear(C, 4096) -> LN -> GELU -> Linear(4096, classes)
        head_weight='head.layers.1.fc.weight',
        init_dense_extra=_scalablevit_dense_extra,
        official=OfficialCode(
            repo='github.com/Yangr116/ScalableViT',
            path='image_classification/models/scalablevit.py',
            file='scalablevit.py',
            factories={
                'small': 'scalable_vit_small',
                'base': 'scalable_vit_base',
                'large': 'scalable_vit_large'
            },
            # the released main.py (--resume / --finetune) reads checkpoint['model']
            wrapper='model'),
    ))

#: What the rest of mmscope knows about ScopeViT (the fields: :class:`BackboneFamily`).
SCOPEVIT = register_family(
    BackboneFamily(
        backbone=ScopeViT,
        key_rules=SCOPEVIT_KEY_RULES,
        cls_configs={
            'xtiny': 'scopevit/scopevit-xt_8xb128_in1k.py',
            'tiny': 'scopevit/scopevit-t_8xb128_in1k.py',
            'small': 'scopevit/scopevit-s_8xb128_in1k.py',
        },
        # the released classifier is one Linear on the pooled last stage (LinearClsHead)
        head_weight='head.fc.weight',
        official=OfficialCode(
            repo='github.com/xuesongnie/ScopeViT',
            path='models/scopevit.py',
            file='scopevit.py',
            factories={
                'xtiny': 'scopevit_xtiny',
                'tiny': 'scopevit_tiny',
                'small': 'scopevit_small'
            },
            # the released factories default to 10 classes
            factory_kwargs={'num_classes': 1000},
            # timm's load_checkpoint and the released dense-prediction init read ``state_dict``
            wrapper='state_dict',
            fork_feat='fork_feat'),
    ))
