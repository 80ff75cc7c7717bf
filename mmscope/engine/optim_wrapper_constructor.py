"""An optimizer wrapper constructor that takes the backbone's word on its parameters.

mmengine's ``DefaultOptimWrapperConstructor`` applies a config's ``paramwise_cfg``; what
is specific to a backbone (which of its parameters train without weight decay, which
layer a parameter belongs to) would have to be repeated in every config. Here it comes
from the backbone (:class:`mmscope.models.backbones.base.MMScopeBackbone`):

* its ``no_decay_keys`` join ``paramwise_cfg.custom_keys`` with ``decay_mult=0``;
* ``paramwise_cfg.layer_decay_rate`` turns on layer-wise learning-rate decay with its
  ``get_layer_depth`` (the layer ids mmpretrain's ``LearningRateDecayOptimWrapperConstructor``
  reads), for a classifier, a detector, a segmentor or a pose estimator alike.

Registered as ``mmscope.BackboneOptimWrapperConstructor`` (a child registry of mmengine's,
so every library's runner finds it by that name).
"""
import logging
from typing import List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmscope.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['BackboneOptimWrapperConstructor', 'find_backbone']


def find_backbone(model: nn.Module) -> Tuple[nn.Module, str]:
    """The mmscope backbone of ``model`` and its parameter-name prefix (``'backbone.'``,
    or ``''`` when ``model`` is the backbone). TypeError when the model has none or
    several.

    Args:
        model: a classifier, detector, segmentor, pose estimator or backbone (a DDP
            wrapper is looked through).
    """
    from mmscope.models.backbones.base import MMScopeBackbone
    model = getattr(model, 'module', model)
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, MMScopeBackbone)]
    if len(found) != 1:
        what = 'no mmscope backbone' if not found else \
            f'{len(found)} mmscope backbones ({", ".join(n for n, _ in found)})'
        raise TypeError(f'{type(model).__name__} has {what}: BackboneOptimWrapperConstructor '
                        'reads the settings of exactly one (use mmengine\'s '
                        'DefaultOptimWrapperConstructor for other models)')
    name, backbone = found[0]
    return backbone, f'{name}.' if name else ''


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, plus the backbone's own parameter settings.

    * The backbone's ``no_decay_keys`` (e.g. ScopeViT's LayerScale ``.gamma`` and GSDA
      ``.rel_pos.``, ScalableViT's ``.pos_conv.``) are added to
      ``paramwise_cfg.custom_keys`` with ``decay_mult=0``; a key that the config lists
      keeps the config's settings. Norms and biases follow the recipe's
      ``norm_decay_mult`` / ``bias_decay_mult`` / ``flat_decay_mult`` as usual.
    * ``paramwise_cfg.layer_decay_rate`` (optional, in ``(0, 1]``): layer-wise
      learning-rate decay. A parameter of layer ``i`` (the backbone's
      ``get_layer_depth``: stem 0, blocks 1..N, the last norm and everything outside the
      backbone, necks and heads, at the top ``N + 1``) trains with
      ``lr * rate ** (N + 1 - i)``, times any ``lr_mult`` of its custom key. Each param
      group also records ``layer_id`` and ``lr_scale``.

    Everything else is mmengine's ``DefaultOptimWrapperConstructor``: a config that
    switches to this constructor gets the same parameter groups, plus the backbone's keys.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config (``optimizer``, ``type``,
            ``clip_grad``...), as for mmengine's constructor.
        paramwise_cfg (dict, optional): mmengine's parameter-wise options, plus
            ``layer_decay_rate``. Defaults to None.

    Example:
        >>> optim_wrapper = dict(
        ...     constructor='mmscope.BackboneOptimWrapperConstructor',
        ...     optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
        ...     paramwise_cfg=dict(norm_decay_mult=0., layer_decay_rate=0.9))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        rate = paramwise_cfg.pop('layer_decay_rate', None)
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or not 0 < rate <= 1):
            raise ValueError(f'paramwise_cfg.layer_decay_rate must be a number in (0, 1] (the '
                             f'learning-rate factor from one layer to the one below), got '
                             f'{rate!r}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.layer_decay_rate = rate
        self._depth = None

    def __call__(self, model: nn.Module):
        backbone, prefix = find_backbone(model)
        keys = {k: dict(decay_mult=0.) for k in backbone.no_decay_keys}
        keys.update(self.paramwise_cfg.get('custom_keys', {}))
        if keys:
            self.paramwise_cfg = dict(self.paramwise_cfg, custom_keys=keys)
            self._validate_cfg()
        if self.layer_decay_rate is not None:
            self._depth = (backbone, prefix)
            self.paramwise_cfg.setdefault('layer_decay_rate', self.layer_decay_rate)
        return super().__call__(model)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module=None) -> None:
        """mmengine's parameter groups; at the top level, each group's learning rate is
        then scaled for its layer (with ``layer_decay_rate``)."""
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix or self._depth is None:
            return
        backbone, backbone_prefix = self._depth
        names = {id(p): n for n, p in module.named_parameters()}
        scales = {}
        for group in params[start:]:
            layer, num_layers = backbone.get_layer_depth(names[id(group['params'][0])],
                                                         backbone_prefix)
            scale = self.layer_decay_rate**(num_layers - 1 - layer)
            group['lr'] = group.get('lr', self.base_lr) * scale
            group.update(lr_scale=scale, layer_id=layer)
            scales[layer] = scale
        print_log(
            f'layer-wise lr decay {self.layer_decay_rate}: {len(scales)} layers, lr x ' +
            ', '.join(f'{scales[k]:.3g}' for k in sorted(scales)) + ' (stem first, top last)',
            logger='current',
            level=logging.INFO)
