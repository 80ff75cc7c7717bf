"""ONNX export with dynamic batch / height / width, checked with onnxruntime.

Two exporters of ``torch.onnx.export``:

* ``'torchscript'`` (``dynamo=False``): traces the model once; sizes are traced values,
  so the backbones' size logic stays symbolic (``mmscope.models.layers.symbolic_shapes``);
* ``'dynamo'`` (``dynamo=True``): ``torch.export`` with ``Dim`` ranges for H and W, then
  the onnxscript translator (opset >= 18).

Either way the result is only written where it was asked for after onnxruntime ran it at
the export size *and* at every check size and agreed with PyTorch (:func:`check_onnx`);
a graph that runs but differs raises :class:`ExportMismatch` and nothing is written.
"""
import io
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    'EXPORTERS', 'EXPORTER_MODULES', 'ExportMismatch', 'OnnxModel', 'export_onnx',
    'require_exporter', 'check_onnx', 'relative_error', 'onnx_input_names'
]

#: ``exporter`` name -> what it is.
EXPORTERS = {
    'torchscript': 'torch.onnx.export(dynamo=False): TorchScript tracing',
    'dynamo': 'torch.onnx.export(dynamo=True): torch.export + onnxscript',
}
#: Smallest input side the backbones accept (their ``min_input_size``).
MIN_SIDE = 32
#: The modules each exporter needs beyond torch (``onnx`` and ``onnxruntime`` for the
#: check), all installed by ``make setup`` from requirements/deploy.txt.
EXPORTER_MODULES = {
    'torchscript': ('onnx', 'onnxruntime'),
    'dynamo': ('onnx', 'onnxruntime', 'onnxscript')
}


def require_exporter(exporter: str) -> None:
    """ModuleNotFoundError naming the install step when a module that ``exporter`` needs
    (:data:`EXPORTER_MODULES`) is missing, before torch fails on it in the middle of an
    export."""
    import importlib.util
    missing = [m for m in EXPORTER_MODULES[exporter] if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(
            f'--exporter {exporter} needs {", ".join(missing)}, which is not installed: make '
            'setup installs it (tools/setup_env.sh, step 6: the onnx, onnxruntime and '
            'onnxscript versions pinned in requirements/deploy.txt)',
            name=missing[0])


class ExportMismatch(RuntimeError):
    """An exported graph that runs but computes something else than the PyTorch model."""


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """``max |got - ref| / max |ref|`` (0 for two empty or all-zero arrays)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        raise ExportMismatch(f'output shape {got.shape} differs from PyTorch {ref.shape}')
    scale = float(np.abs(ref).max()) if ref.size else 0.
    diff = float(np.abs(got - ref).max()) if ref.size else 0.
    return diff / scale if scale > 0 else diff


def _as_tuple(out) -> Tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out, )
    if isinstance(out, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in out):
        return tuple(out)
    raise TypeError(f'the exported module must return a tensor or a tuple of tensors, '
                    f'got {type(out).__name__}')


class OnnxModel:
    """An onnxruntime CPU session over an exported file or bytes, called like the module:
    ``OnnxModel(path)(x) -> tuple of tensors``."""

    def __init__(self, model: Union[str, bytes], threads: Optional[int] = None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=['CPUExecutionProvider'])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})
        return tuple(torch.from_numpy(o) for o in outs)


def onnx_input_names(model: Union[str, bytes]) -> List[str]:
    """The graph's input names."""
    import onnx
    graph = (onnx.load(model) if isinstance(model, str) else onnx.load_from_string(model)).graph
    inits = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in inits]


def _export_bytes(module: torch.nn.Module, example: torch.Tensor, exporter: str, opset: int,
                  output_names: Sequence[str]) -> bytes:
    if exporter == 'torchscript':
        buf = io.BytesIO()
        dynamic_axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        with warnings.catch_warnings():
            # the tracer warns about every size it sees as a value; the sizes stay traced
            warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
            torch.onnx.export(
                module, (example, ),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=['input'],
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                do_constant_folding=True)
        return buf.getvalue()
    if exporter == 'dynamo':
        from torch.export import Dim
        if example.shape[0] == 1:  # torch.export specializes a size-1 example to 1
            example = example.expand(2, *example.shape[1:]).contiguous()
        # Dim.DYNAMIC, not the ranges of export_program: a whole model's head may still
        # narrow the range where torch.export would refuse it (the backbones themselves
        # keep the full range); the ONNX graph keeps no guards, and the check sizes below
        # (32x32 included) are what proves it at every size
        from .export import oblivious_sizes
        with oblivious_sizes():  # as export_program: one program for every size
            program = torch.onnx.export(
                module, (example, ),
                dynamo=True,
                opset_version=max(opset, 18),
                input_names=['input'],
                output_names=list(output_names),
                dynamic_shapes=({
                    0: Dim.DYNAMIC,
                    2: Dim.DYNAMIC,
                    3: Dim.DYNAMIC
                }, ),
                verbose=False)
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'model.onnx')
            program.save(path, external_data=False)
            with open(path, 'rb') as f:
                return f.read()
    raise ValueError(f'exporter must be one of {sorted(EXPORTERS)}, got {exporter!r}')


def check_onnx(module: torch.nn.Module,
               model: Union[str, bytes, OnnxModel],
               inputs: Sequence[torch.Tensor],
               rtol: float = 1e-4,
               threads: Optional[int] = None) -> List[Dict]:
    """Run ``module`` and the ONNX ``model`` on every input; one row per input
    (``shape``, ``rel_err`` = the largest :func:`relative_error` over the outputs).
    Raises :class:`ExportMismatch` (naming the input sizes) when an error exceeds ``rtol``
    or onnxruntime fails on an input."""
    session = model if isinstance(model, OnnxModel) else OnnxModel(model, threads)
    rows, bad = [], []
    for x in inputs:
        with torch.no_grad():
            ref = _as_tuple(module(x))
        try:
            got = session(x)
        except Exception as e:  # onnxruntime: shape errors of a graph frozen at one size
            bad.append(f'{tuple(x.shape)}: onnxruntime failed: {str(e).splitlines()[0][:300]}')
            continue
        if len(got) != len(ref):
            raise ExportMismatch(f'{len(got)} ONNX outputs, PyTorch has {len(ref)}')
        err = max(relative_error(g.numpy(), r.numpy()) for g, r in zip(got, ref))
        rows.append(dict(shape=tuple(x.shape), rel_err=err))
        if not err <= rtol:
            bad.append(f'{tuple(x.shape)}: relative error {err:.2e} > {rtol:.0e}')
    if bad:
        raise ExportMismatch('the ONNX graph does not compute the PyTorch model at every '
                             'size:\n  ' + '\n  '.join(bad))
    return rows


def default_check_inputs(example: torch.Tensor,
                         sizes: Optional[Sequence[Tuple[int, int]]] = None,
                         seed: int = 0) -> List[torch.Tensor]:
    """The example plus random inputs (same batch and channels) at ``sizes``: by default
    sizes that fit the grids, need padding, are tall, wide, and the smallest (32x32)."""
    b, c, h, w = example.shape
    if sizes is None:
        sizes = [(224, 224), (97, 131), (517, 389), (320, 96), (96, 320), (32, 32)]
    gen = torch.Generator().manual_seed(seed)
    return [example] + [
        torch.randn(b, c, sh, sw, generator=gen) for sh, sw in sizes if (sh, sw) != (h, w)
    ]


def export_onnx(module: torch.nn.Module,
                example: torch.Tensor,
                out_file: Optional[str] = None,
                exporter: str = 'torchscript',
                opset: int = 17,
                output_names: Optional[Sequence[str]] = None,
                check_inputs: Optional[Sequence[torch.Tensor]] = None,
                rtol: float = 1e-4,
                overwrite: bool = False,
                threads: Optional[int] = None,
                reference: Optional[torch.nn.Module] = None) -> Dict:
    """Export ``module`` (``x -> tensor | tuple``, eval mode) with dynamic batch/H/W,
    check it with onnxruntime against PyTorch on ``example`` and ``check_inputs``
    (:func:`default_check_inputs` when None), and write it to ``out_file`` only if every
    check passed.

    ``reference`` is what the graph is checked against (default: ``module``; e.g. the
    model before :func:`~mmscope.deploy.wrappers.size_generic_copy`).

    Returns ``dict(onnx=bytes, path=out_file, checks=[...], exporter, opset)``. Raises
    :class:`ExportMismatch` (nothing written) if a check fails, FileExistsError if
    ``out_file`` exists and ``overwrite`` is False.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {sorted(EXPORTERS)}, got {exporter!r}')
    require_exporter(exporter)
    if example.dim() != 4 or min(example.shape[-2:]) < MIN_SIDE:
        raise ValueError(f'the example input must be (B, C, H, W) with H, W >= {MIN_SIDE}, '
                         f'got {tuple(example.shape)}')
    if out_file and osp.exists(out_file) and not overwrite:
        raise FileExistsError(f'{out_file} exists; pass overwrite=True (--overwrite) to '
                              'replace it')
    module = module.eval()
    with torch.no_grad():
        n_out = len(_as_tuple(module(example)))
    if output_names is None:
        output_names = ['output'] if n_out == 1 else [f'output{i}' for i in range(n_out)]
    if len(output_names) != n_out:
        raise ValueError(f'{len(output_names)} output names for {n_out} outputs')
    data = _export_bytes(module, example, exporter, opset, output_names)
    if check_inputs is None:
        check_inputs = default_check_inputs(example)
    reference = module if reference is None else reference.eval()
    checks = check_onnx(
        reference,
        data, [example] + [x for x in check_inputs if x is not example],
        rtol=rtol,
        threads=threads)
    if out_file:
        os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
        tmp = out_file + '.part'
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, out_file)
    return dict(
        onnx=data,
        path=out_file,
        checks=checks,
        exporter=exporter,
        opset=max(opset, 18) if exporter == 'dynamo' else opset)
