"""The OpenMMLab backbone plumbing shared by every mmscope backbone."""
import math
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch.nn.modules.batchnorm import _BatchNorm


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


class MMScopeBackbone(BaseModule):
    """Base class of the mmscope backbones: what every OpenMMLab backbone needs.

    * ``pretrained=`` (deprecated) -> ``init_cfg``;
    * ``out_indices`` / ``frozen_stages`` / ``norm_eval`` checking
      (:meth:`_init_stage_options`);
    * :meth:`train` that keeps frozen modules (:meth:`_frozen_modules`) and, with
      ``norm_eval``, the norm layers of :attr:`norm_eval_types` in eval mode;
    * the minimum input size check (:meth:`_check_input`);
    * the released (timm-style) weight initialisation, applied by :meth:`init_weights`
      before ``init_cfg`` (e.g. a ``Pretrained`` checkpoint).

    Subclasses call :meth:`_init_stage_options` in ``__init__``, build their modules,
    implement :meth:`_frozen_modules` and call ``self._freeze_stages()`` at the end.
    """
    #: Smallest accepted input height/width.
    min_input_size: int = 32
    #: Norm layers that ``norm_eval=True`` keeps in eval mode during training.
    norm_eval_types: Tuple[type, ...] = (_BatchNorm, )
    #: Store ``out_indices`` sorted and without repeats (else in the given order).
    sort_out_indices: bool = False
    #: Truncated-normal initialiser of the Linear weights (std 0.02, cut at +-2).
    trunc_normal_init = staticmethod(trunc_normal_)

    def __init__(self,
                 init_cfg: Optional[Union[dict, list]] = None,
                 pretrained: Optional[str] = None):
        super().__init__(init_cfg=pretrained_to_init_cfg(pretrained, init_cfg))

    # ------------------------------------------------------------------------------------
    def _init_stage_options(self, num_stages: int, out_indices: Union[int, Sequence[int]],
                            frozen_stages: int, norm_eval: bool):
        """Check and set ``num_stages``, ``out_indices`` (non-negative tuple; negative
        values count from the end), ``frozen_stages`` and ``norm_eval``."""
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
        self.out_indices = tuple(sorted(set(indices))) if self.sort_out_indices else tuple(
            indices)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    def _check_input(self, x: torch.Tensor):
        size = self.min_input_size
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
