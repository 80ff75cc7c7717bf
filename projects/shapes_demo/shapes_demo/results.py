"""What the demo (:mod:`shapes_demo.run`) shows of its results, besides the metrics
that ``tools/test.py`` reports: per-class tables, ground truth next to the predictions,
and the training curves.

* :func:`dump_path`: where ``tools/test.py --out`` writes a task's predictions (a
  ``.pkl`` file, or mmseg's folder of label maps: the library row's ``dump``);
* :func:`per_class_results`: per-class numbers computed from those predictions and the
  annotation files (:func:`coco_per_class`: COCO bbox / mask AP per category;
  :func:`seg_per_class`: IoU and accuracy per class), checked against the means
  ``tools/test.py`` reported (:func:`check_class_means`);
* :func:`draw_gt_vs_pred`: for a fixed set of validation images (:func:`fixed_set`, in
  the order of their numbers), the ground truth and the prediction of each image side by side, drawn
  here in one style for every library (:func:`compose_pairs`);
* :func:`read_val_scalars` and :func:`plot_curves`: the training losses and, for tasks
  that validated during training, the validation metrics.

What differs between libraries is a row of :data:`RESULT_KINDS` (keyed by the library's
scope), so a task works from its library, whatever its key.
"""
import contextlib
import glob
import io
import json
import os.path as osp
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    'ResultKind', 'RESULT_KINDS', 'PALETTE', 'dump_path', 'load_predictions', 'coco_predictions',
    'coco_per_class', 'seg_per_class', 'class_means', 'check_class_means', 'per_class_results',
    'per_class_lines', 'fixed_set', 'draw_instances', 'draw_label_map', 'draw_keypoints',
    'compose_pairs', 'cls_pairs', 'det_pairs', 'seg_pairs', 'pose_pairs', 'draw_gt_vs_pred',
    'read_val_scalars', 'plot_curves'
]

#: Colours of classes (detection, segmentation) and keypoints, by index.
PALETTE = ((220, 20, 60), (0, 130, 230), (0, 170, 80), (250, 170, 30), (160, 60, 200),
           (0, 200, 200), (255, 110, 180), (120, 120, 0), (90, 60, 30), (140, 140, 255))

#: Records of ``scalars.json`` that are bookkeeping, not metrics.
_NOT_METRICS = ('step', 'epoch', 'iter', 'time', 'data_time', 'memory', 'eta')


# ----------------------------------------------------------------------------- reading
def _np(x):
    """A tensor (any device) or array-like as a numpy array."""
    import numpy as np
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _quiet():
    """A context that swallows what the COCO tools print."""
    return contextlib.redirect_stdout(io.StringIO())


def _read_meta(data_root: str) -> dict:
    """The data set's ``meta.json`` (empty if there is none)."""
    path = osp.join(data_root, 'meta.json')
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def dump_path(library, test_dir: str) -> str:
    """What ``tools/test.py --out`` gets for a task of ``library`` (a
    :class:`~mmscope.apis.libraries.Library`) tested in ``test_dir``:
    ``test_dir/predictions.pkl``, or the folder ``test_dir/predictions`` for a library
    whose evaluator writes label maps (``dump[0] == 'dir'``)."""
    kind = library.dump[0]
    return osp.join(test_dir, 'predictions' if kind == 'dir' else 'predictions.pkl')


def load_predictions(path: str) -> list:
    """The data samples (dicts) that ``tools/test.py --out FILE.pkl`` dumped."""
    with open(path, 'rb') as f:
        return pickle.load(f)


# ----------------------------------------------------------------------------- per class
def coco_predictions(predictions: Sequence[dict],
                     cat_ids: Sequence[int],
                     score_thr: float = 0.) -> Tuple[list, list]:
    """``(bbox results, segm results)`` in the COCO results format, from mmdet's dumped
    data samples (``img_id`` and ``pred_instances``: ``bboxes`` as x1y1x2y2, ``scores``,
    ``labels``, RLE ``masks``), as mmdet's ``CocoMetric`` converts them: label ``i`` is
    the category ``cat_ids[i]``, masks are scored with ``mask_scores`` when the model gives
    them. Detections scoring under ``score_thr`` are left out."""
    bbox, segm = [], []
    for sample in predictions:
        pred = sample['pred_instances']
        boxes, scores = _np(pred['bboxes']).reshape(-1, 4), _np(pred['scores']).ravel()
        labels = _np(pred['labels']).ravel()
        mask_scores = _np(pred['mask_scores']).ravel() if 'mask_scores' in pred else scores
        masks = pred.get('masks', None)
        for i, (box, score, label) in enumerate(zip(boxes, scores, labels)):
            if score < score_thr:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            common = dict(image_id=int(sample['img_id']), category_id=cat_ids[int(label)])
            bbox.append(dict(common, bbox=[x1, y1, x2 - x1, y2 - y1], score=float(score)))
            if masks is not None:
                rle = dict(masks[i])
                if isinstance(rle['counts'], bytes):
                    rle['counts'] = rle['counts'].decode()
                segm.append(dict(common, segmentation=rle, score=float(mask_scores[i])))
    return bbox, segm


def coco_per_class(ann_file: str,
                   predictions: Sequence[dict],
                   classes: Optional[Sequence[str]] = None) -> 'OrderedDict[str, dict]':
    """Per-category COCO AP@[.5:.95] (percent) of mmdet's dumped predictions against the
    COCO annotations ``ann_file``: ``{class: {'bbox_AP': .., 'segm_AP': ..}}`` (``segm``
    when the predictions have masks), None for a category without ground truth.

    Evaluated as mmdet's ``CocoMetric`` does (pycocotools' ``COCOeval`` on every image
    of ``ann_file``, maxDets 100/300/1000, the box left out of the mask results), so the
    mean over the categories with ground truth is its ``coco/bbox_mAP`` /
    ``coco/segm_mAP`` (COCO's mAP is that mean). The predicted label ``i`` is the
    category named ``classes[i]`` (mmdet's mapping; default: the file's categories in
    order).
    """
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with _quiet():
        gt = COCO(ann_file)
    cat_ids = gt.getCatIds(catNms=list(classes)) if classes else gt.getCatIds()
    names = {c['id']: c['name'] for c in gt.loadCats(cat_ids)}
    bbox, segm = coco_predictions(predictions, cat_ids)
    has_masks = any('masks' in s['pred_instances'] for s in predictions)
    table = OrderedDict((names[c], OrderedDict()) for c in cat_ids)
    for iou_type, results in (('bbox', bbox), ('segm', segm if has_masks else None)):
        if results is None:
            continue
        key = f'{iou_type}_AP'
        with_gt = {c for c in cat_ids if gt.getAnnIds(catIds=[c])}
        if not results:  # pycocotools cannot load no results: 0 AP where there is GT
            for c in cat_ids:
                table[names[c]][key] = 0.0 if c in with_gt else None
            continue
        with _quiet():
            evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
            evaluator.params.catIds = list(cat_ids)
            evaluator.params.imgIds = gt.getImgIds()
            evaluator.params.maxDets = [100, 300, 1000]
            evaluator.evaluate()
            evaluator.accumulate()
        # precision: [iou thr, recall thr, category, area range, max dets]; the
        # categories in the (sorted) order of params.catIds; area 'all', the last maxDets
        precision = evaluator.eval['precision']
        order = list(evaluator.params.catIds)
        for c in cat_ids:
            p = precision[:, :, order.index(c), 0, -1]
            p = p[p > -1]
            table[names[c]][key] = 100.0 * float(np.mean(p)) if p.size else None
    return table


def seg_per_class(ann_dir: str,
                  pred_dir: str,
                  classes: Sequence[str],
                  reduce_zero_label: bool = True) -> 'OrderedDict[str, dict]':
    """Per-class IoU and accuracy (percent) of the label maps ``pred_dir/<name>.png``
    (what ``tools/test.py --out DIR`` writes for mmseg) against the annotations
    ``ann_dir/<name>.png``: ``{class: {'IoU': .., 'Acc': ..}}``, as mmseg's ``IoUMetric``
    computes them over all pixels of all images (None where the class is in neither the
    annotations nor the predictions (IoU) or not in the annotations (Acc)); their means
    are its ``mIoU`` and ``mAcc``.

    ``reduce_zero_label``: annotation value 0 is ignored and value ``v`` is class
    ``v - 1``; mmseg then writes the predicted class ``k`` as ``k + 1`` as well.
    """
    import numpy as np
    from PIL import Image
    n = len(classes)
    offset = 1 if reduce_zero_label else 0
    inter, pred_area, gt_area = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    anns = sorted(glob.glob(osp.join(ann_dir, '*.png')))
    if not anns:
        raise FileNotFoundError(f'no annotations (*.png) in {ann_dir}')
    for ann in anns:
        pred_file = osp.join(pred_dir, osp.basename(ann))
        if not osp.isfile(pred_file):
            raise FileNotFoundError(f'no prediction {pred_file} for {ann}')
        gt = np.array(Image.open(ann)).astype(np.int64) - offset
        pred = np.array(Image.open(pred_file)).astype(np.int64) - offset
        if gt.shape != pred.shape:
            raise ValueError(f'{pred_file}: shape {pred.shape} is not that of {ann} '
                             f'{gt.shape}')
        keep = (gt >= 0) & (gt < n)  # reduce_zero_label: 0 -> -1; 255 stays ignored
        gt, pred = gt[keep], pred[keep]
        inter += np.bincount(gt[gt == pred], minlength=n)[:n]
        pred_area += np.bincount(pred[(pred >= 0) & (pred < n)], minlength=n)[:n]
        gt_area += np.bincount(gt, minlength=n)[:n]
    union = pred_area + gt_area - inter
    table = OrderedDict()
    for k, name in enumerate(classes):
        table[name] = OrderedDict(
            IoU=100.0 * float(inter[k]) / float(union[k]) if union[k] else None,
            Acc=100.0 * float(inter[k]) / float(gt_area[k]) if gt_area[k] else None)
    return table


def class_means(per_class: Mapping[str, Mapping[str, Optional[float]]]) -> Dict[str, float]:
    """metric -> mean over the classes that have a value (None: no class has one)."""
    values = OrderedDict()
    for row in per_class.values():
        for metric, v in row.items():
            values.setdefault(metric, [])
            if v is not None:
                values[metric].append(v)
    return OrderedDict((m, sum(v) / len(v) if v else None) for m, v in values.items())


def check_class_means(per_class: Mapping[str, Mapping[str, Optional[float]]],
                      reported: Mapping[str, float],
                      pairs: Mapping[str, Tuple[str, float, float]]) -> List[str]:
    """Messages for every per-class metric whose mean over the classes is not the metric
    ``tools/test.py`` reported: ``pairs`` maps a per-class metric to ``(reported metric,
    scale to percent, tolerance in percent points)`` (the libraries round what they
    report). Reported metrics that are missing are not checked."""
    means, problems = class_means(per_class), []
    for metric, (name, scale, tol) in pairs.items():
        if metric not in means or name not in reported:
            continue
        want, got = reported[name] * scale, means[metric]
        if got is None or abs(got - want) > tol:
            shown = 'none' if got is None else f'{got:.3f}'
            problems.append(f'the per-class {metric} average {shown}, but {name} is '
                            f'{want:.3f} (tolerance {tol:g})')
    return problems


def per_class_lines(per_class: Mapping[str, Mapping[str, Optional[float]]]) -> List[str]:
    """The per-class table (percent) as text lines: a header, a line per class, and the
    mean over the classes that have a value (``-``: none)."""
    metrics = list(OrderedDict((m, None) for row in per_class.values() for m in row))
    rows = [['class'] + metrics]
    fmt = lambda v: '-' if v is None else f'{v:.1f}'  # noqa: E731
    for name, row in per_class.items():
        rows.append([name] + [fmt(row.get(m)) for m in metrics])
    means = class_means(per_class)
    rows.append(['mean'] + [fmt(means.get(m)) for m in metrics])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        '  '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]


# ----------------------------------------------------------------------------- pictures
def fixed_set(paths: Sequence[str], n: int) -> List[str]:
    """``n`` of ``paths``, the same ones on every run: in the natural order of the last
    number in their file names (then name, then path), ``n`` of them spread evenly from
    the first to the last."""

    def key(p):
        nums = re.findall(r'\d+', osp.basename(p))
        return (int(nums[-1]) if nums else -1, osp.basename(p), p)

    paths = sorted(set(paths), key=key)
    if len(paths) <= n:
        return paths
    if n <= 1:
        return paths[:n]
    return [paths[round(i * (len(paths) - 1) / (n - 1))] for i in range(n)]


def _font(size: int = 13):
    """PIL's default font at ``size`` pixels (the bitmap one where FreeType is missing)."""
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _upscale(image, min_width: int):
    """``image`` (PIL) enlarged by the smallest integer factor (nearest) that makes it at
    least ``min_width`` wide, and that factor."""
    from PIL import Image
    f = max(1, -(-min_width // image.width))
    if f == 1:
        return image.convert('RGB'), 1
    return image.convert('RGB').resize((image.width * f, image.height * f), Image.NEAREST), f


def _blend(array, mask, color, alpha: float = 0.5) -> None:
    """Paint ``color`` over the pixels of ``mask`` (bool) of ``array`` (HxWx3, in place)."""
    import numpy as np
    array[mask] = (array[mask] * (1 - alpha) + np.array(color) * alpha).round().astype(array.dtype)


def draw_instances(image, factor: int, masks: Sequence, boxes: Sequence, texts: Sequence[str],
                   colors: Sequence) -> 'object':
    """``image`` (PIL, already enlarged by the integer ``factor``) with instances drawn:
    each mask (bool, at the original size) blended in its colour, its box (x1, y1, x2, y2
    at the original scale) outlined and its text written at the box's top-left corner.
    Returns a new PIL image."""
    import numpy as np
    from PIL import Image, ImageDraw
    array = np.array(image.convert('RGB'))
    for mask, color in zip(masks, colors):
        if mask is not None:
            big = np.kron(np.asarray(mask, bool), np.ones((factor, factor), bool))
            _blend(array, big[:array.shape[0], :array.shape[1]], color)
    out = Image.fromarray(array)
    draw, font = ImageDraw.Draw(out), _font()
    for box, text, color in zip(boxes, texts, colors):
        x1, y1, x2, y2 = (float(v) * factor for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=tuple(color), width=2)
        if text:
            draw.text((x1 + 3, y1 + 1),
                      text,
                      fill=(255, 255, 255),
                      font=font,
                      stroke_width=2,
                      stroke_fill=tuple(color))
    return out


def draw_label_map(image,
                   factor: int,
                   label_map,
                   classes: Sequence[str],
                   colors: Sequence = PALETTE,
                   alpha: float = 0.85) -> 'object':
    """``image`` (PIL, enlarged by ``factor``) with the class map ``label_map`` (class
    indices at the original size; others, e.g. ignored pixels, are not drawn) blended in
    the class colours (weight ``alpha``); a class named ``background`` is left as it
    is."""
    import numpy as np
    from PIL import Image
    array = np.array(image.convert('RGB'))
    big = np.kron(np.asarray(label_map), np.ones((factor, factor), np.int64))
    for k, name in enumerate(classes):
        if name != 'background':
            _blend(array, big == k, colors[k % len(colors)], alpha)
    return Image.fromarray(array)


def draw_keypoints(image,
                   factor: int,
                   instances: Sequence[dict],
                   skeleton: Sequence[Sequence[int]] = (),
                   colors: Sequence = PALETTE) -> 'object':
    """``image`` (PIL, enlarged by ``factor``) with each instance (``keypoints``: K x 2 at
    the original scale, optional ``bbox`` x1y1x2y2) drawn: its box in grey, the
    ``skeleton`` links (0-based keypoint pairs) in white, keypoint ``k`` as a dot of
    ``colors[k]``."""
    from PIL import ImageDraw
    out = image.convert('RGB').copy()
    draw = ImageDraw.Draw(out)
    r = max(2, factor + 1)
    for inst in instances:
        pts = [(float(x) * factor, float(y) * factor) for x, y in _np(inst['keypoints'])]
        if inst.get('bbox') is not None:
            draw.rectangle([float(v) * factor for v in inst['bbox']],
                           outline=(160, 160, 160),
                           width=1)
        for a, b in skeleton:
            draw.line([pts[a], pts[b]], fill=(255, 255, 255), width=max(1, factor // 2))
        for k, (x, y) in enumerate(pts):
            draw.ellipse([x - r, y - r, x + r, y + r],
                         fill=tuple(colors[k % len(colors)]),
                         outline=(0, 0, 0))
    return out


def _captioned(image, text: str, color) -> 'object':
    """``image`` (PIL) with a band under it holding ``text`` in ``color``."""
    from PIL import Image, ImageDraw
    band = 20
    out = Image.new('RGB', (image.width, image.height + band), 'white')
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((4, image.height + 3), text, fill=tuple(color), font=_font())
    return out


def compose_pairs(pairs: Sequence[Tuple[str, object, object]],
                  out_file: str,
                  cols: int = 2,
                  legend: Sequence[Tuple[str, Sequence[int]]] = ()) -> Optional[str]:
    """One picture of ``pairs`` (``(name, ground-truth image, predicted image)``, PIL):
    each pair side by side under the headers ``<name>: ground truth`` and
    ``prediction``, ``cols`` pairs a row, and a ``legend`` row (``(text, colour)``) under
    them. Returns ``out_file``, or None (nothing written) for no pairs."""
    from PIL import Image, ImageDraw
    if not pairs:
        return None
    head, gap, pad = 18, 4, 8
    w = max(g.width for _, g, _ in pairs)
    h = max(max(g.height, p.height) for _, g, p in pairs)
    cell_w, cell_h = 2 * w + gap + pad, head + h + pad
    cols = max(1, min(cols, len(pairs)))
    rows = -(-len(pairs) // cols)
    legend_h = 22 if legend else 0
    canvas = Image.new('RGB', (cols * cell_w, rows * cell_h + legend_h), 'white')
    draw, font = ImageDraw.Draw(canvas), _font()
    for i, (name, gt, pred) in enumerate(pairs):
        x, y = (i % cols) * cell_w + pad // 2, (i // cols) * cell_h + pad // 2
        draw.text((x, y + 2), f'{name}: ground truth', fill=(0, 0, 0), font=font)
        draw.text((x + w + gap, y + 2), 'prediction', fill=(0, 0, 0), font=font)
        canvas.paste(gt, (x, y + head))
        canvas.paste(pred, (x + w + gap, y + head))
    x, y = 6, rows * cell_h + 4
    for text, color in legend:
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=tuple(color))
        draw.text((x + 16, y + 1), text, fill=(0, 0, 0), font=font)
        x += 16 + int(draw.textlength(text, font=font)) + 14
    canvas.save(out_file)
    return out_file


def cls_pairs(predictions: Sequence[dict],
              classes: Sequence[str],
              n: int,
              min_width: int = 256) -> List[Tuple[str, object, object]]:
    """Pairs (:func:`compose_pairs`) of ``n`` classified images (:func:`fixed_set` of
    the dumped samples' ``img_path``): the image with its ground-truth class, and with
    the predicted class and score, green when right, red when wrong."""
    from PIL import Image
    by_path = {s['img_path']: s for s in predictions}
    pairs = []
    for path in fixed_set(list(by_path), n):
        s = by_path[path]
        gt = int(_np(s['gt_label']).ravel()[0])
        pred = int(_np(s['pred_label']).ravel()[0])
        score = float(_np(s['pred_score']).ravel()[pred]) if 'pred_score' in s else None
        image, _ = _upscale(Image.open(path), min_width)
        right = (0, 140, 0) if pred == gt else (200, 0, 0)
        text = classes[pred] + (f' {score:.2f}' if score is not None else '')
        pairs.append((osp.basename(path), _captioned(image, classes[gt],
                                                     (0, 0, 0)), _captioned(image, text, right)))
    return pairs


def det_pairs(ann_file: str,
              img_dir: str,
              predictions: Sequence[dict],
              n: int,
              classes: Optional[Sequence[str]] = None,
              score_thr: float = 0.3,
              min_width: int = 256) -> List[Tuple[str, object, object]]:
    """Pairs of ``n`` images of the COCO file ``ann_file`` (:func:`fixed_set` of their
    file names, read from ``img_dir``): the annotated objects (mask, box, class), and
    mmdet's dumped predictions scoring ``score_thr`` or more (with their scores). Colours
    by category, in the order of ``classes`` (default: the file's categories)."""
    from PIL import Image
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    with _quiet():
        gt = COCO(ann_file)
    cat_ids = gt.getCatIds(catNms=list(classes)) if classes else gt.getCatIds()
    names = [gt.loadCats(c)[0]['name'] for c in cat_ids]
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(cat_ids)}
    by_id = {int(s['img_id']): s for s in predictions}
    images = {osp.join(img_dir, info['file_name']): info for info in gt.loadImgs(gt.getImgIds())}
    pairs = []
    for path in fixed_set(list(images), n):
        info = images[path]
        image, f = _upscale(Image.open(path), min_width)
        anns = [
            a for a in gt.loadAnns(gt.getAnnIds(imgIds=[info['id']])) if a['category_id'] in colour
        ]
        gt_img = draw_instances(
            image, f, [gt.annToMask(a).astype(bool) for a in anns],
            [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
             for a in anns], [names[cat_ids.index(a['category_id'])]
                              for a in anns], [colour[a['category_id']] for a in anns])
        masks, boxes, texts, colors = [], [], [], []
        sample = by_id.get(int(info['id']))
        if sample is not None:
            pred = sample['pred_instances']
            scores = _np(pred['scores']).ravel()
            labels = _np(pred['labels']).ravel()
            bboxes = _np(pred['bboxes']).reshape(-1, 4)
            for i in range(len(scores)):
                if scores[i] < score_thr:
                    continue
                c = cat_ids[int(labels[i])]
                rle = pred['masks'][i] if 'masks' in pred else None
                masks.append(None if rle is None else mask_utils.decode(rle).astype(bool))
                boxes.append(bboxes[i])
                texts.append(f'{names[int(labels[i])]} {scores[i]:.2f}')
                colors.append(colour[c])
        pairs.append(
            (osp.basename(path), gt_img, draw_instances(image, f, masks, boxes, texts, colors)))
    return pairs


def seg_pairs(img_dir: str,
              ann_dir: str,
              pred_dir: str,
              classes: Sequence[str],
              n: int,
              reduce_zero_label: bool = True,
              img_suffix: str = '.jpg',
              min_width: int = 256) -> List[Tuple[str, object, object]]:
    """Pairs of ``n`` images (:func:`fixed_set` of the annotations ``ann_dir/*.png``):
    the image (``img_dir/<stem><img_suffix>``) with its annotated classes, and with the
    predicted label map of ``pred_dir`` (mmseg's ``--out``), both as
    :func:`draw_label_map` draws them (``reduce_zero_label``: see
    :func:`seg_per_class`)."""
    import numpy as np
    from PIL import Image
    offset = 1 if reduce_zero_label else 0
    pairs = []
    for ann in fixed_set(glob.glob(osp.join(ann_dir, '*.png')), n):
        stem = osp.splitext(osp.basename(ann))[0]
        image, f = _upscale(Image.open(osp.join(img_dir, stem + img_suffix)), min_width)
        gt = np.array(Image.open(ann)).astype(np.int64) - offset
        pred = np.array(Image.open(osp.join(pred_dir, stem + '.png'))).astype(np.int64) - offset
        pairs.append(
            (stem + img_suffix, draw_label_map(image, f, gt,
                                               classes), draw_label_map(image, f, pred, classes)))
    return pairs


def pose_pairs(ann_file: str,
               img_dir: str,
               predictions: Sequence[dict],
               n: int,
               min_width: int = 256) -> List[Tuple[str, object, object]]:
    """Pairs of ``n`` images of the COCO keypoints file ``ann_file`` (:func:`fixed_set`
    of the images that mmpose's dumped predictions cover, one sample per object): the
    annotated keypoints of every object, and the predicted ones (top-down: in the same
    boxes), with the file's skeleton."""
    from PIL import Image
    from pycocotools.coco import COCO
    with _quiet():
        gt = COCO(ann_file)
    cat = gt.loadCats(gt.getCatIds())[0]
    skeleton = [(a - 1, b - 1) for a, b in cat.get('skeleton', [])]
    preds = {}
    for s in predictions:
        preds.setdefault(int(s['img_id']), []).append(s)
    images = {osp.join(img_dir, info['file_name']): info for info in gt.loadImgs(sorted(preds))}
    pairs = []
    for path in fixed_set(list(images), n):
        info = images[path]
        image, f = _upscale(Image.open(path), min_width)
        gt_inst = []
        for a in gt.loadAnns(gt.getAnnIds(imgIds=[info['id']])):
            x, y, w, h = a['bbox']
            kpts = [a['keypoints'][i:i + 2] for i in range(0, len(a['keypoints']), 3)]
            gt_inst.append(dict(keypoints=kpts, bbox=[x, y, x + w, y + h]))
        pred_inst = []
        for s in preds[int(info['id'])]:
            p = s['pred_instances']
            boxes = _np(p['bboxes']).reshape(-1, 4) if 'bboxes' in p else None
            for i, kpts in enumerate(_np(p['keypoints']).reshape(-1, len(cat['keypoints']), 2)):
                pred_inst.append(dict(keypoints=kpts, bbox=None if boxes is None else boxes[i]))
        pairs.append((osp.basename(path), draw_keypoints(image, f, gt_inst, skeleton),
                      draw_keypoints(image, f, pred_inst, skeleton)))
    return pairs


# ----------------------------------------------------------------------------- libraries
def _cls_results(data_root: str, dump: str, n: int):
    """:func:`cls_pairs` of the dump (classes: the data set's ``meta.json``)."""
    return cls_pairs(load_predictions(dump), _read_meta(data_root)['classes'], n), ()


def _det_results(data_root: str, dump: str, n: int):
    """:func:`det_pairs` on ``det/annotations/instances_val.json``, a legend of the
    categories."""
    from pycocotools.coco import COCO
    ann = osp.join(data_root, 'det', 'annotations', 'instances_val.json')
    classes = _read_meta(data_root).get('classes')
    pairs = det_pairs(ann, osp.join(data_root, 'det', 'val'), load_predictions(dump), n, classes)
    with _quiet():
        gt = COCO(ann)
    cat_ids = gt.getCatIds(catNms=list(classes)) if classes else gt.getCatIds()
    return pairs, [(gt.loadCats(c)[0]['name'], PALETTE[i % len(PALETTE)])
                   for i, c in enumerate(cat_ids)]


def _coco_cats(ann_file: str) -> list:
    """The categories of a COCO file, in its order."""
    with open(ann_file) as f:
        return json.load(f)['categories']


def _seg_classes(data_root: str) -> List[str]:
    """The segmentation classes of the data set (``meta.json``'s ``seg_classes``)."""
    return list(_read_meta(data_root)['seg_classes'])


def _seg_results(data_root: str, dump: str, n: int):
    """:func:`seg_pairs` on ``seg/`` (ADE20K layout, ``reduce_zero_label``), a legend of
    the classes."""
    classes = _seg_classes(data_root)
    pairs = seg_pairs(
        osp.join(data_root, 'seg', 'images', 'validation'),
        osp.join(data_root, 'seg', 'annotations', 'validation'), dump, classes, n)
    return pairs, [(c, PALETTE[k % len(PALETTE)]) for k, c in enumerate(classes)
                   if c != 'background']


def _pose_results(data_root: str, dump: str, n: int):
    """:func:`pose_pairs` on ``det/annotations/keypoints_val.json``, a legend of the
    keypoints."""
    ann = osp.join(data_root, 'det', 'annotations', 'keypoints_val.json')
    pairs = pose_pairs(ann, osp.join(data_root, 'det', 'val'), load_predictions(dump), n)
    kpts = _coco_cats(ann)[0]['keypoints']
    return pairs, [(k, PALETTE[i % len(PALETTE)]) for i, k in enumerate(kpts)]


def _det_per_class(data_root: str, dump: str):
    """:func:`coco_per_class` on ``det/annotations/instances_val.json``."""
    return coco_per_class(
        osp.join(data_root, 'det', 'annotations', 'instances_val.json'), load_predictions(dump),
        _read_meta(data_root).get('classes'))


def _seg_per_class(data_root: str, dump: str):
    """:func:`seg_per_class` on ``seg/annotations/validation``."""
    return seg_per_class(
        osp.join(data_root, 'seg', 'annotations', 'validation'), dump, _seg_classes(data_root))


@dataclass(frozen=True)
class ResultKind:
    """How the demo shows the test predictions of one library (on the demo data set's
    layout, under its data root).

    Args:
        pictures: ``(data_root, dump, n) -> (pairs, legend)``: ground truth and
            prediction of ``n`` fixed validation images (:func:`compose_pairs`).
        per_class: ``(data_root, dump) -> {class: {metric: percent}}``, or None.
        means: per-class metric -> ``(reported metric, scale to percent, tolerance)``:
            what the class means must equal (:func:`check_class_means`).
    """
    pictures: Callable
    per_class: Optional[Callable] = None
    means: Mapping[str, Tuple[str, float, float]] = field(default_factory=dict)


#: library scope -> :class:`ResultKind`. The tolerances are the rounding of what the
#: libraries report: mmdet's mAPs to 0.001 (0.05 points), mmseg's to 0.01 points.
RESULT_KINDS: Dict[str, ResultKind] = {
    'mmpretrain':
    ResultKind(pictures=_cls_results),
    'mmdet':
    ResultKind(
        pictures=_det_results,
        per_class=_det_per_class,
        means={
            'bbox_AP': ('coco/bbox_mAP', 100.0, 0.051),
            'segm_AP': ('coco/segm_mAP', 100.0, 0.051)
        }),
    'mmseg':
    ResultKind(
        pictures=_seg_results,
        per_class=_seg_per_class,
        means={
            'IoU': ('mIoU', 1.0, 0.006),
            'Acc': ('mAcc', 1.0, 0.006)
        }),
    'mmpose':
    ResultKind(pictures=_pose_results),
}


def per_class_results(scope: str, data_root: str, dump: str,
                      reported: Mapping[str, float]) -> Tuple[Optional[dict], List[str]]:
    """``(per-class table, problems)`` of a task of the library ``scope`` whose
    predictions ``tools/test.py`` dumped to ``dump`` (:func:`dump_path`): the table is
    None for a library without one; the problems are the class means that differ from
    the ``reported`` test metrics (:func:`check_class_means`)."""
    kind = RESULT_KINDS.get(scope)
    if kind is None or kind.per_class is None:
        return None, []
    table = kind.per_class(data_root, dump)
    return table, check_class_means(table, reported, kind.means)


def draw_gt_vs_pred(scope: str,
                    data_root: str,
                    dump: str,
                    out_file: str,
                    n: int,
                    cols: int = 2) -> Optional[str]:
    """The picture ``out_file`` of ground truth next to prediction for ``n`` fixed
    validation images of a task of the library ``scope`` (predictions dumped to
    ``dump``), ``cols`` pairs a row. Returns ``out_file``, or None when nothing was
    drawn (a library without a :data:`RESULT_KINDS` row, or no images)."""
    kind = RESULT_KINDS.get(scope)
    if kind is None:
        return None
    pairs, legend = kind.pictures(data_root, dump, n)
    return compose_pairs(pairs, out_file, cols=cols, legend=legend)


# ----------------------------------------------------------------------------- curves
def _is_val_record(rec: dict) -> bool:
    """A validation record of ``scalars.json``: a ``step`` and metrics, no loss and no
    learning rate."""
    return ('step' in rec and not any(k.startswith('loss') or k.endswith('lr') for k in rec)
            and any(k not in _NOT_METRICS and isinstance(v, (int, float)) for k, v in rec.items()))


def read_val_scalars(work_dir: str) -> List[dict]:
    """The validation records (metrics and a ``step``) that training runs in
    ``work_dir`` wrote to ``vis_data/scalars.json``, by step; a resumed run's records
    replace the ones it repeated."""
    records = {}
    for path in sorted(glob.glob(osp.join(work_dir, '2*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    if _is_val_record(rec):
                        records[rec['step']] = rec
    return [records[k] for k in sorted(records)]


def _val_unit(train: Sequence[dict], val: Sequence[dict]) -> str:
    """What the validation records' ``step`` counts: epochs after epoch-based training
    (its records carry ``epoch``; mmengine logs validation by epoch by default) unless
    the steps run past the last epoch, else iterations."""
    epochs = [r['epoch'] for r in train if 'epoch' in r]
    if epochs and all(r['step'] <= max(epochs) for r in val):
        return 'epoch'
    return 'iteration'


def plot_curves(panels: Mapping[str, Mapping], out_file: str) -> Dict[str, dict]:
    """The training curves of each task: ``panels`` maps a task to a dict with
    ``title``, ``train`` (its training records, dicts with ``loss``), ``val`` (its
    validation records, :func:`read_val_scalars`) and ``metrics`` (``(name, label,
    scale)`` of the metrics to plot; those the records hold, or every metric of the
    records when they hold none of them).

    The first row has a panel per task with its losses by iteration; a second row, drawn
    only when some task has validation records, its validation metrics (percent for the
    named metrics) by epoch or iteration (whichever the records count). Returns what
    the second row shows: task -> ``{'unit': ..., label: [(step, value), ...]}``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator
    shown = OrderedDict()
    for key, p in panels.items():
        val = list(p.get('val') or [])
        if not val:
            continue
        named = [(n, lb, s) for n, lb, s in p.get('metrics', ()) if any(n in r for r in val)]
        if not named:
            named = [(k, k, 1.0) for k in OrderedDict.fromkeys(
                k for r in val for k, v in r.items()
                if k not in _NOT_METRICS and isinstance(v, (int, float)))]
        curves = OrderedDict(unit=_val_unit(p.get('train') or [], val))
        for name, label, scale in named:
            curves[label] = [(r['step'], r[name] * scale) for r in val if name in r]
        shown[key] = curves
    n, rows = len(panels), 2 if shown else 1
    fig, axes = plt.subplots(rows, max(n, 1), figsize=(5 * max(n, 1), 3.6 * rows), squeeze=False)
    for col, (key, p) in enumerate(panels.items()):
        ax, recs = axes[0][col], list(p.get('train') or [])
        ax.set_title(p.get('title', key))
        if recs:
            x = np.array([r.get('iter', r.get('step')) for r in recs])
            for k in [k for k in recs[0] if k.startswith('loss_')]:
                ax.plot(x, [r.get(k, np.nan) for r in recs], lw=1, alpha=0.7, label=k[5:])
            ax.plot(x, [r['loss'] for r in recs], 'k', lw=2, label='total')
            ax.legend(fontsize=7)
        ax.set_xlabel('iteration')
        ax.set_ylabel('training loss')
        ax.grid(alpha=0.3)
        if rows == 1:
            continue
        ax = axes[1][col]
        if key not in shown:
            ax.axis('off')
            ax.text(
                0.5,
                0.5,
                'no validation during training',
                ha='center',
                va='center',
                transform=ax.transAxes,
                color='grey')
            continue
        curves = shown[key]
        for label, points in curves.items():
            if label != 'unit' and points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, 'o-', lw=2, label=label)
        ax.set_xlabel(curves['unit'])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel('validation metric')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return shown
