"""The conversion engine: official checkpoints <-> mmscope, for every registered family.

A family's :class:`~mmscope.models.family.BackboneFamily` says how it names its weights
(official <-> mmscope classifier keys) and where its classification configs are. The engine
does the rest:

* the variant is found by comparing the renamed keys and their shapes with the classifier
  built from each variant's classification config on the meta device (no weights are
  allocated); ``arch`` restricts the comparison to one variant;
* a checkpoint that matches no variant exactly is refused with the missing, unexpected and
  shape-mismatched keys against the closest variant; nothing is ever converted partially;
* ``backbone_only`` writes the ``backbone.*`` weights of the dense-prediction backbone
  (every stage output), filling the modules the classifier lacks with their identity
  initialisation (the family's ``init_dense_extra``);
* the reverse direction maps mmscope classifier (or backbone) checkpoints back to the
  official names;
* :func:`convert_checkpoint` converts a checkpoint file into another, with its ``meta``;
  without ``family`` it finds the family whose key rules name every key
  (:func:`detect_family`). ``tools/model_converters/official_to_mmscope.py`` is its
  command line.
"""
import copy
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..models.family import BackboneFamily, config_root, families, get_family
from ..models.utils.key_rules import BACKBONE_PREFIX as BACKBONE
from .common import (ConversionError, find_state_dict, meta_device, read_checkpoint, sha256_of,
                     write_checkpoint)

FamilyLike = Union[BackboneFamily, str]


def _family(family: FamilyLike) -> BackboneFamily:
    if isinstance(family, BackboneFamily):
        return family
    try:
        return get_family(family)
    except ValueError as e:
        raise ConversionError(str(e)) from None


def official_repo(family: BackboneFamily) -> str:
    """The repository of the family's released code, or ``'no released code'``."""
    return family.official.repo if family.official else 'no released code'


def _official_wrapper(family: BackboneFamily) -> str:
    return family.official.wrapper if family.official else 'state_dict'


def _canonical_arch(family: BackboneFamily, arch: str) -> str:
    try:
        return family.canonical_arch(arch)
    except ValueError as e:
        raise ConversionError(str(e)) from None


def _config_path(family: BackboneFamily, arch: str) -> str:
    path = family.config_path(arch)
    if not osp.isfile(path):
        raise ConversionError(
            f'classification config {path} not found (mmscope installed without its '
            'configs?); pass --config explicitly')
    return path


def _init_dense_extra(family: BackboneFamily, key: str, shape: torch.Size) -> torch.Tensor:
    """Value of a dense-backbone tensor the classifier does not have (bare key)."""
    try:
        if family.init_dense_extra is None:
            raise KeyError(key)
        return family.init_dense_extra(key, shape)
    except KeyError:
        raise ConversionError(
            f'{family.name}: the dense backbone has {key!r}, which the classifier lacks, and '
            'the converter does not know how to initialise it') from None


# -------------------------------------------------------------------------------------
# expected layouts, built on the meta device
# -------------------------------------------------------------------------------------
@dataclass
class Layout:
    """Keys and shapes of the classifier a config builds, and of its dense backbone."""
    config: str
    arch: str
    num_stages: int
    num_classes: Optional[int]
    #: classifier state dict: key -> shape
    shapes: 'OrderedDict[str, torch.Size]'
    #: backbone with every stage as output, ``backbone.``-prefixed: key -> shape
    dense_shapes: 'OrderedDict[str, torch.Size]'
    #: the head's ``type`` in the config (None: no head)
    head_type: Optional[str] = None
    #: the model of the config when it is no classifier (``'mmdet MaskRCNN'``); its
    #: layout is its backbone's alone (``shapes`` without a head)
    task_model: Optional[str] = None

    def backbone_shapes(self) -> 'OrderedDict[str, torch.Size]':
        return OrderedDict((k, s) for k, s in self.shapes.items() if k.startswith(BACKBONE))

    def dense_only(self) -> List[str]:
        """Dense-backbone keys the classifier does not have."""
        return [k for k in self.dense_shapes if k not in self.shapes]


def _shapes(module: torch.nn.Module, prefix: str = '') -> 'OrderedDict[str, torch.Size]':
    return OrderedDict((prefix + k, v.shape) for k, v in module.state_dict().items())


def get_layout(config: str, num_classes: Optional[int] = None) -> Layout:
    """Keys and shapes of the classifier of ``config`` (and of its backbone with every
    stage output), built on the meta device; ``num_classes`` overrides the head's."""
    base = _build_layout(osp.abspath(config), None)
    if num_classes is None or num_classes == base.num_classes:
        return base
    return _build_layout(osp.abspath(config), num_classes)


@lru_cache(maxsize=None)
def _build_layout(config: str, num_classes: Optional[int]) -> Layout:
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(config)
    model_cfg = copy.deepcopy(cfg.model)
    scope = cfg.get('default_scope') or 'mmpretrain'
    task_model = None
    if scope != 'mmpretrain':  # a detector, segmentor, pose model: its backbone alone
        if 'backbone' not in model_cfg:
            raise ConversionError(f'{config}: a {scope} config whose model has no backbone')
        task_model = f'{scope} {model_cfg.get("type")}'
        model_cfg = dict(type='ImageClassifier', backbone=model_cfg.backbone)
    if num_classes is not None and 'head' in model_cfg:
        model_cfg.head.num_classes = num_classes
    # Pretrained weights and batch augments do not change keys or shapes.
    model_cfg['backbone'].pop('init_cfg', None)
    model_cfg.pop('train_cfg', None)
    with DefaultScope.overwrite_default_scope('mmpretrain'), meta_device():
        dense_cfg = copy.deepcopy(model_cfg['backbone'])
        if task_model is not None:  # the classifier's backbone: the last stage's output
            num_stages = MODELS.build(copy.deepcopy(dense_cfg)).num_stages
            model_cfg['backbone']['out_indices'] = (num_stages - 1, )
        model = MODELS.build(model_cfg)
        shapes = _shapes(model)
        num_stages = getattr(model.backbone, 'num_stages', None)
        if num_stages is None:
            raise ConversionError(f'{config}: the backbone has no num_stages attribute')
        dense_cfg.out_indices = tuple(range(num_stages))
        dense = MODELS.build(dense_cfg)
        dense_shapes = _shapes(dense, BACKBONE)
    arch = cfg.model.backbone.get('arch', 'custom')
    head = model_cfg.get('head') or {}
    return Layout(config, arch if isinstance(arch, str) else 'custom', num_stages,
                  head.get('num_classes'), shapes, dense_shapes, head.get('type'), task_model)


def _check_task(layout: Layout, backbone_only: bool) -> None:
    """A detector's (segmentor's, pose model's) config gives the layout of its backbone
    only: refused without ``backbone_only``, saying so."""
    if layout.task_model is not None and not backbone_only:
        raise ConversionError(
            f'--config {layout.config} is a {layout.task_model} config, not a classifier: '
            'only its backbone has an official counterpart. Add --backbone-only to convert '
            'the backbone for it (load it with the backbone\'s init_cfg=dict(type='
            "'Pretrained', checkpoint=..., prefix='backbone.')), or give a classification "
            'config.')


# -------------------------------------------------------------------------------------
# matching
# -------------------------------------------------------------------------------------
@dataclass
class Match:
    """How a state dict (in our names) compares with a variant's expected layout."""
    variant: str
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def report(self, limit: int = 12) -> str:
        lines = [f'against {self.variant}:']
        for title, items in (('missing', self.missing), ('unexpected', self.unexpected),
                             ('shape mismatch', self.mismatched)):
            if items:
                lines.append(f'  {title} ({len(items)}):')
                lines += [f'    {item}' for item in items[:limit]]
                if len(items) > limit:
                    lines.append(f'    ... and {len(items) - limit} more')
        return '\n'.join(lines)


def _compare(variant: str,
             got: Dict[str, torch.Tensor],
             expected: Dict[str, torch.Size],
             unconverted: Sequence[str] = (),
             origin: Optional[Dict[str, str]] = None,
             describe_missing=None) -> Match:
    origin = origin or {}
    m = Match(variant)
    m.unexpected = [f'{k} (no mmscope counterpart)' for k in unconverted]
    for k, v in got.items():
        name = f'{origin[k]} -> {k}' if k in origin else k
        if k not in expected:
            m.unexpected.append(name)
        elif tuple(v.shape) != tuple(expected[k]):
            m.mismatched.append(f'{name}: checkpoint {tuple(v.shape)}, '
                                f'{variant} {tuple(expected[k])}')
    for k in expected:
        if k not in got:
            m.missing.append(describe_missing(k) if describe_missing else k)
    return m


def _fill_missing_bn_counters(got: Dict[str, torch.Tensor], expected: Dict[str, torch.Size],
                              notes: List[str]) -> None:
    """Checkpoints of old PyTorch versions have no BatchNorm ``num_batches_tracked`` at
    all; it only matters with ``momentum=None``, so it is filled with 0, as
    ``BatchNorm._load_from_state_dict`` does. A checkpoint that has some counters but not
    all is left alone (and refused as incomplete)."""
    if any(k.endswith('.num_batches_tracked') for k in got):
        return
    filled = [k for k in expected if k.endswith('.num_batches_tracked')]
    for k in filled:
        got[k] = torch.tensor(0, dtype=torch.long)
    if filled:
        notes.append(f'filled {len(filled)} missing BatchNorm num_batches_tracked with 0')


@dataclass
class Result:
    variant: str
    layout: Layout
    state_dict: 'OrderedDict[str, torch.Tensor]'
    notes: List[str] = field(default_factory=list)
    #: where the weights were found in the input (set by :func:`run`)
    source_entry: str = ''


def _candidates(spec: BackboneFamily, arch: Optional[str],
                config: Optional[str]) -> List[Tuple[str, str]]:
    """(variant name, config path) pairs to compare with."""
    if config is not None:
        if not osp.isfile(config):
            raise ConversionError(f'{config}: no such config')
        return [(arch or osp.splitext(osp.basename(config))[0], config)]
    if arch is not None:
        arch = _canonical_arch(spec, arch)
        return [(arch, _config_path(spec, arch))]
    return [(a, _config_path(spec, a)) for a in spec.archs]


def _pick(spec: BackboneFamily, matches: List[Tuple[Match, object]], forced: bool, hint: str = ''):
    good = [(m, extra) for m, extra in matches if m.ok]
    if len(good) == 1:
        return good[0]
    if len(good) > 1:
        raise ConversionError(f'the checkpoint matches several {spec.name} variants '
                              f'({[m.variant for m, _ in good]}); pass --arch')
    closest = min((m for m, _ in matches), key=lambda m: m.problems)
    what = (f'is not a {spec.name}-{closest.variant} checkpoint' if forced else
            f'matches no {spec.name} variant ({", ".join(m.variant for m, _ in matches)})')
    raise ConversionError(f'the checkpoint {what}; nothing was written.\n'
                          f'{closest.report()}{hint}')


def _head_hint(match: Match) -> str:
    if match.missing and all(not k.startswith(BACKBONE) for k in match.missing):
        return ('\n(only classifier-head weights are missing: use --backbone-only to '
                'convert the backbone alone)')
    return ''


def convert_to_mmscope(family: FamilyLike,
                       state_dict: Dict[str, torch.Tensor],
                       arch: Optional[str] = None,
                       backbone_only: bool = False,
                       config: Optional[str] = None) -> Result:
    """Official state dict -> mmscope classifier (or ``backbone.*``) state dict.

    Raises :class:`ConversionError` unless every key converts and the result matches one
    variant exactly (head keys of the source are dropped with ``backbone_only``).
    """
    spec = _family(family)
    matches, foreign = [], False
    for variant, cfg_path in _candidates(spec, arch, config):
        _check_task(get_layout(cfg_path), backbone_only)
        num_stages = get_layout(cfg_path).num_stages
        renamed, origin, unconverted, dropped = OrderedDict(), {}, [], []
        for k, v in state_dict.items():
            try:
                nk = spec.key_rules.official_to_mmscope_key(k, num_stages)
            except KeyError:
                unconverted.append(k)
                continue
            if nk in renamed:
                raise ConversionError(f'{origin[nk]!r} and {k!r} both map to {nk!r}')
            if backbone_only and not nk.startswith(BACKBONE):
                dropped.append(k)
                continue
            renamed[nk], origin[nk] = v, k
        num_classes = None
        if spec.head_weight in renamed:
            num_classes = int(renamed[spec.head_weight].shape[0])
        layout = get_layout(cfg_path, num_classes)
        expected = layout.backbone_shapes() if backbone_only else layout.shapes
        notes = []
        _fill_missing_bn_counters(renamed, expected, notes)

        def describe(k, _n=num_stages):
            try:
                return f'{k} (official: {spec.key_rules.mmscope_to_official_key(k, _n)})'
            except KeyError:
                return k

        m = _compare(variant, renamed, expected, unconverted, origin, describe)
        if dropped:
            notes.append(f'dropped {len(dropped)} classifier-head tensors: {dropped}')
        matches.append((m, (layout, renamed, notes)))
        foreign = foreign or (bool(state_dict) and len(unconverted) == len(state_dict))
    if foreign:
        hint = f'\n(no key has an official {spec.name} name: a checkpoint of another model?)'
    else:
        hint = _head_hint(min((x for x, _ in matches), key=lambda x: x.problems))
    m, (layout, renamed, notes) = _pick(spec, matches, arch is not None or config is not None, hint)
    if not backbone_only:
        out = OrderedDict((k, renamed[k]) for k in layout.shapes)
        default = get_layout(layout.config).num_classes
        if layout.num_classes != default:
            notes.append(f'{layout.num_classes} classes (the config has {default}): build the '
                         f'model with --cfg-options model.head.num_classes='
                         f'{layout.num_classes}')
        return Result(m.variant, layout, out, notes)
    out = OrderedDict()
    extra = []
    for k, shape in layout.dense_shapes.items():
        if k in renamed:
            out[k] = renamed[k]
        else:
            out[k] = _init_dense_extra(spec, k[len(BACKBONE):], shape)
            extra.append(k)
    lost = [k for k in renamed if k not in out]
    if lost:  # the classifier backbone has keys the dense backbone lacks: a model change
        raise ConversionError(f'the dense {spec.name} backbone has no {lost[:10]}')
    if extra:
        notes.append(f'initialised {len(extra)} dense-only tensors (absent from the '
                     f'classifier): {extra}')
    return Result(m.variant, layout, out, notes)


def _no_counterpart(spec: BackboneFamily, key: str, layout: Layout) -> str:
    """Why ``key`` cannot be written in the released layout, and what can."""
    msg = f'{key!r} has no official {spec.name} counterpart'
    if key.startswith(BACKBONE):
        return msg
    heads = [m for _, m in spec.key_rules.rules if not m.startswith(BACKBONE)]
    return (f'{msg}: the released {spec.name} classifier has a head of its own kind '
            f'(mmscope keys {", ".join(heads)}), and the head of {layout.config} '
            f'({layout.head_type or "?"}) is another one, so its weights have no place in '
            'the released layout. Use --backbone-only to write the backbone alone in the '
            f'official layout (the released head is then absent).')


def convert_to_official(family: FamilyLike,
                        state_dict: Dict[str, torch.Tensor],
                        arch: Optional[str] = None,
                        backbone_only: bool = False,
                        config: Optional[str] = None) -> Result:
    """mmscope classifier state dict -> official state dict.

    With ``backbone_only`` only the ``backbone.*`` tensors are read (anything else, e.g.
    the neck and heads of a detector, is ignored) and the official backbone is written;
    dense-only tensors that have no official counterpart are dropped (and reported).
    """
    spec = _family(family)
    sd = OrderedDict(state_dict)
    ignored = []
    if backbone_only:
        ignored = [k for k in sd if not k.startswith(BACKBONE)]
        sd = OrderedDict((k, v) for k, v in sd.items() if k.startswith(BACKBONE))
    num_classes = None
    if not backbone_only and spec.head_weight in sd:
        num_classes = int(sd[spec.head_weight].shape[0])
    matches = []
    for variant, cfg_path in _candidates(spec, arch, config):
        layout = get_layout(cfg_path, num_classes)
        _check_task(layout, backbone_only)
        expected = layout.backbone_shapes() if backbone_only else layout.shapes
        dense_only = set(layout.dense_only()) if backbone_only else set()
        got = OrderedDict((k, v) for k, v in sd.items() if k not in dense_only)
        notes = []
        _fill_missing_bn_counters(got, expected, notes)
        matches.append((_compare(variant, got, expected), (layout, got, notes, dense_only)))
    hint = ''
    if not backbone_only and any(not k.startswith((BACKBONE, 'neck.', 'head.')) for k in sd):
        hint = '\n(a detector/segmentor checkpoint? use --backbone-only)'
    m, (layout, got, notes, dense_only) = _pick(spec, matches, arch is not None
                                                or config is not None, hint)
    expected = layout.backbone_shapes() if backbone_only else layout.shapes
    out = OrderedDict()
    for k in expected:
        try:
            out[spec.key_rules.mmscope_to_official_key(k, layout.num_stages)] = got[k]
        except KeyError:
            raise ConversionError(_no_counterpart(spec, k, layout)) from None
    dropped = [k for k in sd if k in dense_only]
    if dropped:
        notes.append(f'dropped {len(dropped)} dense-only tensors without an official '
                     f'counterpart: {dropped}')
    if ignored:
        notes.append(f'ignored {len(ignored)} non-backbone tensors (neck/heads)')
    return Result(m.variant, layout, out, notes)


# -------------------------------------------------------------------------------------
# checkpoint files
# -------------------------------------------------------------------------------------
def config_display_path(path: str) -> str:
    """``configs/...`` for an installed config, else the absolute path."""
    root = osp.dirname(config_root())
    path = osp.abspath(path)
    return osp.relpath(path, root) if path.startswith(root + osp.sep) else path


def detect_family(state_dict: Dict[str, torch.Tensor],
                  to_official: bool = False,
                  backbone_only: bool = False) -> BackboneFamily:
    """The registered family whose key rules name most keys of ``state_dict`` (official
    keys, or with ``to_official`` our keys; with ``backbone_only`` only ``backbone.*``
    ones). The conversion then checks every key; this only picks whose rules to use.
    ConversionError when no family names most of the keys, or two name as many."""
    keys = [k for k in state_dict if not (to_official and backbone_only) or k.startswith(BACKBONE)]
    scores = []
    for fam in families():
        num_stages = len(fam.backbone.arch_zoo[fam.archs[0]]['depths'])
        rename = (
            fam.key_rules.mmscope_to_official_key
            if to_official else fam.key_rules.official_to_mmscope_key)
        named = 0
        for k in keys:
            try:
                rename(k, num_stages)
                named += 1
            except KeyError:
                pass
        scores.append((named / max(len(keys), 1), fam))
    scores.sort(key=lambda t: -t[0])
    best_score, best = scores[0]
    if best_score > 0.5 and (len(scores) == 1 or scores[1][0] < best_score):
        return best
    summary = ', '.join(f'{f.key} {100 * score:.0f}%' for score, f in scores)
    raise ConversionError(f'cannot tell the model family from the checkpoint keys (share '
                          f'of keys each family names: {summary}); pass --family')


@dataclass
class Conversion:
    """What :func:`convert_checkpoint` did."""
    family: BackboneFamily
    digest: str
    result: 'Result'


def convert_checkpoint(src: str,
                       dst: str,
                       family: Optional[FamilyLike] = None,
                       arch: Optional[str] = None,
                       backbone_only: bool = False,
                       to_official: bool = False,
                       config: Optional[str] = None,
                       key: Optional[str] = None,
                       force: bool = False,
                       trust: bool = False,
                       tool: str = '') -> Conversion:
    """Convert the checkpoint file ``src`` into ``dst`` (official -> mmscope, or back with
    ``to_official``), with a ``meta`` entry saying what was converted from what (``tool``
    names the program in it). ``family`` defaults to the one found from the keys
    (:func:`detect_family`); ``key`` picks the checkpoint entry, ``trust`` fully unpickles
    ``src``; ``dst`` is never overwritten without ``force``."""
    from ..version import __version__
    if osp.exists(dst) and not force:
        raise FileExistsError(f'{dst} exists; refusing to overwrite it (use --force)')
    if osp.abspath(src) == osp.abspath(dst):
        raise ConversionError('SRC and DST are the same file')
    ckpt = read_checkpoint(src, trust=trust)
    where, sd = find_state_dict(ckpt, prefer=key)
    if family:
        spec = _family(family)
    else:
        spec = detect_family(sd, to_official, backbone_only)
    convert = convert_to_official if to_official else convert_to_mmscope
    result = convert(spec, sd, arch=arch, backbone_only=backbone_only, config=config)
    result.source_entry = where
    meta = dict(
        arch=result.variant,
        config=config_display_path(result.layout.config),
        format='backbone' if backbone_only else 'classifier',
        source=osp.basename(src),
        source_sha256=sha256_of(src),
        source_entry=where,
        converter=f'mmscope {__version__} {tool}'.strip(),
    )
    if not backbone_only:
        meta['num_classes'] = result.layout.num_classes
    if to_official:
        meta['layout'] = f'official {spec.name} ({official_repo(spec)})'
        obj = {_official_wrapper(spec): result.state_dict, 'meta': meta}
    else:
        meta['converted_from'] = f'official {spec.name} ({official_repo(spec)})'
        obj = {'state_dict': result.state_dict, 'meta': meta}
    digest = write_checkpoint(obj, dst, force=force)
    return Conversion(spec, digest, result)
