"""What is exported: a model of each library as ``x -> tensors`` (no data samples).

The input is the *preprocessed* image batch (normalised, as the model's
``data_preprocessor`` hands it to the model), as in mmdeploy; the outputs are

* classifier (mmpretrain): the class scores before softmax, ``(B, classes)``;
* segmentor (mmseg): the class logits resized to the input size, ``(B, classes, H, W)``
  (whole-image inference, bilinear with the decode head's ``align_corners``);
* pose estimator (mmpose): the heatmaps, ``(B, keypoints, H/4, W/4)``;
* backbone: its tuple of feature maps.

Detectors (mmdet) go through mmdeploy (:mod:`mmscope.deploy.mmdeploy_compat`): their
post-processing (NMS, RoIAlign, masks) is what mmdeploy's rewriters export.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['TensorWrapper', 'wrap_for_export']


class TensorWrapper(nn.Module):
    """``forward(x)``: the model's tensor outputs for a preprocessed batch ``x``.

    Args:
        model (nn.Module): An mmpretrain / mmseg / mmpose model, or a backbone.
        kind (str): ``'classifier'``, ``'segmentor'``, ``'pose'`` or ``'backbone'``.
    """

    KINDS = ('classifier', 'segmentor', 'pose', 'backbone')

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f'kind must be one of {self.KINDS}, got {kind!r}')
        self.model = model
        self.kind = kind

    def forward(self, x: torch.Tensor):
        if self.kind == 'backbone':
            return self.model(x)
        if self.kind == 'segmentor':
            logits = self.model(x, mode='tensor')
            return F.interpolate(logits, size=x.shape[-2:], mode='bilinear',
                                 align_corners=self.model.align_corners)
        out = self.model(x, mode='tensor')
        if self.kind == 'pose' and isinstance(out, (tuple, list)):
            out = out[0]
        return out


def wrap_for_export(model: nn.Module, scope: str) -> Tuple[nn.Module, str]:
    """The exportable :class:`TensorWrapper` of a model of library ``scope``, and its
    kind (the library row's ``export_kind``). Detectors raise: mmdeploy exports them."""
    from mmscope.apis.libraries import get_library
    kind = get_library(scope).export_kind
    if kind == 'mmdeploy':
        raise ValueError(f'{scope} models are exported through mmdeploy '
                         '(mmscope.deploy.mmdeploy_compat.export_detector)')
    return TensorWrapper(model, kind).eval(), kind
