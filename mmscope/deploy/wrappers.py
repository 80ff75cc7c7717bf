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
import copy
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

__all__ = ['TensorWrapper', 'wrap_for_export', 'SizeGenericAdaptiveAvgPool2d', 'size_generic_copy']


class SizeGenericAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` written with slices whose bounds are computed from the
    input size, so that a traced graph holds at every size.

    The TorchScript exporter refuses ``adaptive_avg_pool2d`` with a dynamic input size
    (other than an output of 1x1), and mmdeploy's rewrite of it freezes an
    ``avg_pool2d`` kernel computed from the export size (wrong at other sizes). Bin ``i``
    of ``n`` over a side of ``s`` covers ``[floor(i * s / n), ceil((i + 1) * s / n))``, as
    in PyTorch's kernel; each bin is averaged.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _pair(output_size)
        if None in self.output_size:
            raise ValueError('SizeGenericAdaptiveAvgPool2d needs both output sides')

    @staticmethod
    def _bins(size, n):
        return [((i * size) // n, ((i + 1) * size + n - 1) // n) for i in range(n)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        oh, ow = self.output_size
        h, w = x.shape[-2:]
        rows = []
        for h0, h1 in self._bins(h, oh):
            band = x[..., h0:h1, :]
            rows.append(
                torch.cat(
                    [band[..., w0:w1].mean((-2, -1), keepdim=True) for w0, w1 in self._bins(w, ow)],
                    dim=-1))
        return torch.cat(rows, dim=-2)


def size_generic_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.AdaptiveAvgPool2d`` of an output other than
    1x1 (e.g. UperNet's pyramid pooling) replaced by :class:`SizeGenericAdaptiveAvgPool2d`
    (the model itself is left as it is: it is the reference of the export checks)."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and \
                    _pair(child.output_size) != (1, 1):
                setattr(module, child_name, SizeGenericAdaptiveAvgPool2d(child.output_size))
    return model


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
            return F.interpolate(
                logits, size=x.shape[-2:], mode='bilinear', align_corners=self.model.align_corners)
        if self.kind == 'pose':  # mmpose's forward takes data_samples positionally
            out = self.model(x, None, mode='tensor')
            return out[0] if isinstance(out, (tuple, list)) else out
        return self.model(x, mode='tensor')


def wrap_for_export(model: nn.Module, scope: str) -> Tuple[nn.Module, nn.Module, str]:
    """``(exported, reference, kind)`` for a model of library ``scope``: the
    :class:`TensorWrapper` to export (over :func:`size_generic_copy` of the model), the
    one over the model itself (what the export is checked against) and the kind (the
    library row's ``export_kind``). Detectors raise: mmdeploy exports them."""
    from mmscope.apis.libraries import get_library
    kind = get_library(scope).export_kind
    if kind == 'mmdeploy':
        raise ValueError(f'{scope} models are exported through mmdeploy '
                         '(mmscope.deploy.mmdeploy_compat.export_detector)')
    return (TensorWrapper(size_generic_copy(model), kind).eval(), TensorWrapper(model,
                                                                                kind).eval(), kind)
