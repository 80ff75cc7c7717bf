"""``torch.export`` with dynamic batch, height and width: one program for every size.

``torch.export`` (the front end of the ONNX dynamo exporter, AOTInductor and ExecuTorch)
records the model once with symbolic sizes and keeps, as *guards*, every decision the
recording took on them. Our backbones take no size decision of their own under an
exporter (:mod:`mmscope.models.layers.padding`), but PyTorch's own shape logic does:
whether a view can split a size, whether a tensor is contiguous, which layout a
convolution returns all depend, in PyTorch's general code, on whether a size is 1 (a
32-pixel input has a 1x1 last stage, a batch can be 1). Two things keep those questions
from becoming guards:

* the backbones write their reshapes so that every comparison PyTorch makes is decided
  by the size ranges alone (:func:`~mmscope.models.layers.flat_view`,
  :func:`~mmscope.models.layers.export_layout` and the masks built from ``arange``);
* :func:`export_program` records with PyTorch's ``backed_size_oblivious`` setting, under
  which an input size is not assumed to differ from 0 or 1 unless that matters: a
  program recorded for batch 2 then holds for batch 1 too.

The result is one program with no guard but the size ranges, equal to eager PyTorch at
every batch and every height and width from ``min_size`` to ``max_size`` (tests:
tests/test_deploy/test_export.py). See docs/deployment.md.
"""
import contextlib
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['DEFAULT_MAX_SIDE', 'dynamic_dims', 'export_program', 'oblivious_sizes']

#: Default largest height / width of :func:`export_program` (any value works; it is the
#: range the program accepts).
DEFAULT_MAX_SIDE = 4096


@contextlib.contextmanager
def oblivious_sizes():
    """Context manager: ``torch.export`` inside it records input sizes without assuming
    they differ from 0 and 1 (PyTorch's experimental ``backed_size_oblivious`` setting)."""
    from torch.fx.experimental import _config
    with _config.patch(backed_size_oblivious=True):
        yield


def dynamic_dims(min_size: int, max_size: int = DEFAULT_MAX_SIDE) -> Dict[int, object]:
    """``dynamic_shapes`` entry for one ``(B, C, H, W)`` input: any batch, H and W in
    ``[min_size, max_size]``."""
    from torch.export import Dim
    if not 1 <= min_size < max_size:
        raise ValueError(f'need 1 <= min_size < max_size, got min_size={min_size}, '
                         f'max_size={max_size}')
    return {
        0: Dim('batch', min=1),
        2: Dim('height', min=min_size, max=max_size),
        3: Dim('width', min=min_size, max=max_size)
    }


def _model_min_size(model: nn.Module) -> Optional[int]:
    """The smallest side the model's mmscope backbone accepts (None: none found)."""
    sizes = [m.min_input_size for m in model.modules() if hasattr(m, 'min_input_size')]
    return max(sizes) if sizes else None


def export_program(model: nn.Module,
                   example: torch.Tensor,
                   min_size: Optional[int] = None,
                   max_size: int = DEFAULT_MAX_SIDE,
                   strict: bool = False) -> 'torch.export.ExportedProgram':
    """``torch.export.export(model, (example,))`` with dynamic batch, height and width.

    Args:
        model: a module taking one ``(B, C, H, W)`` tensor: an mmscope backbone, a timm
            model of ours, or a whole model wrapped by
            :func:`~mmscope.deploy.wrap_for_export`. Exported in its current mode (call
            ``model.eval()`` first for inference).
        example: an input; only its channels, dtype and device matter (a batch of 1 or
            a square example is widened to 2 / made non-square, because the exporter
            would otherwise fix the batch to 1 or tie the width to the height).
        min_size: smallest height / width the program takes; defaults to the backbone's
            ``min_input_size`` (32), and may not be below it.
        max_size: largest height / width. Defaults to :data:`DEFAULT_MAX_SIDE`.
        strict: ``torch.export``'s ``strict`` (TorchDynamo tracing); False by default,
            as in ``torch.export.export``.

    Returns:
        The ``ExportedProgram``: ``program.module()(x)`` runs it at any allowed size.
    """
    if not isinstance(example, torch.Tensor) or example.dim() != 4:
        raise ValueError('example must be one (B, C, H, W) tensor, got '
                         f'{getattr(example, "shape", type(example).__name__)}')
    floor = _model_min_size(model)
    if min_size is None:
        min_size = floor or 1
    elif floor is not None and min_size < floor:
        raise ValueError(f'min_size={min_size} is below the {floor} pixels the backbone '
                         f'accepts; use min_size >= {floor}')
    dims = dynamic_dims(min_size, max_size)
    b, _, h, w = example.shape
    if not (min_size <= h <= max_size and min_size <= w <= max_size):
        raise ValueError(f'the example is {h}x{w}, outside the exported range '
                         f'[{min_size}, {max_size}]')
    if b == 1:
        example = example.expand(2, *example.shape[1:]).contiguous()
    if h == w:  # one pixel wider (or narrower at max_size): H and W stay separate sizes
        example = F.pad(example, (0, 1)) if w < max_size else example[..., :-1]
    with oblivious_sizes():
        return torch.export.export(model, (example, ), dynamic_shapes=(dims, ), strict=strict)
