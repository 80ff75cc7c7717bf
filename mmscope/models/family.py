"""Backbone family descriptors: everything the rest of mmscope knows about a family.

Each backbone module registers one :class:`BackboneFamily` next to its class
(:func:`register_family`). The converters, the released-code loader, the benchmark's model
list, the FLOPs tool, the configs' tests and the backbone contract tests all read the
registered descriptors (:func:`families`, :func:`get_family`), so a new family is its
backbone file (class + descriptor) and its configs, nothing else.

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
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

__all__ = ['OfficialCode', 'BackboneFamily', 'register_family', 'unregister_family',
           'families', 'get_family', 'family_of_type', 'config_root']


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
        key = str(arch).lower()
        key = self.aliases.get(key, key)
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
    """Every registered family (the built-in ones are registered by this call)."""
    from . import backbones  # noqa: F401  (each backbone module registers its family)
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
