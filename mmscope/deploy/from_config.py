"""``tools/deployment/pytorch2onnx.py``: export the model of a config + checkpoint.

* classifiers, segmentors and pose estimators: :class:`~mmscope.deploy.TensorWrapper`
  through :func:`~mmscope.deploy.export_onnx` (checked with onnxruntime at the example
  size and at padded / tall / wide / 32x32 sizes before anything is written);
* detectors: mmdeploy's ``torch2onnx`` with mmscope's deploy configs and compatibility
  layer (:mod:`mmscope.deploy.mmdeploy_compat`), then checked against PyTorch on the
  same image (:func:`compare_detections`);
* ``backbone_only``: the backbone's feature maps, for any config.

The example input is the ``image`` through the config's test pipeline and
``data_preprocessor`` when given, else a standard-normal batch of ``shape``.
"""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import torch

from mmscope.apis.config import build_model, load_config
from mmscope.apis.libraries import library_of
from .onnx import default_check_inputs, export_onnx
from .wrappers import TensorWrapper, wrap_for_export

__all__ = ['load_model', 'preprocess_image', 'export_config', 'compare_detections']


def load_model(cfg, checkpoint: Optional[str]):
    """The config's model on CPU in eval mode, with ``checkpoint`` loaded (strict)."""
    from mmengine.runner import load_checkpoint
    model = build_model(cfg)
    if checkpoint:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.eval()


def preprocess_image(cfg, model, image: str) -> Tuple[torch.Tensor, list]:
    """``image`` through the test pipeline and the model's ``data_preprocessor``:
    the batch ``(1, C, H, W)`` the model sees, and its data samples."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope
    if not osp.isfile(image):
        raise FileNotFoundError(f'image not found: {image}')
    library = library_of(cfg)
    init_default_scope(library.scope)
    pipeline_cfg = cfg.test_dataloader.dataset.pipeline
    pipeline = Compose(list(pipeline_cfg))
    sample = dict(img_path=image)
    if library.scope == 'mmseg':
        sample.update(seg_map_path=None, reduce_zero_label=False, seg_fields=[])
    if library.scope == 'mmpose':
        raise ValueError('pose configs need a person box per input: export them with '
                         '--shape (the crop size of the codec)')
    data = pipeline(sample)
    batch = model.data_preprocessor(pseudo_collate([data]), training=False)
    return batch['inputs'], batch['data_samples']


def _example(cfg, model, image: Optional[str], shape: Sequence[int],
             batch: int) -> torch.Tensor:
    if image:
        x, _ = preprocess_image(cfg, model, image)
        return x.expand(batch, *x.shape[1:]).contiguous() if batch > 1 else x
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, *shape, generator=gen)


def export_config(config: str, checkpoint: Optional[str], out_file: str,
                  shape: Sequence[int] = (224, 224), image: Optional[str] = None,
                  batch: int = 1, exporter: str = 'torchscript', opset: int = 17,
                  check_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                  rtol: float = 1e-4, backbone_only: bool = False, overwrite: bool = False,
                  cfg_options: Optional[dict] = None) -> Dict:
    """Export and check the model of ``config`` (see the module docstring). Returns the
    report of :func:`~mmscope.deploy.export_onnx` plus ``kind``."""
    cfg = load_config(config, cfg_options)
    scope = library_of(cfg).scope
    if scope == 'mmdet' and not backbone_only:
        from .mmdeploy_compat import export_detector
        if not image:
            raise ValueError('detectors are exported by mmdeploy from a real image: pass '
                             '--image (e.g. a COCO val image)')
        report = export_detector(cfg, checkpoint, image, out_file, overwrite=overwrite)
        report.update(compare_detections(cfg, checkpoint, image, out_file))
        return dict(report, kind='detector', exporter='torchscript (mmdeploy)', opset=17)
    model = load_model(cfg, checkpoint)
    if backbone_only:
        module = reference = TensorWrapper(model.backbone, 'backbone').eval()
        kind = 'backbone'
    else:
        module, reference, kind = wrap_for_export(model, scope)
    example = _example(cfg, model, image, shape, batch)
    checks = default_check_inputs(example, check_sizes)
    report = export_onnx(module, example, out_file, exporter=exporter, opset=opset,
                         check_inputs=checks, rtol=rtol, overwrite=overwrite,
                         reference=reference)
    report.pop('onnx')
    return dict(report, kind=kind)


def compare_detections(cfg, checkpoint: Optional[str], image: str, onnx_file: str,
                       score_thr: float = 0.05) -> Dict:
    """PyTorch (``model.predict`` without rescaling) and the exported graph on the same
    preprocessed image: the boxes and scores above ``score_thr``, matched in score order.
    Returns ``dict(n_torch, n_onnx, max_box_err (pixels), max_score_err)``."""
    from .onnx import OnnxModel
    model = load_model(cfg, checkpoint)
    x, samples = preprocess_image(cfg, model, image)
    with torch.no_grad():
        pred = model.predict(x, samples, rescale=False)[0].pred_instances
    keep = pred.scores >= score_thr
    boxes, scores = pred.bboxes[keep], pred.scores[keep]
    dets = OnnxModel(onnx_file)(x)[0][0]  # (N, 5)
    dets = dets[dets[:, 4] >= score_thr]
    n = min(len(dets), len(boxes))
    order_t, order_o = scores.argsort(descending=True)[:n], dets[:, 4].argsort(descending=True)[:n]
    box_err = float((boxes[order_t] - dets[order_o, :4]).abs().max()) if n else 0.
    score_err = float((scores[order_t] - dets[order_o, 4]).abs().max()) if n else 0.
    return dict(n_torch=int(len(boxes)), n_onnx=int(len(dets)), max_box_err=box_err,
                max_score_err=score_err)
