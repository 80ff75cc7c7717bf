"""The benchmark's models: the ``--model`` spec language and building what a spec names.

A spec (a ``--model`` value) is one of

* ``<family>-<arch>``: an arch of a registered mmscope backbone family
  (:func:`mmscope.models.family.families`), e.g. ``scopevit-t`` or ``scalablevit-small``;
  every accepted name, aliases included, is listed by :func:`mmscope_models`, which reads
  the registered descriptors when it is called, so a newly registered family is in the
  list and builds like the built-in ones;
* ``LIB:Type[:arch][:k=v,k=v]``: a backbone of an OpenMMLab library, LIB one of
  :func:`library_names` (the rows of :data:`mmscope.apis.libraries.LIBRARIES` and
  ``mmscope`` itself); a number as ``arch`` is the ``depth`` (``mmpretrain:ResNet:50``);
* ``pvtv2-b0`` .. ``pvtv2-b3``: mmdet's PVT-v2 with the published settings;
* ``official:FAMILY-ARCH``: the released code of a family whose descriptor has
  ``official`` set, built by :func:`build_official`;
* a config file (``.py``): its ``model.backbone``, built by the config's library, with
  ``Pretrained`` init configs dropped and SyncBN as BN.

Extra constructor arguments are appended as ``:k=v,k=v`` (values are Python literals).
:func:`parse_model` turns a spec into a JSON-able dict (it travels to the worker process),
:func:`resolve_backbone` into ``(library, backbone cfg)``, :func:`build_backbone` builds it.
"""
import ast
import inspect
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn

from mmscope.apis.config import strip_pretrained, sync_bn_to_bn
from mmscope.apis.libraries import LIBRARIES
from mmscope.converters.official_code import official_arch
from mmscope.models.family import BackboneFamily, families, family_of_type, get_family

__all__ = [
    'PVTV2', 'library_names', 'registry', 'mmscope_models', 'parse_kwargs', 'parse_model',
    'resolve_backbone', 'is_mmscope', 'twin_of', 'build_backbone', 'build_official',
    'ReleasedFeatures', 'build_case_model'
]

#: mmdet's PyramidVisionTransformerV2 with the published b0-b3 settings (the other
#: arguments keep mmdet's defaults, which are the published ones).
PVTV2 = {
    'b0': dict(embed_dims=32, num_layers=[2, 2, 2, 2]),
    'b1': dict(embed_dims=64, num_layers=[2, 2, 2, 2]),
    'b2': dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
    'b3': dict(embed_dims=64, num_layers=[3, 4, 18, 3]),
}


# ---------------------------------------------------------------------------- libraries
def library_names() -> Tuple[str, ...]:
    """The ``LIB`` of ``LIB:Type`` specs: every served library, then ``mmscope``."""
    return tuple(LIBRARIES) + ('mmscope', )


def registry(library: str):
    """The ``MODELS`` registry of ``library`` (imports the library); ValueError if unknown."""
    if library == 'mmscope':
        import mmscope.models  # noqa: F401  (registers the backbones)
        from mmscope.registry import MODELS
        return MODELS
    if library not in LIBRARIES:
        raise ValueError(f'unknown library {library!r}')
    return LIBRARIES[library].models()


# ---------------------------------------------------------------------------- specs
def mmscope_models() -> List[str]:
    """Every ``<family.key>-<arch>`` name of the families registered now (canonical arch
    names and aliases), in registration order: the mmscope part of the model list."""
    return [f'{fam.key}-{arch}' for fam in families() for arch in fam.arch_names()]


def _families_by_key() -> Dict[str, BackboneFamily]:
    return {fam.key: fam for fam in families()}


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_kwargs(text: str) -> Dict:
    """``'a=1,b=[1,2],c=x'`` -> dict (commas inside brackets do not split; values are
    Python literals, anything else a string); ValueError for an item without ``=``."""
    out, depth, cur = {}, 0, ''
    for ch in text + ',':
        if ch == ',' and depth == 0:
            if cur.strip():
                if '=' not in cur:
                    raise ValueError(f'expected k=v, got {cur!r}')
                key, value = cur.split('=', 1)
                out[key.strip()] = _literal(value.strip())
            cur = ''
            continue
        depth += ch in '([{'
        depth -= ch in ')]}'
        cur += ch
    return out


def parse_model(spec: str) -> Dict:
    """A ``--model`` value -> ``{'name', 'library', 'cfg'}`` or ``{'name', 'config'}``
    (a config file); ValueError naming the accepted forms if it cannot be read."""
    if spec.endswith('.py'):
        if not osp.isfile(spec):
            raise ValueError(f'config file not found: {spec}')
        return dict(name=osp.splitext(osp.basename(spec))[0], config=spec)
    if spec.lower().startswith('official:'):
        _, _, rest = spec.partition(':')
        head, _, extra = rest.partition(':')
        family, _, arch = head.lower().partition('-')
        try:
            arch = official_arch(family, arch)
        except ValueError as e:
            raise ValueError(f'cannot read model {spec!r}: {e} (official:FAMILY-ARCH, '
                             'e.g. official:scopevit-t, official:scalablevit-s)') from None
        return dict(
            name=spec,
            library='official',
            cfg=dict(family=family, arch=arch, **parse_kwargs(extra)))
    libraries = library_names()
    head, _, extra = spec.partition(':')
    family, _, arch = head.lower().partition('-')
    fam = _families_by_key().get(family)
    if fam is not None and arch and not head.lower().startswith(libraries):
        cfg = dict(type=fam.name, arch=fam.canonical_arch(arch), **parse_kwargs(extra))
        return dict(name=spec, library='mmscope', cfg=cfg)
    if family == 'pvtv2':
        if arch not in PVTV2:
            raise ValueError(f'unknown PVT-v2 variant {arch!r}; choose from {sorted(PVTV2)}')
        cfg = dict(type='PyramidVisionTransformerV2', **PVTV2[arch], **parse_kwargs(extra))
        return dict(name=spec, library='mmdet', cfg=cfg)
    parts = spec.split(':')
    if parts[0] not in libraries or len(parts) < 2 or not parts[1]:
        raise ValueError(
            f'cannot read model {spec!r}: use an mmscope arch (e.g. scopevit-t, '
            f'scalablevit-s), LIB:Type[:arch][:k=v,...] with LIB in {libraries}, '
            'pvtv2-b0..b3, official:FAMILY-ARCH (the released code) or a config .py file')
    cfg = dict(type=parts[1])
    if len(parts) > 2 and parts[2]:
        arch = _literal(parts[2])
        cfg.update(depth=arch) if isinstance(arch, int) else cfg.update(arch=parts[2])
    for part in parts[3:]:
        cfg.update(parse_kwargs(part))
    return dict(name=spec, library=parts[0], cfg=cfg)


def resolve_backbone(spec: Dict) -> Tuple[str, Dict]:
    """``(library, backbone cfg dict)`` of a parsed spec. A config file is read: its
    ``default_scope`` is the library, its ``custom_imports`` are imported, and its
    ``model.backbone`` loses ``Pretrained`` init configs and SyncBN (as a CPU run of the
    config would)."""
    if 'config' not in spec:
        return spec['library'], dict(spec['cfg'])
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(spec['config'])
    library = cfg.get('default_scope', 'mmpretrain')
    if library not in library_names():
        raise ValueError(f'{spec["config"]}: default_scope {library!r} not supported')
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    backbone = cfg.model.backbone.to_dict()
    strip_pretrained(backbone)
    sync_bn_to_bn(backbone)
    return library, backbone


def is_mmscope(library: str, cfg: Dict) -> bool:
    """Whether a backbone cfg is an mmscope backbone (a registered family, or any
    ``mmscope.`` type): its attention modes are benchmarked side by side."""
    typ = cfg.get('type', '')
    return (library == 'mmscope' or str(typ).startswith('mmscope.')
            or family_of_type(typ) is not None)


def twin_of(library: str, cfg: Dict) -> Optional[str]:
    """``'family-arch'`` (released arch name) of an mmscope arch or a released model, the
    key that pairs the two in ``--vs-official`` tables; None for anything else (other
    libraries, arch dicts, families without released code)."""
    if library == 'official':
        family, arch = cfg['family'], cfg['arch']
    elif is_mmscope(library, cfg) and isinstance(cfg.get('arch', 'x'), str):
        fam = family_of_type(cfg.get('type', ''))
        arch = cfg.get('arch')
        if fam is None or fam.official is None or arch is None:
            return None
        family = fam.key
    else:
        return None
    try:
        return f'{family}-{official_arch(family, arch)}'
    except ValueError:
        return None


# ---------------------------------------------------------------------------- building
def build_backbone(library: str, cfg: Dict):
    """Build ``cfg`` with the registry of ``library`` and initialise its weights. The
    type of a registered family is built from the descriptor's class."""
    import mmscope  # noqa: F401  (registers mmscope.* types for config files)
    fam = family_of_type(cfg.get('type', '')) if library == 'mmscope' else None
    if fam is not None:
        cfg = dict(cfg, type=fam.backbone)
    model = registry(library).build(cfg)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    return model


class ReleasedFeatures(nn.Module):
    """A released model whose forward is its ``forward_features``."""

    def __init__(self, released: nn.Module):
        super().__init__()
        self.released = released

    def forward(self, x):
        return self.released.forward_features(x)


def build_official(cfg: Dict, out_indices: Optional[Sequence[int]], extra: Dict,
                   folder: Optional[str], deps: Optional[str]):
    """The released model as a backbone: its ``forward_features`` with the head dropped.

    The released ScalableViT returns its final LayerNorm's tokens mean-pooled, the released
    ScopeViT its last normalised map, or with ``out_indices`` 0-3 the four normalised stage
    maps: the factory argument the descriptor names ``official.fork_feat`` (ScopeViT's own
    ``fork_feat=True`` mode for dense prediction). Families without one output the last
    stage only.
    """
    from mmscope.converters.official_code import build_official_model
    kwargs = {k: v for k, v in cfg.items() if k not in ('family', 'arch')}
    kwargs.update(extra)
    family = cfg['family']
    fork_feat = get_family(family).official.fork_feat
    if out_indices is not None and sorted(out_indices) not in ([3], [-1]):
        if fork_feat and sorted(out_indices) == [0, 1, 2, 3]:
            kwargs[fork_feat] = True
        else:
            raise ValueError(f'the released {family} code outputs the last stage only' +
                             (' or all four stages (out_indices 0 1 2 3)' if fork_feat else '') +
                             f'; got out_indices {list(out_indices)}')
    model = build_official_model(family, cfg['arch'], folder, deps, **kwargs)
    model.head = nn.Identity()  # backbone only, as for every other model
    return ReleasedFeatures(model)


def build_case_model(case: Dict, spec: Dict, attn: str):
    """``(model, is_mmscope)`` of one benchmarked model, built as the case asks: the
    attention mode ``attn`` of an mmscope backbone (``'-'`` or ``'paired'``: the process
    default, switched per step), ``with_cp`` for training cases, the case's
    ``out_indices`` and extra constructor arguments."""
    library, cfg = resolve_backbone(spec)
    train = case['mode'] == 'train'
    if library == 'official':
        if train and case['with_cp']:
            raise ValueError('the released code has no gradient checkpointing (with_cp)')
        return build_official(cfg, case.get('out_indices'),
                              case.get('backbone_args') or {}, case.get('official_code'),
                              case.get('official_deps')), False
    ours = is_mmscope(library, cfg)
    if ours and attn not in ('-', 'paired'):
        from mmscope.models.layers import set_attention_impl
        set_attention_impl(attn)
        cfg['attn_impl'] = attn
    elif ours:
        cfg['attn_impl'] = None  # follow the process default, switched per step
    if train and case['with_cp']:
        cls = registry(library).get(cfg['type'])
        if cls is not None and 'with_cp' not in inspect.signature(cls.__init__).parameters:
            raise ValueError(f'{cfg["type"]} has no with_cp argument')
        cfg['with_cp'] = True
    if case.get('out_indices') is not None:
        cfg['out_indices'] = tuple(case['out_indices'])
    if case.get('backbone_args'):
        cfg.update(case['backbone_args'])
    return build_backbone(library, cfg), ours
