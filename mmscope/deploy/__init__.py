"""Leaving PyTorch eager: ``torch.export`` at every size, ONNX export checked with
onnxruntime, whole-model deployment
through mmdeploy (with the small compatibility layer this stack needs) and
``torch.compile`` of the backbones. See docs/deployment.md."""
from .compile import compile_backbone, compile_report
from .export import dynamic_dims, export_program, oblivious_sizes
from .onnx import (EXPORTERS, ExportMismatch, OnnxModel, check_onnx, export_onnx, onnx_input_names,
                   relative_error)
from .wrappers import TensorWrapper, wrap_for_export

__all__ = [
    'compile_backbone', 'compile_report', 'dynamic_dims', 'export_program', 'oblivious_sizes',
    'EXPORTERS', 'ExportMismatch', 'OnnxModel', 'check_onnx', 'export_onnx', 'onnx_input_names',
    'relative_error', 'TensorWrapper', 'wrap_for_export'
]
