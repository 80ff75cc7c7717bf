"""``tools/deployment/pytorch2onnx.py``: export the model of a config + checkpoint.

* classifiers, segmentors and pose estimators: :class:`~mmscope.deploy.TensorWrapper`
  through :func:`~mmscope.deploy.export_onnx` (checked with onnxruntime at the example
  size and at padded / tall / wide / 32x32 sizes before anything is written);
* detectors: mmdeploy's ``torch2onnx`` with mmscope's deploy configs and compatibility
  layer (:mod:`mmscope.deploy.mmdeploy_compat`), then checked against PyTorch on the
  same image (:func:`compare_detections`); written only if they agree within ``rtol``
  (:func:`detection_mismatches`);
* ``backbone_only``: the backbone's feature maps, for any config.

The example input is the ``image`` through the config's test pipeline and
``data_preprocessor`` when given, else a standard-normal batch of ``shape``.
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from mmscope.apis.config import build_model, load_config
from mmscope.apis.libraries import library_of
from .onnx import ExportMismatch, default_check_inputs, export_onnx, require_exporter
from .wrappers import TensorWrapper, wrap_for_export

__all__ = [
    'load_model', 'preprocess_image', 'export_config', 'compare_detections', 'match_detections',
    'detection_mismatches'
]


def load_model(cfg, checkpoint: Optional[str], part: Optional[str] = None):
    """The config's model on CPU in eval mode, with ``checkpoint`` loaded: every tensor
    of the model (of its ``part``, e.g. ``'backbone'``, from the checkpoint's
    ``backbone.*`` weights, when only that part is exported), with its shape, or
    :class:`~mmscope.utils.checkpoint.CheckpointMismatchError` naming what would stay
    unloaded (:func:`~mmscope.utils.checkpoint.check_weights`)."""
    from mmscope.apis.runner import read_checkpoint
    from mmscope.utils.checkpoint import check_weights, weights_of
    model = build_model(cfg)
    if checkpoint:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        target = getattr(model, part) if part else model
        prefix = f'{part}.' if part else ''
        weights = weights_of(read_checkpoint(checkpoint))
        weights = type(weights)(
            (k[len(prefix):], v) for k, v in weights.items() if k.startswith(prefix))
        source = f'the {prefix}* weights of checkpoint {checkpoint}' if part else \
            f'checkpoint {checkpoint}'
        target.load_state_dict(check_weights(target, weights, source), strict=False)
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


def _example(cfg, model, image: Optional[str], shape: Sequence[int], batch: int) -> torch.Tensor:
    if image:
        x, _ = preprocess_image(cfg, model, image)
        return x.expand(batch, *x.shape[1:]).contiguous() if batch > 1 else x
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, *shape, generator=gen)


def export_config(config: str,
                  checkpoint: Optional[str],
                  out_file: str,
                  shape: Sequence[int] = (224, 224),
                  image: Optional[str] = None,
                  batch: int = 1,
                  exporter: str = 'torchscript',
                  opset: int = 17,
                  check_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                  rtol: float = 1e-4,
                  backbone_only: bool = False,
                  overwrite: bool = False,
                  cfg_options: Optional[dict] = None) -> Dict:
    """Export and check the model of ``config`` (see the module docstring). Returns the
    report of :func:`~mmscope.deploy.export_onnx` plus ``kind``."""
    cfg = load_config(config, cfg_options)
    scope = library_of(cfg).scope
    if scope == 'mmdet' and not backbone_only:
        if not image:
            raise ValueError('detectors are exported by mmdeploy from a real image: pass '
                             '--image (e.g. a COCO val image)')
        if exporter != 'torchscript':
            raise ValueError(
                f'detectors are exported by mmdeploy, whose rewriters need the TorchScript '
                f'exporter; exporter={exporter!r} is not available for them (torch.export '
                f'stops at the data-dependent number of boxes in mmdet\'s post-processing; '
                f'see docs/deployment.md). Use --exporter torchscript, or --backbone-only')
        if checkpoint:  # refused before mmdeploy loads it (leniently)
            load_model(cfg, checkpoint)
        report = _export_detector_checked(cfg, checkpoint, image, out_file, rtol, overwrite)
        return dict(report, kind='detector', exporter='torchscript (mmdeploy)', opset=17)
    require_exporter(exporter)  # before the model is built
    model = load_model(cfg, checkpoint, 'backbone' if backbone_only else None)
    if backbone_only:
        module = reference = TensorWrapper(model.backbone, 'backbone').eval()
        kind = 'backbone'
    else:
        module, reference, kind = wrap_for_export(model, scope)
    example = _example(cfg, model, image, shape, batch)
    checks = default_check_inputs(example, check_sizes)
    report = export_onnx(
        module,
        example,
        out_file,
        exporter=exporter,
        opset=opset,
        check_inputs=checks,
        rtol=rtol,
        overwrite=overwrite,
        reference=reference)
    report.pop('onnx')
    return dict(report, kind=kind)


def _export_detector_checked(cfg, checkpoint, image, out_file, rtol, overwrite) -> Dict:
    """mmdeploy's export into a temporary folder beside ``out_file``, compared with
    PyTorch on ``image``; moved to ``out_file`` only if it agrees (else
    :class:`~mmscope.deploy.ExportMismatch`, and nothing is written)."""
    from .mmdeploy_compat import export_detector
    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(f'{out_file} exists; pass --overwrite to replace it')
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix='.mmscope-export-', dir=out_dir)
    try:
        tmp_file = osp.join(tmp_dir, osp.basename(out_file))
        report = export_detector(cfg, checkpoint, image, tmp_file, work_dir=tmp_dir)
        check = compare_detections(cfg, checkpoint, image, tmp_file)
        problems = detection_mismatches(check, rtol)
        if problems:
            raise ExportMismatch(f'the exported detector differs from PyTorch on {image}: ' +
                                 '; '.join(problems) + f' ({check}); {out_file} was not written')
        os.replace(tmp_file, out_file)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dict(report, path=out_file, **check)


def detection_mismatches(check: Dict, rtol: float) -> List[str]:
    """What :func:`compare_detections` found out of tolerance: a box further than ``rtol``
    x the input's longer side, or a score further than ``rtol``, from its match (a
    detection without any of its label in the other set counts as infinitely far)."""
    problems = []
    if check['max_box_err'] > rtol * check['input_side']:
        problems.append(f"a box {check['max_box_err']:.3g} px away")
    if check['max_score_err'] > rtol:
        problems.append(f"a score {check['max_score_err']:.3g} away")
    return problems


def _nearest_errors(boxes, scores, labels, other_boxes, other_scores, other_labels):
    """For each detection, the detection of the other set with its label and the nearest
    box: the largest box (pixels) and score differences, inf where none has its label."""
    box_err = score_err = 0.
    for box, score, label in zip(boxes, scores, labels):
        same = other_labels == label
        if not same.any():
            return float('inf'), float('inf')
        dist = (other_boxes[same] - box).abs().amax(dim=1)
        j = int(dist.argmin())
        box_err = max(box_err, float(dist[j]))
        score_err = max(score_err, float((other_scores[same][j] - score).abs()))
    return box_err, score_err


def _max_detections(cfg) -> Optional[int]:
    """The detector's ``max_per_img`` (of its RoI head for two-stage detectors)."""
    test_cfg = cfg.model.get('test_cfg') or {}
    return (test_cfg.get('rcnn') or test_cfg).get('max_per_img')


def compare_detections(cfg,
                       checkpoint: Optional[str],
                       image: str,
                       onnx_file: str,
                       score_thr: float = 0.05,
                       margin: float = 1e-4) -> Dict:
    """PyTorch (``model.predict`` without rescaling) and the exported graph on the same
    preprocessed image.

    Each detection of one set is matched to the detection of its label with the nearest
    box in the other set (so that equal scores listed in another order still match);
    the result holds the largest box (pixels) and score differences of both directions.
    Only detections clearly above the cut are checked: above ``score_thr + margin``, and
    above the lowest kept score (+ ``margin``) of a set that reached ``max_per_img``,
    where equal scores can be cut differently. Their matches are searched down to
    ``margin`` under the cut.

    Returns ``dict(n_torch, n_onnx, n_checked, max_box_err, max_score_err, input_side)``.
    """
    from .onnx import OnnxModel
    model = load_model(cfg, checkpoint)
    x, samples = preprocess_image(cfg, model, image)
    with torch.no_grad():
        pred = model.predict(x, samples, rescale=False)[0].pred_instances
    outputs = OnnxModel(onnx_file)(x)
    dets = outputs[0][0]
    report = match_detections((pred.bboxes, pred.scores, pred.labels),
                              (dets[:, :4], dets[:, 4], outputs[1][0]), score_thr,
                              _max_detections(cfg), margin)
    return dict(report, input_side=int(max(x.shape[-2:])))


def match_detections(torch_dets,
                     onnx_dets,
                     score_thr: float,
                     max_per_img: Optional[int],
                     margin: float = 1e-4) -> Dict:
    """The comparison of :func:`compare_detections` on two ``(boxes, scores, labels)``
    sets: ``dict(n_torch, n_onnx, n_checked, max_box_err, max_score_err)``."""
    sets = [(b, s, lab.long()) for b, s, lab in (torch_dets, onnx_dets)]
    sets = [tuple(t[d[1] >= score_thr] for t in d) for d in sets]
    cut = score_thr
    for d in sets:
        if max_per_img and len(d[1]) >= max_per_img:
            cut = max(cut, float(d[1].min()))

    def above(d, thr):
        keep = d[1] >= thr
        return tuple(t[keep] for t in d)

    errs = [
        _nearest_errors(*above(a, cut + margin), *above(b, cut - margin))
        for a, b in (sets, sets[::-1])
    ]
    return dict(
        n_torch=len(sets[0][1]),
        n_onnx=len(sets[1][1]),
        n_checked=len(above(sets[0], cut + margin)[1]),
        max_box_err=max(e[0] for e in errs),
        max_score_err=max(e[1] for e in errs))
