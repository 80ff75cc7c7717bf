"""What the demo shows of its results (:mod:`shapes_demo.results`): per-class tables that
average to the libraries' own metrics, fixed image sets, ground truth next to predictions.
"""
import glob
import json
import os.path as osp
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from helpers import seg_of  # noqa: E402

from shapes_demo import shapes  # noqa: E402


# ------------------------------------------------------------------------ demo results
def _rect_coco(tmp_path):
    """A 3-image COCO file (128 x 128): categories a, b, c, d; two a, one b, two c (one
    small, one large), no d."""
    boxes = {
        1: [(1, [4, 4, 20, 12]), (2, [30, 30, 16, 16])],  # img 1: a, b
        2: [(1, [10, 8, 24, 20]), (3, [40, 4, 12, 30])],  # img 2: a, c
        3: [(3, [10, 20, 110, 100])]
    }  # img 3: c, over 96 x 96 pixels (large)
    anns, n = [], 0
    for img_id, objs in boxes.items():
        for cat, (x, y, w, h) in objs:
            n += 1
            anns.append(
                dict(
                    id=n,
                    image_id=img_id,
                    category_id=cat,
                    bbox=[x, y, w, h],
                    area=w * h,
                    iscrowd=0,
                    segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    coco = dict(
        images=[dict(id=i, file_name=f'{i:06d}.jpg', width=128, height=128) for i in (1, 2, 3)],
        categories=[dict(id=k, name=c) for k, c in enumerate('abcd', 1)],
        annotations=anns)
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(coco))
    return str(path)


def _det_sample(gt, img_id, objs, mask_scores=None):
    """An mmdet dump entry: ``objs`` are ``(ann or box, label, score)``; an annotation
    is predicted exactly (its box, its mask as RLE), a box with a box-shaped mask."""
    import torch
    from pycocotools import mask as mask_utils
    boxes, masks = [], []
    for obj, _, _ in objs:
        if isinstance(obj, dict):
            x, y, w, h = obj['bbox']
            m = gt.annToMask(obj)
        else:
            x, y, w, h = obj
            m = np.zeros((128, 128), np.uint8)
            m[y:y + h, x:x + w] = 1
        boxes.append([x, y, x + w, y + h])
        masks.append(mask_utils.encode(np.asfortranarray(m)))
    pred = dict(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor([lb for _, lb, _ in objs], dtype=torch.long),
        scores=torch.tensor([s for _, _, s in objs], dtype=torch.float32),
        masks=masks)
    if mask_scores is not None:
        pred['mask_scores'] = torch.tensor(mask_scores, dtype=torch.float32)
    return dict(
        img_id=img_id, img_path=f'{img_id:06d}.jpg', ori_shape=(128, 128), pred_instances=pred)


def test_coco_per_class_averages_to_mmdets_map(tmp_path):
    """Per-category AP of known predictions: a found exactly (100), b missed (0), c half
    found (the small one; COCO's 101 recall points: 51 at precision 1) with a false
    positive scored under it for its box but over it for its mask (mask precision 1/2:
    half that AP), d without ground truth (None, though predicted); the mean over a, b,
    c is what mmdet's CocoMetric reports."""
    import copy

    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO

    from shapes_demo import results as dr
    ann_file = _rect_coco(tmp_path)
    gt = COCO(ann_file)
    a1, b1, a2, c2, c3 = gt.loadAnns([1, 2, 3, 4, 5])
    samples = [
        _det_sample(gt, 1, [(a1, 0, 0.9)]),
        _det_sample(gt, 2, [(a2, 0, 0.9), (c2, 2, 0.8)]),
        # d: a false positive; c: one away from c3, its mask scored 0.99
        _det_sample(
            gt, 3, [((2, 40, 10, 10), 3, 0.5), ((2, 2, 6, 6), 2, 0.1)], mask_scores=[0.5, 0.99])
    ]
    table = dr.coco_per_class(ann_file, samples, classes=('a', 'b', 'c', 'd'))
    c_ap = 100 * 51 / 101
    assert list(table) == ['a', 'b', 'c', 'd']
    assert [table[c]['bbox_AP'] for c in 'abc'] == pytest.approx([100.0, 0.0, c_ap])
    assert [table[c]['segm_AP'] for c in 'abc'] == pytest.approx([100.0, 0.0, c_ap / 2])
    assert table['d'] == dict(bbox_AP=None, segm_AP=None)
    means = dr.class_means(table)
    assert means == pytest.approx(dict(bbox_AP=(100 + c_ap) / 3, segm_AP=(100 + c_ap / 2) / 3))
    # the same predictions through mmdet's own metric
    metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'))
    metric.process({}, copy.deepcopy(samples))
    reported = metric.evaluate(len(samples))
    for key, name in (('bbox_AP', 'coco/bbox_mAP'), ('segm_AP', 'coco/segm_mAP')):
        assert abs(means[key] - 100 * reported[name]) <= 0.051, (key, means, reported)
    pairs = dr.RESULT_KINDS['mmdet'].means
    assert dr.check_class_means(table, reported, pairs) == []
    wrong = dict(reported, **{'coco/segm_mAP': reported['coco/segm_mAP'] + 0.01})
    (msg, ) = dr.check_class_means(table, wrong, pairs)
    assert msg.startswith('the per-class segm_AP average 41.749, but coco/segm_mAP is')
    # no detections at all: 0 where there is ground truth
    empty = [
        dict(
            s,
            pred_instances=dict(
                scores=s['pred_instances']['scores'][:0],
                labels=s['pred_instances']['labels'][:0],
                bboxes=s['pred_instances']['bboxes'][:0],
                masks=[])) for s in samples
    ]
    table = dr.coco_per_class(ann_file, empty, classes=('a', 'b', 'c', 'd'))
    assert [table[c]['bbox_AP'] for c in 'abcd'] == [0.0, 0.0, 0.0, None]
    # the table printed by the demo
    assert dr.per_class_lines(OrderedDict(a=dict(IoU=91.24, Acc=None),
                                          bb=dict(IoU=5.0, Acc=10.0))) == [
                                              'class   IoU   Acc', 'a      91.2     -',
                                              'bb      5.0  10.0', 'mean   48.1  10.0'
                                          ]


def test_seg_per_class_matches_mmseg(tmp_path):
    """Per-class IoU / accuracy of two label maps whose counts are worked out by hand
    (pixels summed over the images, annotation value 0 ignored, class c in neither:
    None); their means are mmseg's IoUMetric mIoU / mAcc on the same maps."""
    import torch
    from mmseg.evaluation import IoUMetric

    from shapes_demo import results as dr
    gt1 = [[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 3, 3], [0, 0, 3, 3]]
    pr1 = [[1, 1, 2, 2], [1, 2, 2, 2], [1, 1, 3, 1], [3, 3, 3, 3]]
    gt2 = [[1] * 4] * 4
    pr2 = [[1, 1, 1, 1], [1, 2, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]
    ann, pred = tmp_path / 'ann', tmp_path / 'pred'
    ann.mkdir()
    pred.mkdir()
    for name, g, p in (('x1', gt1, pr1), ('x2', gt2, pr2)):
        Image.fromarray(np.array(g, np.uint8)).save(ann / f'{name}.png')
        Image.fromarray(np.array(p, np.uint8)).save(pred / f'{name}.png')
    classes = ('background', 'a', 'b', 'c')
    table = dr.seg_per_class(str(ann), str(pred), classes)
    want_iou = [100 * 20 / 23, 100 * 4 / 6, 100 * 3 / 4]
    want_acc = [100 * 20 / 22, 100.0, 100 * 3 / 4]
    assert [table[c]['IoU'] for c in classes[:3]] == pytest.approx(want_iou)
    assert [table[c]['Acc'] for c in classes[:3]] == pytest.approx(want_acc)
    assert table['c'] == dict(IoU=None, Acc=None)
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=classes)
    for g, p in ((gt1, pr1), (gt2, pr2)):
        g = torch.tensor(g) - 1
        g[g < 0] = 255  # reduce_zero_label
        metric.process({}, [
            dict(
                pred_sem_seg=dict(data=(torch.tensor(p) - 1)[None]), gt_sem_seg=dict(data=g[None]))
        ])
    reported = metric.compute_metrics(metric.results)
    means = dr.class_means(table)
    assert means['IoU'] == pytest.approx(np.mean(want_iou))
    assert abs(means['IoU'] - reported['mIoU']) <= 0.006
    assert abs(means['Acc'] - reported['mAcc']) <= 0.006
    assert dr.check_class_means(table, reported, dr.RESULT_KINDS['mmseg'].means) == []
    # a prediction missing, or of another size
    (pred / 'x2.png').unlink()
    with pytest.raises(FileNotFoundError, match='no prediction'):
        dr.seg_per_class(str(ann), str(pred), classes)
    Image.fromarray(np.ones((4, 5), np.uint8)).save(pred / 'x2.png')
    with pytest.raises(ValueError, match='shape'):
        dr.seg_per_class(str(ann), str(pred), classes)


def test_fixed_set_and_compose_pairs(tmp_path):
    from shapes_demo import results as dr
    paths = [f'd{i % 3}/{i:06d}.jpg' for i in range(10)]
    shuffled = [paths[i] for i in (7, 2, 9, 0, 5, 1, 8, 3, 6, 4)]
    assert dr.fixed_set(shuffled, 4) == dr.fixed_set(paths, 4) == \
        ['d0/000000.jpg', 'd0/000003.jpg', 'd0/000006.jpg', 'd0/000009.jpg']
    assert dr.fixed_set(shuffled, 20) == sorted(paths, key=osp.basename)
    assert dr.fixed_set(paths, 1) == ['d0/000000.jpg']
    gt, pred = Image.new('RGB', (40, 30), 'red'), Image.new('RGB', (40, 30), 'blue')
    out = str(tmp_path / 'pairs.png')
    assert dr.compose_pairs([('x', gt, pred)] * 3, out, cols=2, legend=[('a', (0, 255, 0))]) == out
    # cells: 2 x 40 + 4 + 8 wide, 18 + 30 + 8 high; 2 x 2 cells and a legend row of 22
    pic = np.array(Image.open(out))
    assert pic.shape == (2 * 56 + 22, 2 * 92, 3)
    # ground truth on the left, the prediction on the right, under their headers
    assert (pic[4 + 18:4 + 48, 4:44] == [255, 0, 0]).all()
    assert (pic[4 + 18:4 + 48, 48:88] == [0, 0, 255]).all()
    assert (pic[:18, 4:88] < 128).any()  # header text
    assert (pic[-20:, :20] == [0, 255, 0]).all(-1).any()  # legend
    assert dr.compose_pairs([], str(tmp_path / 'none.png')) is None
    assert not osp.exists(tmp_path / 'none.png')


def test_draw_instances_paints_masks_and_boxes():
    from shapes_demo import results as dr
    image = Image.new('RGB', (32, 32), (100, 100, 100))  # 16 x 16 enlarged twice
    mask = np.zeros((16, 16), bool)
    mask[2:6, 3:7] = True  # rows 4..11, columns 6..13 at factor 2
    out = np.array(dr.draw_instances(image, 2, [mask], [[3, 2, 7, 6]], [''], [(200, 0, 0)]))
    assert (out[6:10, 8:12] == [150, 50, 50]).all()  # inside: blended half and half
    assert (out[4, 6:14] == [200, 0, 0]).all()  # the box's outline (2 pixels wide)
    changed = (out != 100).any(-1)
    # the mask and the box (PIL's rectangle includes its far corner), nothing else
    assert changed[4:12, 6:14].all() and not changed[:4].any() and not changed[13:].any()
    assert not changed[:, :6].any() and not changed[:, 15:].any()
    assert (np.array(image) == 100).all()  # the input is left as it was


@pytest.fixture(scope='module')
def shapes_with_predictions(small_shapes, tmp_path_factory):
    """The small data set and dumps of perfect predictions (the ground truth itself) in
    the formats tools/test.py --out writes: mmdet, mmseg, mmpose, mmpretrain."""
    import shutil

    import torch
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    out, meta = small_shapes
    tmp = tmp_path_factory.mktemp('dumps')
    det_ann = osp.join(out, 'det', 'annotations', 'instances_val.json')
    gt = COCO(det_ann)
    det = []
    for img_id in gt.getImgIds():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[img_id]))
        # and, scored under the 0.3 the pictures show, one box over the whole image
        det.append(
            dict(
                img_id=img_id,
                pred_instances=dict(
                    bboxes=torch.tensor([[
                        a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] +
                        a['bbox'][3]
                    ] for a in anns] + [[0., 0., 127., 127.]]),
                    labels=torch.tensor([a['category_id'] - 1 for a in anns] + [0]),
                    scores=torch.tensor([0.9] * len(anns) + [0.05]),
                    masks=[mask_utils.encode(np.asfortranarray(gt.annToMask(a))) for a in anns] +
                    [mask_utils.encode(np.ones((128, 128), np.uint8, order='F'))])))
    kpt = COCO(osp.join(out, 'det', 'annotations', 'keypoints_val.json'))
    pose = []
    for a in kpt.loadAnns(kpt.getAnnIds()):
        x, y, w, h = a['bbox']
        info = kpt.loadImgs(a['image_id'])[0]
        pose.append(
            dict(
                id=a['id'],
                img_id=a['image_id'],
                img_path=osp.join(out, 'det', 'val', info['file_name']),
                pred_instances=dict(
                    keypoints=np.array(a['keypoints'], np.float32).reshape(1, -1, 3)[..., :2],
                    keypoint_scores=np.ones((1, 5), np.float32),
                    bboxes=np.array([[x, y, x + w, y + h]], np.float32))))
    cls = []
    for i, path in enumerate(sorted(glob.glob(osp.join(out, 'cls', 'val', '*', '*.jpg')))):
        label = shapes.CLASSES.index(osp.basename(osp.dirname(path)))
        pred = label if i % 2 == 0 else (label + 1) % 4  # every second one wrong
        score = torch.full((4, ), 0.1)
        score[pred] = 0.7
        cls.append(
            dict(
                img_path=path,
                gt_label=torch.tensor([label]),
                pred_label=torch.tensor([pred]),
                pred_score=score))
    dumps = {}
    for name, samples in (('det', det), ('pose', pose), ('cls', cls)):
        dumps[name] = str(tmp / f'{name}.pkl')
        with open(dumps[name], 'wb') as f:
            pickle.dump(samples, f)
    dumps['seg'] = str(tmp / 'seg')
    shutil.copytree(osp.join(out, 'seg', 'annotations', 'validation'), dumps['seg'])
    return out, meta, dumps


def _plain(path, factor):
    img = Image.open(path).convert('RGB')
    return np.array(img.resize((img.width * factor, img.height * factor), Image.NEAREST))


def test_gt_vs_pred_detection(shapes_with_predictions, tmp_path):
    """Ground truth and perfect predictions: the same objects painted in both panels
    (only the score texts differ; a detection scored under 0.3 is not drawn); no
    predictions: the plain image on the right. The per-class APs of perfect predictions
    (and a false positive scored under them) are 100 and average to a reported 100."""
    from shapes_demo import results as dr
    out, meta, dumps = shapes_with_predictions
    ann = osp.join(out, 'det', 'annotations', 'instances_val.json')
    img_dir = osp.join(out, 'det', 'val')
    preds = dr.load_predictions(dumps['det'])
    pairs = dr.det_pairs(ann, img_dir, preds, 3, classes=shapes.CLASSES)
    names = [n for n, _, _ in pairs]
    assert names == ['000000.jpg', '000002.jpg', '000005.jpg']  # 6 val images, spread
    empty = dr.det_pairs(ann, img_dir, [], 3, classes=shapes.CLASSES)
    for (name, g, p), (_, g0, p0) in zip(pairs, empty):
        plain = _plain(osp.join(img_dir, name), 2)
        g, p, g0, p0 = map(np.array, (g, p, g0, p0))
        assert g.shape == plain.shape == (256, 256, 3)
        objects = np.kron(seg_of(out, 'val', int(name[:6]) + 1) > 1, np.ones((2, 2), bool))
        painted = (g != plain).any(-1)
        assert painted[objects].mean() > 0.9  # the objects, where they are
        assert ((g != p).any(-1).mean()) < 0.05  # the same but for the score texts
        assert (g0 == g).all() and (p0 == plain).all()
    table, problems = dr.per_class_results('mmdet', out, dumps['det'], {
        'coco/bbox_mAP': 1.0,
        'coco/segm_mAP': 1.0
    })
    assert problems == [] and list(table) == list(shapes.CLASSES)
    assert all(v == pytest.approx(100.0) for row in table.values() for v in row.values())
    _, problems = dr.per_class_results('mmdet', out, dumps['det'], {'coco/bbox_mAP': 0.5})
    assert len(problems) == 1 and 'coco/bbox_mAP is 50.000' in problems[0]
    pic = dr.draw_gt_vs_pred('mmdet', out, dumps['det'], str(tmp_path / 'det.png'), 4)
    assert Image.open(pic).size == (2 * (2 * 256 + 12), 2 * (18 + 256 + 8) + 22)


def test_gt_vs_pred_segmentation(shapes_with_predictions, tmp_path):
    """Label maps: perfect predictions give the ground-truth panel itself; predicting
    background everywhere leaves the image as it is (background is not painted), while
    the ground truth paints exactly the objects' pixels."""
    import shutil

    from shapes_demo import results as dr
    out, meta, dumps = shapes_with_predictions
    img_dir = osp.join(out, 'seg', 'images', 'validation')
    ann_dir = osp.join(out, 'seg', 'annotations', 'validation')
    classes = meta['seg_classes']
    background = str(tmp_path / 'bg')
    shutil.copytree(dumps['seg'], background)
    for png in glob.glob(osp.join(background, '*.png')):
        Image.fromarray(np.ones_like(np.array(Image.open(png)))).save(png)
    pairs = dr.seg_pairs(img_dir, ann_dir, dumps['seg'], classes, 2)
    bg_pairs = dr.seg_pairs(img_dir, ann_dir, background, classes, 2)
    assert [n for n, _, _ in pairs] == ['000000.jpg', '000005.jpg']
    for (name, g, p), (_, g0, p0) in zip(pairs, bg_pairs):
        plain = _plain(osp.join(img_dir, name), 2)
        g, p, p0 = map(np.array, (g, p, p0))
        assert (g == p).all() and (p0 == plain).all()
        seg = seg_of(out, 'val', int(name[:6]) + 1)
        objects = np.kron(seg > 1, np.ones((2, 2), bool))
        assert ((g != plain).any(-1) <= objects).all()
        assert (g != plain).any(-1)[objects].mean() > 0.95
        y, x = np.argwhere(seg == 2)[0] if (seg == 2).any() else np.argwhere(seg > 1)[0]
        k = seg[y, x] - 1
        want = np.round(plain[2 * y, 2 * x] * 0.15 + np.array(dr.PALETTE[k]) * 0.85)
        assert (np.abs(g[2 * y, 2 * x] - want) <= 1).all()  # the class's colour, 85%
    table, problems = dr.per_class_results('mmseg', out, dumps['seg'], {'mIoU': 100.0})
    assert problems == [] and list(table) == classes
    assert all(row['IoU'] == 100.0 for row in table.values())
    table, problems = dr.per_class_results('mmseg', out, background, {'mIoU': 20.0})
    assert [row['IoU'] for row in table.values()][1:] == [0.0] * 4
    assert len(problems) == 1 and problems[0].startswith('the per-class IoU average')
    assert dr.draw_gt_vs_pred('mmseg', out, dumps['seg'], str(tmp_path / 's.png'), 2)


def test_gt_vs_pred_pose_and_classification(shapes_with_predictions, tmp_path):
    """Keypoints: perfect predictions draw the ground-truth panel itself, moved ones do
    not. Classification: the image with the true class, and with the predicted one and
    its score, green when right and red when wrong."""
    import copy

    from shapes_demo import results as dr
    out, meta, dumps = shapes_with_predictions
    ann = osp.join(out, 'det', 'annotations', 'keypoints_val.json')
    img_dir = osp.join(out, 'det', 'val')
    preds = dr.load_predictions(dumps['pose'])
    pairs = dr.pose_pairs(ann, img_dir, preds, 4)
    assert [n for n, _, _ in pairs] == ['000000.jpg', '000002.jpg', '000003.jpg', '000005.jpg']
    moved = copy.deepcopy(preds)
    for s in moved:
        s['pred_instances']['keypoints'][..., 0] += 6
    for (name, g, p), (_, g1, p1) in zip(pairs, dr.pose_pairs(ann, img_dir, moved, 4)):
        g, p, p1 = map(np.array, (g, p, p1))
        assert (g == p).all() and (g == np.array(g1)).all() and (p1 != g).any()
        assert (g != _plain(osp.join(img_dir, name), 2)).any(-1).sum() > 100
        # each object's centre: a dot of the first keypoint's colour, where it is
        img_id = int(name[:6]) + 1
        for s in preds:
            if s['img_id'] == img_id:
                x, y = s['pred_instances']['keypoints'][0, 0]
                assert (g[int(2 * y), int(2 * x)] == dr.PALETTE[0]).all()
    assert dr.per_class_results('mmpose', out, dumps['pose'], {}) == (None, [])
    cls = dr.load_predictions(dumps['cls'])
    pairs = dr.cls_pairs(cls, shapes.CLASSES, 2)
    first, last = sorted(cls, key=lambda s: osp.basename(s['img_path']))[::len(cls) - 1]
    assert [n for n, _, _ in pairs
            ] == [osp.basename(first['img_path']),
                  osp.basename(last['img_path'])]
    for (name, g, p), s in zip(pairs, (first, last)):
        g, p = np.array(g), np.array(p)
        plain = _plain(s['img_path'], 6)  # 48 pixels: x6 to 288 >= 256
        assert (g[:288] == plain).all() and (p[:288] == plain).all()
        caption = p[288:].reshape(-1, 3).astype(int)
        green = ((caption[:, 1] > 100) & (caption[:, 0] < 80)).any()
        red = ((caption[:, 0] > 150) & (caption[:, 1] < 80)).any()
        right = int(s['gt_label'][0]) == int(s['pred_label'][0])
        assert (green, red) == (right, not right), name
    pic = dr.draw_gt_vs_pred('mmpretrain', out, dumps['cls'], str(tmp_path / 'c.png'), 8, cols=4)
    assert Image.open(pic).size == (4 * (2 * 288 + 12), 2 * (18 + 308 + 8))
    assert dr.draw_gt_vs_pred('mmocr', out, dumps['cls'], str(tmp_path / 'x.png'), 8) is None
