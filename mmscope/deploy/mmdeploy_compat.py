"""mmdeploy 1.3.1 on this stack (torch 2.12, onnx 1.23, onnxruntime 1.32): what breaks and
the small layer that makes it work, applied only inside :func:`mmdeploy_patches`.

What breaks, measured (see docs/deployment.md):

1. **Exporter choice.** mmdeploy calls ``torch.onnx.export`` without ``dynamo=``; on torch
   2.12 that selects the dynamo exporter, which mmdeploy's rewriters (written for
   TorchScript tracing) do not serve (``ModuleNotFoundError: onnxscript`` without it,
   unrewritten graphs with it). The patch passes ``dynamo=False`` unless the caller chose.
2. **SDPA rewrite.** mmdeploy's default rewrite of ``F.scaled_dot_product_attention``
   calls ``masked_fill(not attn_mask, ...)`` (a Python ``not`` on a tensor: "Boolean value
   of Tensor with more than one value is ambiguous" for any boolean mask) and divides the
   logits by ``scale`` where PyTorch multiplies (a wrong result whenever ``scale`` is
   given). The patch registers, for the onnxruntime backend, a rewrite that computes
   PyTorch's function: ``softmax(q k^T * scale + mask) v`` with ``scale`` defaulting to
   ``1 / sqrt(head size)`` and boolean masks meaning *attend*. (mmscope's own attention
   never calls SDPA while tracing, so it does not depend on this; other modules might.)
3. **Removed torch helpers.** mmdeploy's RoIAlign symbolic (the onnxruntime path)
   imports ``torch.onnx.symbolic_opset9._cast_Long``, which torch 2.12 no longer has
   (``ImportError``). The patch provides it for the duration of the export (a cast to
   int64, what the helper was).
4. **Class-specific boxes.** mmdeploy's rewrite of ``BBoxHead.predict_by_feat`` keeps,
   for each RoI, only the box regressed for its highest-scoring class and runs the
   multi-class NMS on that one box for every class; mmdet scores each class with its own
   box (``reg_class_agnostic=False``, as in Mask R-CNN). Measured on the demo's Mask
   R-CNN: boxes up to 98 pixels away from PyTorch's for the same image. The patch
   registers, for onnxruntime, a rewrite that keeps one box per (RoI, class): boxes
   ``(B, N * C, 4)`` whose class-``c`` score is non-zero only on their own class, so the
   ONNX ``NonMaxSuppression`` of class ``c`` sees exactly mmdet's class-``c`` boxes.
   mmdeploy's RPN also pads its proposals with all-zero boxes, which mmdet's RPN never
   returns (it keeps boxes with ``w > 0`` and ``h > 0``); one of them came out as a
   detection (score 0.198 on the demo image). The same rewrite gives such RoIs no score.
5. **RPN proposals.** mmdeploy's rewrite of ``RPNHead.predict_by_feat`` runs one NMS over
   the proposals of all levels together and drops proposals scoring under 0.05 (the
   deploy config's detection score threshold); mmdet's RPN runs the NMS per level
   (``batched_nms`` with the level as the class) and has no score threshold. On the demo
   Mask R-CNN this moved bbox mAP by 0.4 (11.6 against PyTorch's 11.2). The patch keeps
   mmdeploy's per-level top-k and box decoding and does the NMS as mmdet does: one class
   per level, no score threshold, ``min_bbox_size`` applied.
6. **Checkpoint loading.** mmdeploy loads checkpoints through mmengine's ``torch.load``
   (no ``weights_only``); mmscope's allowlisted loader (``mmscope.utils.patch_mmengine``),
   active once mmscope is imported, serves it.

mmdeploy's metadata asks for ``protobuf<=3.20.2``; onnx 1.23 needs a newer protobuf. The
set-up installs mmdeploy with ``--no-deps`` plus the modules it imports; nothing used here
imports protobuf's old API (checked by ``tests/test_deploy/test_deploy.py``).
"""
import contextlib
import functools
import math
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import torch

__all__ = [
    'mmdeploy_available', 'mmdeploy_patches', 'export_detector', 'DEPLOY_CONFIGS',
    'sdpa_like_pytorch', 'per_class_boxes'
]

#: deploy config per detector kind: a shipped config (``mmscope::deploy/...``).
DEPLOY_CONFIGS = {
    'detection': 'mmscope::deploy/detection_onnxruntime_dynamic.py',
    'instance-seg': 'mmscope::deploy/instance-seg_onnxruntime_dynamic.py',
}


def mmdeploy_available() -> bool:
    """Whether mmdeploy 1.3.x imports here."""
    try:
        import mmdeploy  # noqa: F401
        from mmdeploy.apis import torch2onnx  # noqa: F401
    except Exception:  # ImportError, or a broken dependency of mmdeploy
        return False
    return True


def sdpa_like_pytorch(query,
                      key,
                      value,
                      attn_mask=None,
                      dropout_p=0.,
                      is_causal=False,
                      scale=None,
                      **kwargs):
    """``F.scaled_dot_product_attention`` in exportable ops, with PyTorch's meaning of
    every argument (the replacement of mmdeploy's default rewrite)."""
    if scale is None:
        scale = 1. / math.sqrt(query.shape[-1])
    logits = (query * scale) @ key.transpose(-2, -1)
    if is_causal:
        n, m = query.shape[-2], key.shape[-2]
        causal = torch.ones(n, m, dtype=torch.bool, device=query.device).tril()
        attn_mask = causal if attn_mask is None else attn_mask & causal
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, float('-inf'))
        else:
            logits = logits + attn_mask
    weights = logits.softmax(dim=-1)
    if dropout_p > 0:
        weights = torch.dropout(weights, dropout_p, True)
    return weights @ value


def per_class_boxes(bboxes: torch.Tensor, scores: torch.Tensor):
    """``bboxes (B, N, C * 4)`` (one box per RoI and class) and ``scores (B, N, C)`` ->
    ``(B, N * C, 4)`` boxes and ``(B, N * C, C)`` scores in which box ``n * C + c`` scores
    ``scores[:, n, c]`` for class ``c`` and 0 for every other class: a class-agnostic
    multi-class NMS over them is mmdet's per-class NMS of class-specific boxes."""
    b, n, c = scores.shape
    boxes = bboxes.reshape(b, n * c, 4)
    eye = torch.eye(c, dtype=scores.dtype, device=scores.device)
    return boxes, (scores.unsqueeze(-1) * eye).reshape(b, n * c, c)


_registered = False


def _register_rewrites() -> None:
    """Register, for the onnxruntime backend, :func:`sdpa_like_pytorch` (fix 2), the
    class-specific box selection (fix 4) and mmdet's RPN NMS (fix 5); they take
    precedence over mmdeploy's default rewrites, which stay for other backends."""
    global _registered
    if _registered:
        return
    import torch.nn.functional as F
    from mmdeploy.codebase.mmdet.deploy import get_post_processing_params
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.mmcv.ops import multiclass_nms
    from mmdet.structures.bbox import get_box_tensor

    @FUNCTION_REWRITER.register_rewriter(
        func_name='torch.nn.functional.scaled_dot_product_attention', backend='onnxruntime')
    def scaled_dot_product_attention__onnxruntime(query,
                                                  key,
                                                  value,
                                                  attn_mask=None,
                                                  dropout_p=0.,
                                                  is_causal=False,
                                                  scale=None):
        return sdpa_like_pytorch(query, key, value, attn_mask, dropout_p, is_causal, scale)

    @FUNCTION_REWRITER.register_rewriter(
        func_name='mmdet.models.roi_heads.bbox_heads.bbox_head.BBoxHead.predict_by_feat',
        backend='onnxruntime')
    def bbox_head__predict_by_feat__onnxruntime(self,
                                                rois,
                                                cls_scores,
                                                bbox_preds,
                                                batch_img_metas,
                                                rcnn_test_cfg=None,
                                                rescale=False):
        if bbox_preds is None:
            raise NotImplementedError('mmscope exports box heads with box regression')
        ctx = FUNCTION_REWRITER.get_context()
        if self.custom_cls_channels:
            scores = self.loss_cls.get_activation(cls_scores)[..., :self.num_classes]
        else:
            scores = F.softmax(cls_scores, dim=-1)[..., :self.num_classes]
        # mmdeploy's RPN pads its proposals with all-zero boxes; mmdet's RPN drops boxes
        # without area (min_bbox_size=0 keeps w > 0 and h > 0): they score nothing here
        wh = rois[..., 3:5] - rois[..., 1:3]
        scores = scores * ((wh[..., 0] > 0) & (wh[..., 1] > 0)).unsqueeze(-1).to(scores.dtype)
        bboxes = get_box_tensor(
            self.bbox_coder.decode(
                rois[..., 1:], bbox_preds, max_shape=batch_img_metas[0]['img_shape']))
        if not self.reg_class_agnostic:
            bboxes, scores = per_class_boxes(bboxes, scores)
        post = get_post_processing_params(ctx.cfg)
        return multiclass_nms(
            bboxes,
            scores,
            post.max_output_boxes_per_class,
            nms_type=rcnn_test_cfg.nms.get('type'),
            iou_threshold=rcnn_test_cfg.nms.get('iou_threshold', post.iou_threshold),
            score_threshold=rcnn_test_cfg.get('score_thr', post.score_threshold),
            pre_top_k=post.pre_top_k,
            keep_top_k=rcnn_test_cfg.get('max_per_img', post.keep_top_k))

    @FUNCTION_REWRITER.register_rewriter(
        func_name='mmdet.models.dense_heads.rpn_head.RPNHead.predict_by_feat',
        backend='onnxruntime')
    def rpn_head__predict_by_feat__onnxruntime(self,
                                               cls_scores,
                                               bbox_preds,
                                               score_factors=None,
                                               batch_img_metas=None,
                                               cfg=None,
                                               rescale=False,
                                               with_nms=True,
                                               **kwargs):
        if not (with_nms and self.use_sigmoid_cls):
            raise NotImplementedError('mmscope exports RPNs with sigmoid scores and NMS')
        cfg = self.test_cfg if cfg is None else cfg
        pre = cfg.get('nms_pre', -1)
        batch = cls_scores[0].shape[0]
        sizes = [c.shape[-2:] for c in cls_scores]
        anchors = self.prior_generator.grid_priors(
            sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
        all_boxes, all_scores, all_levels = [], [], []
        for level, (cls, reg, anchor) in enumerate(zip(cls_scores, bbox_preds, anchors)):
            score = cls.permute(0, 2, 3, 1).reshape(batch, -1).sigmoid()
            delta = reg.permute(0, 2, 3, 1).reshape(batch, -1, self.bbox_coder.encode_size)
            anchor = anchor.unsqueeze(0).expand(batch, -1, -1)
            if pre > 0:  # mmdet's nms_pre per level (mmdeploy clamps k to the level size)
                score, index = score.topk(pre, dim=1)
                delta = delta.gather(1, index.unsqueeze(-1).expand(-1, -1, delta.shape[-1]))
                anchor = anchor.gather(1, index.unsqueeze(-1).expand(-1, -1, anchor.shape[-1]))
            all_boxes.append(
                self.bbox_coder.decode(anchor, delta, max_shape=batch_img_metas[0]['img_shape']))
            all_scores.append(score)
            all_levels.append(torch.zeros_like(score, dtype=torch.long) + level)
        boxes = get_box_tensor(torch.cat(all_boxes, dim=1))
        score, level = torch.cat(all_scores, dim=1), torch.cat(all_levels, dim=1)
        wh = boxes[..., 2:4] - boxes[..., 0:2]
        score = score * (wh > cfg.get('min_bbox_size', -1)).all(-1).to(score.dtype)
        # one NMS class per level (mmdet: batched_nms with the level ids), no threshold
        per_level = score.unsqueeze(-1) * F.one_hot(level, len(cls_scores)).to(score.dtype)
        keep = cfg.get('max_per_img', 1000)
        return multiclass_nms(
            boxes,
            per_level,
            keep,
            nms_type=cfg.nms.get('type'),
            iou_threshold=cfg.nms.get('iou_threshold', 0.7),
            score_threshold=0.,
            pre_top_k=-1,
            keep_top_k=keep)

    _registered = True


@contextlib.contextmanager
def mmdeploy_patches():
    """Inside: ``torch.onnx.export`` defaults to ``dynamo=False`` (fix 1), the SDPA
    rewrite for onnxruntime computes PyTorch's function (fix 2) and the removed helpers
    are back (fix 3). Restored on exit."""
    import mmscope  # noqa: F401  (registers the backbones, patches mmengine's loading)
    _register_rewrites()
    original = torch.onnx.export

    @functools.wraps(original)
    def export(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return original(*args, **kwargs)

    torch.onnx.export = export
    added = _add_removed_helpers()
    try:
        yield
    finally:
        torch.onnx.export = original
        for module, name in added:
            delattr(module, name)


def _cast_long(g, input, non_blocking=False):
    """``torch.onnx.symbolic_opset9._cast_Long`` of older torch: ``Cast`` to int64."""
    return g.op('Cast', input, to_i=7)  # onnx.TensorProto.INT64


def _add_removed_helpers():
    """Put the torch ONNX helpers mmdeploy imports and torch 2.12 removed back (fix 3);
    returns what was added, to be removed again."""
    from torch.onnx import symbolic_opset9
    added = []
    if not hasattr(symbolic_opset9, '_cast_Long'):
        symbolic_opset9._cast_Long = _cast_long
        added.append((symbolic_opset9, '_cast_Long'))
    return added


def export_detector(model_cfg,
                    checkpoint: str,
                    image: str,
                    out_file: str,
                    deploy_cfg: Optional[str] = None,
                    work_dir: Optional[str] = None,
                    overwrite: bool = False) -> Dict:
    """Export an mmdet detector (config path or Config) with mmdeploy's ``torch2onnx``
    and the onnxruntime deploy config of its kind (:data:`DEPLOY_CONFIGS`: masks for a
    detector with a mask head). Returns ``dict(path, deploy_cfg)``.

    Writes ``out_file`` (and mmdeploy's sidecar files into ``work_dir``, default: next
    to it); refuses an existing ``out_file`` unless ``overwrite``."""
    from mmengine.config import Config
    if not mmdeploy_available():
        raise ModuleNotFoundError(
            'mmdeploy is not installed (or does not import): make setup installs it '
            '(tools/setup_env.sh, step 6: pip install --no-deps mmdeploy==1.3.1 plus '
            'requirements/deploy.txt)',
            name='mmdeploy')
    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(f'{out_file} exists; pass --overwrite to replace it')
    cfg = model_cfg if isinstance(model_cfg, Config) else Config.fromfile(model_cfg)
    if deploy_cfg is None:
        kind = 'instance-seg' if cfg.model.get('roi_head', {}).get('mask_head') else 'detection'
        from mmscope.utils.configs import get_config_path
        deploy_cfg = get_config_path(DEPLOY_CONFIGS[kind])
    work_dir = work_dir or osp.dirname(osp.abspath(out_file))
    os.makedirs(work_dir, exist_ok=True)
    from mmdeploy.apis import torch2onnx
    with mmdeploy_patches():
        torch2onnx(
            image, work_dir, osp.basename(out_file), deploy_cfg, cfg, checkpoint, device='cpu')
    produced = osp.join(work_dir, osp.basename(out_file))
    if osp.abspath(produced) != osp.abspath(out_file):
        os.replace(produced, out_file)
    return dict(path=out_file, deploy_cfg=deploy_cfg)


def detector_outputs(onnx_file: str,
                     x: torch.Tensor,
                     threads: Optional[int] = None) -> Sequence[torch.Tensor]:
    """Run an exported detector on a preprocessed batch with onnxruntime."""
    from .onnx import OnnxModel
    return OnnxModel(onnx_file, threads)(x)
