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
      (:meth:`drop_path_rates`);
    * ``with_cp``: gradient checkpointing of every block (:func:`checkpointed`);
    * ``attn_impl``: checked once here, used by every attention;
    * ``pretrained=`` (deprecated) -> ``init_cfg``; the released (timm-style) weight
      initialisation, applied by :meth:`init_weights` before ``init_cfg``;
    * :meth:`train` that keeps frozen modules (:meth:`_frozen_modules`) and, with
      ``norm_eval``, the norm layers of :attr:`norm_eval_types` in eval mode;
    * inputs ``(B, C, H, W)`` of at least :attr:`min_input_size`; a tuple of NCHW maps.

    Subclasses set the class attributes, call :meth:`_init_backbone` first in
    ``__init__``, build their modules, implement :meth:`_frozen_modules` and call
    ``self._freeze_stages()`` at the end. Each family also registers a
    :class:`mmscope.models.family.BackboneFamily` next to its class.
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
            key = cls.arch_aliases.get(arch.lower(), arch.lower())
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
            if not (isinstance(depth, int) and depth >= 1 and isinstance(dims, int)
                    and dims >= 1):
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
        """Stochastic depth of every block: linear from 0 to ``drop_path_rate``."""
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
        self._init_stage_options(len(settings['depths']), out_indices, frozen_stages,
                                 norm_eval)
        return settings

    def _init_stage_options(self, num_stages: int, out_indices: Union[int, Sequence[int]],
                            frozen_stages: int, norm_eval: bool):
        """Check and set ``num_stages``, ``out_indices`` (sorted non-negative tuple without
        repeats; negative values count from the end), ``frozen_stages`` and
        ``norm_eval``."""
        self.num_stages = num_stages
        given = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
        indices = []
        for i in given:
            if not isinstance(i, int):
                raise ValueError(f'out_indices must be an int or a sequence of ints, got {given}')
            if not -num_stages <= i < num_stages:
                raise ValueError(
                    f'out_indices {given}: {i!r} is out of range for {num_stages} stages '
                    f'(use 0 .. {num_stages - 1}, or -{num_stages} .. -1 from the end)')
            indices.append(i % num_stages)
        self.out_indices = tuple(sorted(set(indices)))  # outputs come in stage order
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    def _check_input(self, x: torch.Tensor):
        size = self.min_input_size
        if torch.jit.is_tracing():  # traced sizes are tensors: only the rank is known
            if x.dim() != 4:
                raise ValueError(f'{type(self).__name__} needs (B, C, H, W) inputs, got '
                                 f'{x.dim()} dims')
            return
        if x.dim() != 4 or min(x.shape[-2:]) < size:
            raise ValueError(f'{type(self).__name__} needs (B, C, H, W) inputs of at least '
                             f'{size}x{size} (H, W >= {size}), got shape {tuple(x.shape)}')

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
        fan-out normal convolutions, zero biases), then ``init_cfg`` on top of it."""
        if not self._is_init:
            self._released_init()
        super().init_weights()

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
