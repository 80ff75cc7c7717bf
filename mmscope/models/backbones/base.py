"""The one contract of every mmscope backbone, and the OpenMMLab plumbing behind it."""
import math
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers import resolve_attention_impl
from ..utils import resolve_arch_alias


def pretrained_to_init_cfg(pretrained: Optional[str],
                           init_cfg: Optional[Union[dict, list]]) -> Optional[Union[dict, list]]:
    """Turn the deprecated ``pretrained=path`` argument into ``init_cfg`` (with a warning)."""
    if pretrained is None:
        return init_cfg
    if init_cfg is not None:
        raise ValueError('init_cfg and pretrained cannot be specified at the same time')
    if not isinstance(pretrained, str):
        raise TypeError(f'pretrained must be a str or None, got {type(pretrained)}')
    warnings.warn('DeprecationWarning: pretrained is deprecated, please use "init_cfg" instead')
    return dict(type='Pretrained', checkpoint=pretrained)


def checkpointed(fn: Callable, *args, enabled: bool) -> Any:
    """``fn(*args)``, through gradient checkpointing (non-reentrant) when ``enabled`` and
    gradients are being recorded; the values are the same either way."""
    if enabled and torch.is_grad_enabled():
        return cp.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def check_input(x: torch.Tensor, min_size: int, name: str) -> None:
    """The backbone contract's input check: ``(B, C, H, W)``, B >= 1, H and W at least
    ``min_size``. One node of an FX graph (``torch.fx.wrap`` below), run on the real
    input."""
    if torch.jit.is_tracing():  # traced sizes are tensors: only the rank is known
        if x.dim() != 4:
            raise ValueError(f'{name} needs (B, C, H, W) inputs, got {x.dim()} dims')
        return
    if x.dim() != 4 or min(x.shape[-2:]) < min_size:
        raise ValueError(f'{name} needs (B, C, H, W) inputs of at least {min_size}x{min_size} '
                         f'(H, W >= {min_size}), got shape {tuple(x.shape)}')
    if x.shape[0] == 0:
        raise ValueError(f'{name} got an empty batch (shape {tuple(x.shape)}): give at least '
                         'one image')


torch.fx.wrap('check_input')


class NotScriptableError(RuntimeError):
    """``torch.jit.script`` of an mmscope backbone (or a model holding one)."""


class MMScopeBackbone(BaseModule):
    """Base class of the mmscope backbones: the contract every one of them keeps.

    * **arch**: a name of :attr:`arch_zoo` (canonical names) or :attr:`arch_aliases`
      (other spellings), or a dict with exactly the keys :attr:`arch_keys`, one entry per
      stage; :meth:`parse_arch` checks it with one error format and the family's per-stage
      rules (:meth:`_check_stage`) and returns ``{key: list}``;
    * ``embed_dims`` (channels of every stage), ``num_stages``, ``out_indices``
      (negative values count from the end), ``frozen_stages``, ``norm_eval``
      (:meth:`_init_backbone`);
    * ``drop_path_rate``: stochastic depth increasing linearly from 0 over all blocks
      (:meth:`drop_path_rates`), a probability in ``[0, 1)``;
    * ``with_cp``: gradient checkpointing of every block (:func:`checkpointed`);
    * ``attn_impl``: checked once here, used by every attention;
    * ``pretrained=`` (deprecated) -> ``init_cfg``; the released (timm-style) weight
      initialisation, applied by :meth:`init_weights` before ``init_cfg``;
    * :meth:`train` that keeps frozen modules (:meth:`_frozen_modules`) and, with
      ``norm_eval``, the norm layers of :attr:`norm_eval_types` in eval mode;
    * inputs ``(B, C, H, W)`` (B >= 1) of at least :attr:`min_input_size`; a tuple of
      NCHW maps;
    * ``Pretrained`` checkpoints that must cover the backbone: fewer than half of its
      parameter tensors matched (name and shape) is an error, a partial match a warning
      naming the missing keys (:func:`mmscope.utils.checkpoint.match_weights`);
    * layer-wise learning-rate decay: :meth:`get_layer_depth` (the stem is layer 0, the
      blocks follow in forward order, the last norm and everything after the backbone
      are the top layer), from the family's :meth:`_layer_order`; and the
      :attr:`no_decay_keys` of its recipes (both read by
      :class:`mmscope.engine.BackboneOptimWrapperConstructor`).

    Subclasses set the class attributes, call :meth:`_init_backbone` first in
    ``__init__``, build their modules, implement :meth:`_frozen_modules` and
    :meth:`_layer_order` and call ``self._freeze_stages()`` at the end. Each family also
    has a :class:`mmscope.models.family.BackboneFamily` (the built-in ones at the end of
    :mod:`mmscope.models.family`).
    """
    #: Canonical arch name -> settings (``{key: per-stage list}``).
    arch_zoo: Dict[str, Dict[str, list]] = {}
    #: Other spelling -> canonical arch name.
    arch_aliases: Dict[str, str] = {}
    #: The keys of an arch dict (each a per-stage list); ``embed_dims`` and ``depths``
    #: are always among them.
    arch_keys: Tuple[str, ...] = ('embed_dims', 'depths')
    #: Smallest accepted input height/width.
    min_input_size: int = 32
    #: Norm layers that ``norm_eval=True`` keeps in eval mode during training.
    norm_eval_types: Tuple[type, ...] = (_BatchNorm, )
    #: Truncated-normal initialiser of the Linear weights (std 0.02, cut at +-2).
    trunc_normal_init = staticmethod(trunc_normal_)
    #: Parameter-name fragments that train without weight decay besides norms and biases
    #: (LayerScale factors, position-bias MLPs, positional convolutions): the custom keys
    #: (``decay_mult=0``) that :class:`mmscope.engine.BackboneOptimWrapperConstructor`
    #: adds to a recipe's ``paramwise_cfg``.
    no_decay_keys: Tuple[str, ...] = ()
    #: The submodule whose output is stage ``i``'s NCHW map (``.format(i)``): the node that
    #: forward hooks and FX feature extraction (torchvision's ``create_feature_extractor``,
    #: timm's ``feature_cls='fx'``) take the stage maps from.
    stage_map_module: str = 'stages.{}'

    def __init__(self,
                 init_cfg: Optional[Union[dict, list]] = None,
                 pretrained: Optional[str] = None):
        super().__init__(init_cfg=pretrained_to_init_cfg(pretrained, init_cfg))

    # ------------------------------------------------------------------------------------
    @classmethod
    def parse_arch(cls, arch: Union[str, Mapping]) -> Dict[str, list]:
        """The settings of ``arch`` (a name or a dict) as ``{key: per-stage list}``;
        ValueError / TypeError saying what is wrong and what is valid."""
        name = cls.__name__
        if isinstance(arch, str):
            key = resolve_arch_alias(arch, cls.arch_aliases)
            if key not in cls.arch_zoo:
                valid = sorted(set(cls.arch_zoo) | set(cls.arch_aliases))
                raise ValueError(f'{name} arch {arch!r} is not one of {valid}; or pass a '
                                 f'dict with the keys {list(cls.arch_keys)}')
            arch = cls.arch_zoo[key]
        elif not isinstance(arch, Mapping):
            raise TypeError(f'{name} arch must be a str or a dict, got {type(arch).__name__}')
        missing = [k for k in cls.arch_keys if k not in arch]
        extra = sorted(set(arch) - set(cls.arch_keys))
        if missing or extra:
            raise ValueError(f'a custom {name} arch needs exactly the keys '
                             f'{list(cls.arch_keys)}; missing: {missing}, unexpected: {extra}')
        not_lists = [k for k in cls.arch_keys if not isinstance(arch[k], (list, tuple))]
        if not_lists:
            raise ValueError(f'{name} arch: every entry must be a per-stage list; not lists: '
                             f'{not_lists}')
        settings = {k: list(arch[k]) for k in cls.arch_keys}
        num_stages = len(settings['depths'])
        wrong = [k for k in cls.arch_keys if len(settings[k]) != num_stages]
        if num_stages == 0 or wrong:
            raise ValueError(f'{name} arch: every entry needs one value per stage '
                             f'({num_stages} stages from "depths"); wrong length: {wrong}')
        for i in range(num_stages):
            stage = {k: settings[k][i] for k in cls.arch_keys}
            dims, depth = stage['embed_dims'], stage['depths']
            if not (isinstance(depth, int) and depth >= 1 and isinstance(dims, int) and dims >= 1):
                raise ValueError(f'{name} arch, stage {i}: depths and embed_dims must be '
                                 f'integers >= 1, got {depth} and {dims}')
            try:
                fixed = cls._check_stage(stage)
            except ValueError as e:
                raise ValueError(f'{name} arch, stage {i}: {e}') from None
            for k, v in (fixed or {}).items():
                settings[k][i] = v
        return settings

    @classmethod
    def _check_stage(cls, stage: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Family rules for the settings of one stage (``{key: value}``): raise
        ValueError saying what is wrong, or return normalised values (or None)."""
        return None

    @staticmethod
    def drop_path_rates(drop_path_rate: float, depths: Sequence[int]) -> List[float]:
        """Stochastic depth of every block: linear from 0 to ``drop_path_rate``, the
        probability of the last block (ValueError unless ``0 <= drop_path_rate < 1``:
        at 1 the last block would drop every path)."""
        if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) \
                or not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate is the stochastic-depth probability of the last '
                             f'block and must be a number in [0, 1), got {drop_path_rate!r}')
        return torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()

    def _init_backbone(self, arch: Union[str, Mapping], out_indices: Union[int, Sequence[int]],
                       frozen_stages: int, norm_eval: bool, with_cp: bool,
                       attn_impl: Optional[str]) -> Dict[str, list]:
        """Parse and set the contract's options; returns the arch settings."""
        settings = self.arch_settings = self.parse_arch(arch)
        self.embed_dims = list(settings['embed_dims'])
        if attn_impl is not None:
            resolve_attention_impl(attn_impl)  # a clear error now, not at the first forward
        self.attn_impl = attn_impl
        self.with_cp = bool(with_cp)
        self._init_stage_options(len(settings['depths']), out_indices, frozen_stages, norm_eval)
        return settings

    def _init_stage_options(self, num_stages: int, out_indices: Union[int, Sequence[int]],
                            frozen_stages: int, norm_eval: bool):
        """Check and set ``num_stages``, ``out_indices`` (a sorted non-negative tuple;
        negative values count from the end; at least one stage, none named twice),
        ``frozen_stages`` and ``norm_eval``."""
        self.num_stages = num_stages
        given = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
        stages = f'{num_stages} stages: 0 .. {num_stages - 1}, or -{num_stages} .. -1 from the end'
        if not given:
            raise ValueError(f'out_indices is empty: name at least one stage to output ({stages})')
        indices = []
        for i in given:
            if isinstance(i, bool) or not isinstance(i, int):
                raise ValueError(f'out_indices must be an int or a sequence of ints, got {given}')
            if not -num_stages <= i < num_stages:
                raise ValueError(f'out_indices {given}: {i!r} is out of range for {stages}')
            if i % num_stages in indices:
                raise ValueError(f'out_indices {given} names stage {i % num_stages} twice: each '
                                 'stage is output once (outputs come in stage order)')
            indices.append(i % num_stages)
        self.out_indices = tuple(sorted(indices))  # outputs come in stage order
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    def __prepare_scriptable__(self):
        """``torch.jit.script`` calls this first, on every submodule: a clear refusal
        instead of a TorchScript compiler error deep inside the model (docs/timm.md)."""
        raise NotScriptableError(
            f'{type(self).__name__} (mmscope) is not scriptable, by design: torch.jit.script '
            'cannot compile its forward, which takes Python decisions on the input size '
            '(padding to the attention grid / windows and its mask, the attention kernel for '
            'the size) and calls its blocks with variable arguments; rewriting the model in '
            "TorchScript's subset would cost its clarity, and TorchScript is in maintenance "
            'mode upstream. What works at every input size instead: torch.export.export and '
            'torch.onnx.export(dynamo=True) (tools/deployment/pytorch2onnx.py --exporter '
            'dynamo), torch.jit.trace (one trace serves every size), torch.compile, '
            'torch.fx.symbolic_trace.')

    def _check_input(self, x: torch.Tensor):
        check_input(x, self.min_input_size, type(self).__name__)

    # ------------------------------------------------------------------------------------
    def _frozen_modules(self) -> List[nn.Module]:
        """The modules that ``frozen_stages`` freezes."""
        raise NotImplementedError

    def _freeze_stages(self):
        for m in self._frozen_modules():
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Set the mode, then keep frozen stages (and norms with ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, self.norm_eval_types):
                    m.eval()
        return self

    # ------------------------------------------------------------------------------------
    def init_weights(self):
        """The released initialisation (trunc-normal 0.02 Linear weights, unit norms,
        fan-out normal convolutions, zero biases), then ``init_cfg`` on top of it.

        A ``Pretrained`` entry of ``init_cfg`` (``checkpoint``, optional ``prefix`` and
        ``map_location``) is loaded last, through the safe loader, and must cover the
        backbone: :func:`mmscope.utils.checkpoint.match_weights` refuses a checkpoint
        that matches fewer than half of its parameter tensors and warns about a partial
        match."""
        first = not self._is_init
        if first:
            self._released_init()
        cfgs = self.init_cfg if isinstance(self.init_cfg, (list, tuple)) else [self.init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
        if not (first and pretrained):
            super().init_weights()
            return
        others = [c for c in cfgs if c is not None and c not in pretrained]
        init_cfg, self.init_cfg = self.init_cfg, (others or None)
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        for cfg in pretrained:
            self.load_pretrained(cfg['checkpoint'], cfg.get('prefix'),
                                 cfg.get('map_location', 'cpu'))

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location: Any = 'cpu') -> None:
        """Load the weights of ``checkpoint`` (those under ``prefix``, e.g.
        ``'backbone.'`` in a classifier's checkpoint) into this backbone.

        Args:
            checkpoint: path or URL of the checkpoint (read by mmengine's loader, which
                ``import mmscope`` makes safe).
            prefix: keep only the keys that start with it, without it. Defaults to None
                (every key).
            map_location: where the tensors are loaded. Defaults to ``'cpu'``.

        Raises :class:`mmscope.utils.checkpoint.CheckpointMismatchError` when the
        checkpoint matches (name and shape) fewer than half of the backbone's parameter
        tensors; warns about a partial match (see
        :func:`mmscope.utils.checkpoint.match_weights`).
        """
        from mmengine.runner.checkpoint import _load_checkpoint

        from mmscope.utils.checkpoint import match_weights, weights_of
        weights = weights_of(_load_checkpoint(checkpoint, map_location=map_location))
        source = f'checkpoint {checkpoint}'
        if prefix:
            source = f'the {prefix}* weights of {source}'
            weights = type(weights)(
                (k[len(prefix):], v) for k, v in weights.items() if k.startswith(prefix))
        self.load_state_dict(match_weights(self, weights, source), strict=False)

    # ------------------------------------------------------------------------------------
    def _layer_order(self) -> List[Tuple[nn.Module, bool]]:
        """Every module of the backbone that holds parameters, in the order the forward
        pass runs them, each with whether it is a *block* (a layer of layer-wise
        learning-rate decay). Modules before the first block (the stem) are layer 0, a
        block is the layer after the one before it, any other module belongs to the last
        block before it, and modules after the last block (the last norm) to the top.
        Implemented by each family."""
        raise NotImplementedError

    def num_layers(self) -> int:
        """The number of layers of layer-wise learning-rate decay: the blocks, the stem
        and the top (see :meth:`get_layer_depth`)."""
        return sum(bool(is_block) for _, is_block in self._layer_order()) + 2

    def layer_ids(self) -> Dict[str, int]:
        """``{parameter name: layer id}`` for every parameter of the backbone (see
        :meth:`_layer_order` and :meth:`get_layer_depth`)."""
        order = self._layer_order()
        num_blocks = sum(is_block for _, is_block in order)
        module_names = {id(m): name for name, m in self.named_modules()}
        ids, seen = {}, 0
        for module, is_block in order:
            seen += bool(is_block)
            layer = seen if is_block or seen < num_blocks else num_blocks + 1
            prefix = module_names[id(module)]
            for name, _ in module.named_parameters():
                ids.setdefault(f'{prefix}.{name}' if prefix else name, layer)
        return ids

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """The layer of a parameter for layer-wise learning-rate decay, as mmpretrain's
        ``LearningRateDecayOptimWrapperConstructor`` asks for it.

        Layers: the stem is 0, block ``k`` (counted over all stages in forward order,
        from 1) is ``k``, modules between blocks (downsampling, positional convolutions,
        stage norms) belong to the block before them, and the last norm and every
        parameter outside the backbone (necks, heads) are the top layer,
        ``num_layers - 1``. ``num_layers`` is the number of blocks + 2.

        Args:
            param_name: the parameter's name in the whole model (e.g.
                ``'backbone.stages.0.blocks.1.mlp.fc1.weight'``).
            prefix: the backbone's prefix in the model (``'backbone.'``); names without
                it are outside the backbone. Defaults to ``''``.

        Returns:
            tuple[int, int]: the layer id and the number of layers.
        """
        if self.__dict__.get('_layer_id_cache') is None:
            self.__dict__['_layer_id_cache'] = (self.layer_ids(), self.num_layers())
        cache, num_layers = self.__dict__['_layer_id_cache']
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        if name not in cache:
            raise ValueError(f'{type(self).__name__} has no parameter {name!r} (from '
                             f'{param_name!r} without the prefix {prefix!r})')
        return cache[name], num_layers

    def _released_init(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                self.trunc_normal_init(m.weight, std=.02, a=-2., b=2.)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (_BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
