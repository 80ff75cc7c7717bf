"""A config's test metric computed with an exported ONNX model instead of PyTorch.

``evaluate_onnx(config, onnx_file)`` runs the config's test dataloader and the model's
``data_preprocessor`` (in PyTorch, as a deployment would do outside the graph), the ONNX
graph in onnxruntime, turns its outputs into the library's data samples, and evaluates
them with the config's ``test_evaluator``: the same figures ``tools/test.py`` prints for
the checkpoint, computed from the exported graph (the shapes demo's
``tests/test_end_to_end.py`` compares them).

* classifier: scores = softmax(logits), the label their argmax;
* segmentor: the logits (at the input size) go through the model's own
  ``postprocess_result`` (padding cropped, resized to the image);
* detector (mmdeploy graph): boxes divided by the scale factor, masks (28x28 per box)
  pasted into the image and thresholded as mmdet's mask head does;
* pose estimator: the heatmaps, with the config's flip test done as mmpose does it (the
  graph also runs on the mirrored crops; their heatmaps are mirrored back, left and right
  keypoints swapped, and averaged), decoded by the head's codec into keypoints.
"""
from typing import Dict, Optional

import torch

from mmscope.apis.config import load_config
from mmscope.apis.libraries import library_of
from .from_config import load_model
from .onnx import OnnxModel

__all__ = ['evaluate_onnx']


def _classifier_samples(outputs, samples):
    scores = outputs[0].softmax(dim=1)
    for sample, score in zip(samples, scores):
        sample.set_pred_score(score).set_pred_label(score.argmax(keepdim=True))
    return samples


def _segmentor_samples(model, outputs, samples):
    return model.postprocess_result(outputs[0], samples)


def _detector_samples(model, outputs, samples, score_thr: float):
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    from mmengine.structures import InstanceData
    dets, labels = outputs[0], outputs[1]
    masks = outputs[2] if len(outputs) > 2 else None
    mask_thr = None
    if masks is not None:
        mask_thr = model.test_cfg.rcnn.get('mask_thr_binary', 0.5)
    for i, sample in enumerate(samples):
        keep = dets[i, :, 4] > 0  # rows past the detections are zero
        boxes = dets[i, keep, :4] / boxes_scale(sample)
        inst = InstanceData(bboxes=boxes, scores=dets[i, keep, 4], labels=labels[i, keep].long())
        if masks is not None:
            h, w = sample.ori_shape
            if keep.any():
                pasted, _ = _do_paste_mask(masks[i, keep][:, None], boxes, h, w, skip_empty=False)
                inst.masks = pasted >= mask_thr
            else:
                inst.masks = torch.zeros(0, h, w, dtype=torch.bool)
        sample.pred_instances = inst
    return samples


def _pose_samples(model, session, inputs, samples):
    from mmpose.models.utils.tta import flip_heatmaps
    test_cfg = model.test_cfg or {}
    heatmaps = session(inputs)[0]
    if test_cfg.get('flip_test', False):
        mirrored = flip_heatmaps(
            session(inputs.flip(-1))[0],
            flip_mode=test_cfg.get('flip_mode', 'heatmap'),
            flip_indices=samples[0].metainfo['flip_indices'],
            shift_heatmap=test_cfg.get('shift_heatmap', False))
        heatmaps = (heatmaps + mirrored) * 0.5
    preds = model.head.decode(heatmaps)
    return model.add_pred_to_datasample(preds, None, samples)


def boxes_scale(sample) -> torch.Tensor:
    """``(sx, sy, sx, sy)``: what mmdet divides the boxes by to return to the image."""
    sx, sy = sample.metainfo.get('scale_factor', (1., 1.))
    return torch.tensor([sx, sy, sx, sy])


def evaluate_onnx(config: str,
                  onnx_file: str,
                  checkpoint: Optional[str] = None,
                  cfg_options: Optional[dict] = None,
                  threads: Optional[int] = None,
                  score_thr: float = 0.) -> Dict:
    """The test metrics of ``config`` with ``onnx_file`` doing the model's work (see the
    module docstring). ``checkpoint`` is only needed for what runs outside the graph
    (the data preprocessor, a segmentor's post-processing) and may be None."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    cfg = load_config(config, cfg_options)
    library = library_of(cfg)
    init_default_scope(library.scope)
    model = load_model(cfg, checkpoint)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    session = OnnxModel(onnx_file, threads)
    kind = library.export_kind
    if kind not in ('classifier', 'segmentor', 'mmdeploy', 'pose'):
        raise ValueError(f'no ONNX evaluation for {library.name} models')
    for batch in loader:
        data = model.data_preprocessor(batch, training=False)
        inputs, samples = data['inputs'], data['data_samples']
        if kind == 'pose':  # the flip test runs the graph twice
            samples = _pose_samples(model, session, inputs, samples)
        elif kind == 'classifier':
            samples = _classifier_samples(session(inputs), samples)
        elif kind == 'segmentor':
            samples = _segmentor_samples(model, session(inputs), samples)
        else:
            samples = _detector_samples(model, session(inputs), samples, score_thr)
        evaluator.process(data_samples=samples, data_batch=batch)
    return evaluator.evaluate(len(loader.dataset))
