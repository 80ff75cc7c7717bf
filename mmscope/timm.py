"""Both families as timm models, under the released code's names.

``import mmscope.timm`` registers ``scopevit_xtiny``, ``scopevit_tiny``, ``scopevit_small``,
``scalable_vit_small``, ``scalable_vit_base`` and ``scalable_vit_large`` (the names of the
released factories, :attr:`mmscope.models.family.OfficialCode.factories`) with timm, so
``timm.create_model('scopevit_tiny', num_classes=..., drop_path_rate=...)``, timm's training
scripts and any code that takes a timm backbone use our backbones. Registration is an
explicit import, not a side effect of ``import mmscope``: importing timm costs seconds and
fills timm's global registry, which OpenMMLab users (``custom_imports=['mmscope']``) need
neither of; and timm is an optional extra (``pip install "mmscope[timm]"``).

The model is :class:`TimmClassifier`: our backbone (no second implementation) with the
released classifier head, built from the family's classification config, so its state dict
is an mmpretrain ``ImageClassifier`` checkpoint's (``backbone.*``, ``head.*``). Weights load

* from a released checkpoint in the *official* layout, as it is: converted on the fly by
  the family's key tables (:func:`mmscope.converters.convert_to_mmscope`), through
  ``pretrained=True, pretrained_cfg_overlay=dict(file=PATH)`` (read by mmscope's safe
  loader, like every checkpoint mmscope reads), ``checkpoint_path=PATH`` (timm's loader)
  or ``model.load_state_dict(official_state_dict)``;
* from a checkpoint of ours (an mmpretrain classifier, a training checkpoint included,
  through ``pretrained_cfg_overlay``).

``features_only=True, out_indices=...`` gives the stage maps of the dense models (the
backbone with those ``out_indices``, its per-stage output norms included: what mmdet /
mmseg see), at any input size >= 32, through timm's ``FeatureGetterNet``
(:meth:`TimmClassifier.forward_intermediates`). No weights are published for download:
``pretrained=True`` without a file raises :class:`NoPublishedWeightsError`.
"""
import functools
import re
import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

try:
    import timm  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        'mmscope.timm needs timm: pip install "mmscope[timm]" (or timm==1.0.31 --no-deps, '
        'as tools/setup_env.sh does)') from exc

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._builder import resolve_pretrained_cfg

from .models.family import BackboneFamily, get_family

__all__ = [
    'TIMM_NAMES', 'PRETRAINED', 'TimmClassifier', 'stage_indices', 'NoPublishedWeightsError',
    'checkpoint_filter_fn', 'timm_names'
]

BACKBONE = 'backbone.'

#: The released evaluation transform of each family, as timm's ``pretrained_cfg`` holds
#: it: ScopeViT evaluates at 256 (resize 284, centre crop 256: crop_pct 0.9), ScalableViT
#: at 224 (its DeiT-style ``main.py``: resize 256, centre crop 224: 0.875), both bicubic
#: with the ImageNet mean/std (the same transforms as our classification configs' test
#: pipelines). ScalableViT's factories attach timm's ViT ``_cfg()`` (crop 0.9, mean/std
#: 0.5), which its evaluation does not use.
PRETRAINED = {
    'scopevit': dict(input_size=(3, 256, 256), crop_pct=0.9),
    'scalablevit': dict(input_size=(3, 224, 224), crop_pct=0.875),
}
#: Total stride of the last stage map (what ``forward_features`` returns): timm's
#: ``pool_size`` is the input size divided by it (rounded up, as the stage maps are).
LAST_STRIDE = 32
#: Stem convolution of each family (timm's ``first_conv``).
FIRST_CONV = {
    'scopevit': 'backbone.stem.conv1',
    'scalablevit': 'backbone.stages.0.patch_embed.projection',
}


class NoPublishedWeightsError(RuntimeError):
    """``pretrained=True`` without a weights file: nothing is published for download."""


# ---------------------------------------------------------------------------------------
# the released classifier head, named as mmpretrain's heads name their weights
# ---------------------------------------------------------------------------------------
class _HiddenLayer(nn.Module):
    """``fc -> norm -> act``: a hidden layer of ``StackedLinearClsHead`` (same keys)."""

    def __init__(self, in_dims: int, out_dims: int, eps: float, act: Callable):
        super().__init__()
        self.fc = nn.Linear(in_dims, out_dims)
        self.norm = nn.LayerNorm(out_dims, eps=eps)
        self.act = act()

    def forward(self, x):
        return self.act(self.norm(self.fc(x)))


class _Classifier(nn.Module):
    """The final Linear (``fc``), an Identity with no classes."""

    def __init__(self, in_dims: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_dims, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        return self.fc(x)


class ClassifierHead(nn.Module):
    """Hidden layers (ScalableViT: one, 4096 wide) then the classifier, with dropout before
    it. Keys: ``fc.*`` with no hidden layer (``LinearClsHead``), else ``layers.{i}.fc/norm``
    and ``layers.{n}.fc`` (``StackedLinearClsHead``)."""

    def __init__(self,
                 in_dims: int,
                 num_classes: int,
                 hidden: Sequence[int] = (),
                 eps: float = 1e-6,
                 act: Callable = nn.GELU,
                 drop_rate: float = 0.):
        super().__init__()
        self.hidden_dims = list(hidden)
        self.drop = nn.Dropout(drop_rate)
        if not self.hidden_dims:
            self.fc = _Classifier(in_dims, num_classes).fc
            return
        dims = [in_dims] + self.hidden_dims
        self.layers = nn.ModuleList(
            [_HiddenLayer(a, b, eps, act)
             for a, b in zip(dims[:-1], dims[1:])] + [_Classifier(dims[-1], num_classes)])

    @property
    def classifier(self) -> nn.Module:
        return self.fc if not self.hidden_dims else self.layers[-1].fc

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        for layer in getattr(self, 'layers', [])[:-1]:
            x = layer(x)
        x = self.drop(x)
        return x if pre_logits else self.classifier(x)


@functools.lru_cache(maxsize=None)
def _head_spec(family_key: str, arch: str) -> Tuple[Tuple[int, ...], float]:
    """The released head of ``arch`` as its classification config declares it: the hidden
    widths and their LayerNorm eps."""
    from mmengine.config import Config
    family = get_family(family_key)
    head = Config.fromfile(family.config_path(arch)).model.head
    if head.type == 'LinearClsHead':
        return (), 1e-6
    if head.type == 'StackedLinearClsHead' and head.get('norm_cfg', {}).get('type') == 'LN' \
            and head.get('act_cfg', {}).get('type') == 'GELU':
        return tuple(head.mid_channels), float(head.norm_cfg.get('eps', 1e-5))
    raise NotImplementedError(f'{family.name}-{arch}: no timm head for the config head {head}')


def _quiet_init(module: nn.Module) -> None:
    """``module.init_weights()`` (the released initialisation) without mmengine's report
    of every parameter, which an OpenMMLab runner logs and a timm user does not want."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        module.init_weights()
    finally:
        logger.setLevel(level)


def stage_indices(num_stages: int, indices: Optional[Union[int, Sequence[int]]]) -> List[int]:
    """timm's stage selection checked, as absolute indices in the given order: None (all),
    an int n (the last n, 1 to ``num_stages``) or a non-empty sequence of stages (negative
    ones count from the end). Anything else is a ValueError naming what is valid."""
    valid = (f'valid: None (all stages), an int 1..{num_stages} (the last n) or a non-empty '
             f'list of stages in [{-num_stages}, {num_stages - 1}]')
    if indices is None:
        return list(range(num_stages))
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(f'indices / out_indices {indices}: this model has {num_stages} '
                             f'stages; {valid}')
        return list(range(num_stages - indices, num_stages))
    indices = list(indices)
    bad = [i for i in indices if not isinstance(i, int) or not -num_stages <= i < num_stages]
    if not indices or bad:
        raise ValueError(f'indices / out_indices {tuple(indices)}: this model has {num_stages} '
                         f'stages; {valid}')
    return [i % num_stages for i in indices]


# ---------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------
class TimmClassifier(nn.Module):
    """Our backbone + the released classifier, with timm's model interface.

    Args:
        family: the backbone family (``'scopevit'``, ``'scalablevit'``).
        arch: its arch name.
        num_classes: classes of the classifier; 0 for none (``forward`` gives the pooled
            features). Defaults to 1000.
        in_chans: input channels. Defaults to 3.
        global_pool: ``'avg'`` (the released pooling) or ``''`` (no pooling: the head runs
            at every position of the last stage map, as timm's ``global_pool=''`` heads
            do; with ``num_classes=0`` ``forward`` returns the unpooled map). Defaults to
            'avg'.
        drop_rate: dropout before the classifier. Defaults to 0.
        drop_path_rate: stochastic depth of the last block (the released factories'
            ``drop_path_rate``, linear over the blocks). Defaults to 0.
        feature_stages: stages built as the dense models' outputs (the backbone's
            ``out_indices``: ScalableViT builds its output norm ``norm{i}`` for each, as
            the dense checkpoints hold them). timm's ``features_only=True`` sets it to
            ``out_indices``. Defaults to None (the last). :meth:`forward_intermediates`
            returns any stage either way.
        **backbone_kwargs: more backbone options (``attn_impl``, ``with_cp``...).
    """

    def __init__(self,
                 family: str,
                 arch: str,
                 num_classes: int = 1000,
                 in_chans: int = 3,
                 global_pool: str = 'avg',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 feature_stages: Optional[Sequence[int]] = None,
                 **backbone_kwargs):
        super().__init__()
        spec = get_family(family)
        self.family = spec.key
        self.arch = spec.canonical_arch(arch)
        self.global_pool = self._check_pool(global_pool, 'avg')
        widths = spec.widths(self.arch)
        num_stages = len(widths)
        stages = [num_stages - 1]
        if feature_stages is not None:
            stages = sorted(set(stage_indices(num_stages, feature_stages)) | {num_stages - 1})
        self.backbone = spec.backbone(
            arch=self.arch,
            in_channels=in_chans,
            drop_path_rate=drop_path_rate,
            out_indices=stages,
            **backbone_kwargs)
        _quiet_init(self.backbone)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = widths[-1]
        hidden, self._head_eps = _head_spec(spec.key, self.arch)
        self.head_hidden_size = hidden[-1] if hidden else self.num_features
        self.head = ClassifierHead(
            self.num_features, num_classes, hidden, self._head_eps, drop_rate=drop_rate)
        self._init_head()
        self.feature_info = [
            dict(
                num_chs=c,
                reduction=4 * 2**i,
                module=BACKBONE + self.backbone.stage_map_module.format(i))
            for i, c in enumerate(widths)
        ]

    # ----------------------------------------------------------------------- basics
    @staticmethod
    def _check_pool(global_pool: Optional[str], current: str) -> str:
        """``global_pool`` checked (None: keep ``current``)."""
        if global_pool is None:
            return current
        if global_pool not in ('avg', ''):
            raise ValueError(f'global_pool {global_pool!r}: the released models average-pool '
                             "the last stage; only 'avg' or '' (no pooling) is available")
        return global_pool

    def _init_head(self):
        for m in self.head.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02, a=-2., b=2.)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def family_spec(self) -> BackboneFamily:
        return get_family(self.family)

    def get_classifier(self) -> nn.Module:
        return self.head.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        """A new, freshly initialised classifier for ``num_classes`` (0: none); the
        hidden layers (ScalableViT's 4096-wide one) are kept. ``global_pool``: ``'avg'``,
        ``''`` (no pooling) or None (unchanged)."""
        self.global_pool = self._check_pool(global_pool, self.global_pool)
        self.num_classes = num_classes
        new = _Classifier(self.head_hidden_size, num_classes)
        if isinstance(new.fc, nn.Linear):
            nn.init.trunc_normal_(new.fc.weight, std=.02, a=-2., b=2.)
            nn.init.zeros_(new.fc.bias)
        if self.head.hidden_dims:
            self.head.layers[-1] = new
        else:
            self.head.fc = new.fc

    def set_grad_checkpointing(self, enable: bool = True):
        """Gradient checkpointing of every block (the backbone's ``with_cp``)."""
        for m in self.backbone.modules():
            if hasattr(m, 'with_cp'):
                m.with_cp = bool(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        """Parameters trained without weight decay besides norms and biases (timm's
        optimiser factory skips those itself): the backbone's ``no_decay_keys``."""
        keys = self.family_spec.no_decay_keys
        return {n for n, _ in self.named_parameters() if any(k in n for k in keys)}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Callable[[str], Tuple[float, ...]]:
        """Layer of a parameter for timm's layer-wise lr decay: the backbone's
        :meth:`~mmscope.models.backbones.base.MMScopeBackbone.get_layer_depth` (stem 0,
        every block one layer, the head on top); ``coarse``: one group per stage."""
        if coarse:

            def stage_of(name: str) -> Tuple[float, ...]:
                m = re.match(r'backbone\.stages\.(\d+)\.', name)
                if m:
                    return (int(m.group(1)) + 1, )
                return (0, ) if name.startswith(BACKBONE) and 'stem' in name else (float('inf'), )

            return stage_of

        def layer_of(name: str) -> Tuple[float, ...]:
            layer, num_layers = self.backbone.get_layer_depth(name, prefix=BACKBONE)
            return (float('inf'), ) if layer == num_layers - 1 else (layer, )

        return layer_of

    # ---------------------------------------------------------------------- forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage map (NCHW, after the released final norm)."""
        return self.backbone(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The head on the pooled map (``(B, C)`` out), or, with ``global_pool=''``, at
        every position (NCHW in and out)."""
        if self.global_pool == 'avg':
            return self.head(x.mean(dim=(2, 3)), pre_logits=pre_logits)
        return self.head(x.permute(0, 2, 3, 1), pre_logits=pre_logits).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self,
                              x: torch.Tensor,
                              indices: Optional[Union[int, List[int]]] = None,
                              norm: bool = False,
                              stop_early: bool = False,
                              output_fmt: str = 'NCHW',
                              intermediates_only: bool = False):
        """timm's feature interface: the NCHW maps of the stages ``indices`` (None: all;
        an int: the last n; a list: those stages, negative ones from the end) and the
        final map (:meth:`forward_features`). Any stage of any model: each map is the
        stage's output; a stage built as a dense output (``feature_stages``, every
        ScopeViT stage) includes its output norm, so ``features_only`` maps are the dense
        backbone's. ``norm`` adds nothing (the final map has its norm); with
        ``intermediates_only`` the stages after the last asked-for one do not run
        (``stop_early`` is implied)."""
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt {output_fmt!r}: the stage maps are 'NCHW'")
        last = self.backbone.num_stages - 1
        take = stage_indices(self.backbone.num_stages, indices)
        run = sorted(set(take) if intermediates_only else set(take) | {last})
        outs = dict(zip(run, self.backbone.forward_stages(x, run)))
        maps = [outs[i] for i in take]
        return maps if intermediates_only else (outs[last], maps)

    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True):
        """Drop the classifier (``prune_head``) for feature extraction; returns the
        absolute stage indices. The stages run in full either way."""
        take = stage_indices(self.backbone.num_stages, indices)
        if prune_head:
            self.head = nn.Identity()
            self.num_classes = 0
        return take

    # ---------------------------------------------------------------------- weights
    def load_state_dict(self,
                        state_dict: Mapping[str, Any],
                        strict: bool = True,
                        assign: bool = False):
        """``nn.Module.load_state_dict`` that also takes the released (official) layout
        and a classifier checkpoint for a feature model (:func:`checkpoint_filter_fn`)."""
        return super().load_state_dict(
            checkpoint_filter_fn(state_dict, self), strict=strict, assign=assign)

    def load_pretrained(self, path: str) -> None:
        """Load a weights file (timm calls this with ``pretrained_cfg`` ``file``): read by
        mmscope's safe loader (an mmengine training checkpoint included), in our or the
        released layout. A classifier with another class count is left as initialised,
        with a warning."""
        from .converters.common import find_state_dict, read_checkpoint
        where, weights = find_state_dict(read_checkpoint(path))
        weights = checkpoint_filter_fn(weights, self)
        own = self.state_dict()
        head = [k for k in weights if k.startswith('head.')]
        if any(k in own and weights[k].shape != own[k].shape for k in head):
            warnings.warn(f'{path}: its classifier has another class count than this model '
                          f'({self.num_classes}); the classifier is left as initialised')
            weights = OrderedDict((k, v) for k, v in weights.items() if k not in head)
            kept = [k for k in own if k.startswith('head.') and k not in weights]
            for k in kept:
                weights[k] = own[k]
        super().load_state_dict(weights, strict=True)


def checkpoint_filter_fn(state_dict: Mapping[str, Any],
                         model: TimmClassifier) -> 'OrderedDict[str, torch.Tensor]':
    """Weights for ``model`` from a state dict in our layout (``backbone.*``, ``head.*``: an
    mmpretrain classifier) or the released one (converted by the family's key tables; a
    released checkpoint of another variant or family is refused by the converter).
    The dense-only output norms that a classifier lacks get their initial values (as the
    converter gives them), and a model without head drops the head's weights."""
    from .converters.common import ConversionError
    from .converters.engine import convert_to_mmscope
    spec = model.family_spec
    weights = OrderedDict((k, v) for k, v in state_dict.items()
                          if isinstance(v, torch.Tensor) and not k.startswith('data_preprocessor.'))
    if not any(k.startswith(BACKBONE) for k in weights):
        try:
            weights = convert_to_mmscope(spec, weights, arch=model.arch).state_dict
        except ConversionError as exc:
            raise ConversionError(f'these weights are neither in mmscope\'s layout (backbone.*, '
                                  f'head.*) nor a released {spec.name}-{model.arch} checkpoint: '
                                  f'{exc}') from None
    own = model.state_dict()
    for k, v in own.items():
        if k.startswith(BACKBONE) and k not in weights and spec.init_dense_extra is not None:
            try:
                weights[k] = spec.init_dense_extra(k[len(BACKBONE):], v.shape)
            except KeyError:
                pass  # a real missing key: load_state_dict names it
    if not any(k.startswith('head.') for k in own):
        weights = OrderedDict((k, v) for k, v in weights.items() if not k.startswith('head.'))
    return weights


# ---------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------
def timm_names() -> Dict[str, Tuple[str, str]]:
    """``{timm name: (family, arch)}``: the released factories of every family."""
    return {
        name: (f.key, arch)
        for f in (get_family('scopevit'), get_family('scalablevit'))
        for arch, name in f.official.factories.items()
    }


TIMM_NAMES = timm_names()


def _cfg(family: str, arch: str) -> Dict[str, Any]:
    """The ``pretrained_cfg`` of ``family``-``arch``: every field timm's model tools read
    (data config, ``pool_size``, head and stem names), with the released values."""
    spec = get_family(family)
    transform = PRETRAINED[family]
    min_size = spec.backbone.min_input_size
    return dict(
        url='',
        num_classes=1000,
        pool_size=tuple(-(-s // LAST_STRIDE) for s in transform['input_size'][1:]),
        interpolation='bicubic',
        crop_mode='center',
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv=FIRST_CONV[family],
        classifier=spec.head_weight[:-len('.weight')],
        min_input_size=(3, min_size, min_size),
        fixed_input_size=False,
        origin_url=f'https://{spec.official.repo}',
        paper_ids='',
        notes=(f'no weights for download: load the released {spec.name}-{arch} checkpoint '
               'with pretrained_cfg_overlay=dict(file=PATH)', ),
        **transform)


default_cfgs = generate_default_cfgs({
    f'{name}.in1k': _cfg(family, arch)
    for name, (family, arch) in TIMM_NAMES.items()
})


def _create(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    family, arch = TIMM_NAMES[name]
    overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
    if pretrained:
        cfg = resolve_pretrained_cfg(
            name, pretrained_cfg=kwargs.get('pretrained_cfg'), pretrained_cfg_overlay=overlay)
        if not (cfg.file or cfg.state_dict or cfg.url or cfg.hf_hub_id):
            raise NoPublishedWeightsError(
                f'{name}: no weights are published for download. Load the released checkpoint '
                f'(or one of ours) from a file: timm.create_model({name!r}, pretrained=True, '
                "pretrained_cfg_overlay=dict(file=PATH)) or checkpoint_path=PATH (a released "
                'checkpoint loads as it is); or convert it with '
                'tools/model_converters/official_to_mmscope.py for the OpenMMLab configs')
        if overlay.get('file'):  # our reader: safe loading, both layouts
            overlay.setdefault('custom_load', True)
    if kwargs.get('features_only'):
        kwargs['feature_stages'] = kwargs.get('out_indices', (0, 1, 2, 3))
        kwargs.setdefault('feature_cls', 'getter')
        kwargs.setdefault('out_indices', (0, 1, 2, 3))
    return build_model_with_cfg(
        TimmClassifier,
        name,
        pretrained,
        pretrained_cfg_overlay=overlay,
        pretrained_filter_fn=checkpoint_filter_fn,
        family=family,
        arch=arch,
        **kwargs)


def _register(name: str) -> Callable:

    def factory(pretrained: bool = False, **kwargs) -> nn.Module:
        return _create(name, pretrained=pretrained, **kwargs)

    factory.__name__ = factory.__qualname__ = name
    factory.__module__ = __name__
    factory.__doc__ = (f'{name}: {TIMM_NAMES[name][0]}-{TIMM_NAMES[name][1]}, mmscope\'s '
                       'backbone with the released classifier (see mmscope.timm).')
    globals()[name] = factory
    return register_model(factory)


for _name in TIMM_NAMES:
    _register(_name)
__all__ += list(TIMM_NAMES)
