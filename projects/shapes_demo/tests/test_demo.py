"""The demo: the synthetic shapes generator, and (slow) the demo runs end to end.

Fast tests check the generator: same seed -> identical bytes, and the layouts load with the
tools that read them (pycocotools, mmdet/mmseg/mmpretrain/mmpose datasets).
"""
import filecmp
import glob
import json
import os
import os.path as osp
import pickle
import re
import signal
import subprocess
import sys
import time
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from helpers import one_thread_env, run_watched  # noqa: E402

from mmscope.datasets import shapes  # noqa: E402

SMALL = dict(num_train=12, num_val=6, size=128, cls_size=48)


@pytest.fixture(scope='module')
def small_shapes(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('shapes') / 'a')
    meta = shapes.generate_shapes(out, seed=3, **SMALL)
    return out, meta


def _files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def _seg_of(out, split, image_id):
    ade = 'training' if split == 'train' else 'validation'
    return np.array(Image.open(
        osp.join(out, 'seg', 'annotations', ade, f'{image_id - 1:06d}.png')))


# ------------------------------------------------------------------------ generator
def test_generator_is_deterministic(small_shapes, tmp_path):
    out, _ = small_shapes
    again = str(tmp_path / 'b')
    shapes.generate_shapes(again, seed=3, **SMALL)
    files = _files(out)
    assert files == _files(again)
    assert len(files) == 1 + 2 * (SMALL['num_train'] + SMALL['num_val']) + \
        2 * (SMALL['num_train'] + SMALL['num_val']) + 4  # meta, cls, det+seg imgs, pngs, jsons
    _, mismatch, errors = filecmp.cmpfiles(out, again, files, shallow=False)
    assert not mismatch and not errors
    # another seed gives other pictures
    other = str(tmp_path / 'c')
    shapes.generate_shapes(other, seed=4, **SMALL)
    assert not filecmp.cmp(osp.join(out, 'det', 'train', '000000.jpg'),
                           osp.join(other, 'det', 'train', '000000.jpg'), shallow=False)
    # order-independent: one image rendered alone equals the one written in the batch
    img, objs = shapes.render_scene(3, 'val', 2, SMALL['size'])
    seg = np.array(Image.open(osp.join(out, 'seg', 'annotations', 'validation', '000002.png')))
    assert (seg > shapes.SEG_BACKGROUND_VALUE).sum() == sum(o['mask'].sum() for o in objs)


def test_generator_module_imports_stay_light():
    """shapes.py itself needs only numpy, OpenCV and Pillow (loaded here as a bare file,
    since importing the ``mmscope`` package also sets up mmengine)."""
    code = ('import importlib.util, sys\n'
            'spec = importlib.util.spec_from_file_location("shapes", sys.argv[1])\n'
            'spec.loader.exec_module(importlib.util.module_from_spec(spec))\n'
            'print([m for m in ("torch", "mmengine", "mmdet", "mmseg", "mmpretrain", '
            '"matplotlib") if m in sys.modules])\n')
    out = subprocess.run([sys.executable, '-c', code, shapes.__file__],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]', out.stdout


def test_coco_annotations_are_valid(small_shapes):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    out, meta = small_shapes
    size = SMALL['size']
    for split, n in (('train', SMALL['num_train']), ('val', SMALL['num_val'])):
        coco = COCO(osp.join(out, 'det', 'annotations', f'instances_{split}.json'))
        assert sorted(coco.getCatIds()) == list(range(1, len(shapes.CLASSES) + 1))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(shapes.CLASSES)
        assert len(coco.getImgIds()) == n
        assert len(coco.getAnnIds()) == meta['stats']['scene_objects'][split]
        for img_id in coco.getImgIds():
            info = coco.loadImgs(img_id)[0]
            assert osp.isfile(osp.join(out, 'det', split, info['file_name']))
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            assert 1 <= len(anns) <= 5
            union = np.zeros((size, size), np.int32)
            for ann in anns:
                assert ann['iscrowd'] == 0 and len(ann['segmentation']) == 1
                poly = ann['segmentation'][0]
                assert len(poly) >= 6 and len(poly) % 2 == 0
                xy = np.array(poly).reshape(-1, 2)
                assert xy.min() >= 0 and xy.max() <= size
                x, y, w, h = ann['bbox']
                assert w >= 10 and h >= 10
                np.testing.assert_allclose([x, y, x + w, y + h],
                                           [*xy.min(0), *xy.max(0)], atol=0.01)
                rle = mask_utils.frPyObjects(ann['segmentation'], size, size)
                m = mask_utils.decode(mask_utils.merge(rle))
                area = float(mask_utils.area(mask_utils.merge(rle)))
                assert area == pytest.approx(ann['area'], rel=0.08)
                # the polygon is exactly the painted object (same pixel convention)
                painted = _seg_of(out, split, img_id) == shapes.SEG_BACKGROUND_VALUE + \
                    ann['category_id']
                assert (m.astype(bool) & painted).sum() >= 0.95 * m.sum()
                union += m
            assert union.max() <= 1, 'objects must not overlap'


def test_keypoint_annotations_are_valid(small_shapes):
    """The COCO keypoints files: the objects of the instance files (same ids, boxes and
    areas), 5 visible keypoints each inside the box (the extreme ones on its edges)."""
    from pycocotools.coco import COCO
    out, meta = small_shapes
    assert meta['keypoints'] == list(shapes.KEYPOINTS) == \
        ['centre', 'top', 'bottom', 'left', 'right']
    assert len(meta['keypoint_sigmas']) == len(meta['keypoints'])
    assert all(0 < s < 0.2 for s in meta['keypoint_sigmas'])
    assert meta['keypoint_swap'] == dict(centre='centre', top='top', bottom='bottom',
                                         left='right', right='left')
    assert all(1 <= i <= 5 for link in meta['keypoint_skeleton'] for i in link)
    for split, n in (('train', SMALL['num_train']), ('val', SMALL['num_val'])):
        ann_dir = osp.join(out, 'det', 'annotations')
        kpt = COCO(osp.join(ann_dir, f'keypoints_{split}.json'))
        inst = COCO(osp.join(ann_dir, f'instances_{split}.json'))
        (cat, ) = kpt.loadCats(kpt.getCatIds())
        assert cat['name'] == 'shape' and cat['keypoints'] == meta['keypoints']
        assert cat['skeleton'] == meta['keypoint_skeleton']
        assert kpt.dataset['images'] == inst.dataset['images'] and len(kpt.getImgIds()) == n
        assert len(kpt.getAnnIds()) == meta['stats']['scene_objects'][split]
        for ann in kpt.loadAnns(kpt.getAnnIds()):
            ref = inst.anns[ann['id']]
            assert (ann['image_id'], ann['bbox'], ann['area'], ann['iscrowd']) == \
                (ref['image_id'], ref['bbox'], ref['area'], 0)
            assert ann['category_id'] == 1 and ann['shape_class'] == ref['category_id'] - 1
            pts = np.array(ann['keypoints'], float).reshape(-1, 3)
            assert ann['num_keypoints'] == len(pts) == 5 and (pts[:, 2] == 2).all()
            x, y, w, h = ann['bbox']
            assert (pts[:, 0] >= x - 0.02).all() and (pts[:, 0] <= x + w + 0.02).all()
            assert (pts[:, 1] >= y - 0.02).all() and (pts[:, 1] <= y + h + 0.02).all()
            centre, top, bottom, left, right = pts[:, :2]
            np.testing.assert_allclose([top[1], bottom[1], left[0], right[0]],
                                       [y, y + h, x, x + w], atol=0.02)  # rounding
            # the centre is inside the object, well away from the box edges
            assert x + 0.2 * w < centre[0] < x + 0.8 * w
            assert y + 0.2 * h < centre[1] < y + 0.8 * h
            # the points are vertices of the object's polygon (or its vertex mean)
            poly = np.array(ref['segmentation'][0]).reshape(-1, 2)
            for p in (top, bottom, left, right):
                assert np.abs(poly - p).max(1).min() <= 0.01
            np.testing.assert_allclose(centre, poly.mean(0), atol=0.02)


def test_keypoints_load_in_mmpose(small_shapes):
    """mmpose's CocoDataset reads the keypoints with the demo config's metainfo, whose
    keypoints, sigmas and flip pairs are the generator's."""
    from mmengine.config import Config
    from mmpose.datasets import CocoDataset
    out, meta = small_shapes
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo', 'td-hm_scopevit-xt_shapes-kpt.py'))
    ds = CocoDataset(data_root=osp.join(out, 'det'), ann_file='annotations/keypoints_val.json',
                     data_prefix=dict(img='val/'), metainfo=cfg.metainfo, bbox_file=None,
                     pipeline=[], test_mode=True)
    assert len(ds) == meta['stats']['scene_objects']['val']
    names = [ds.metainfo['keypoint_id2name'][i] for i in range(ds.metainfo['num_keypoints'])]
    assert names == meta['keypoints']
    np.testing.assert_allclose(ds.metainfo['sigmas'], meta['keypoint_sigmas'])
    assert [names[i] for i in ds.metainfo['flip_indices']] == \
        [meta['keypoint_swap'][n] for n in names]
    assert len(ds.metainfo['skeleton_links']) == len(meta['keypoint_skeleton'])
    info = ds[0]
    assert info['keypoints'].shape == (1, 5, 2) and info['keypoints_visible'].min() == 1
    assert cfg.model.head.out_channels == 5 and cfg.model.head.decoder == cfg.codec


def test_seg_annotations_are_valid(small_shapes):
    out, _ = small_shapes
    for ade_split, split in (('training', 'train'), ('validation', 'val')):
        imgs = sorted(os.listdir(osp.join(out, 'seg', 'images', ade_split)))
        anns = sorted(os.listdir(osp.join(out, 'seg', 'annotations', ade_split)))
        assert [i.replace('.jpg', '.png') for i in imgs] == anns
        with open(osp.join(out, 'det', 'annotations', f'instances_{split}.json')) as f:
            coco = json.load(f)
        for name in anns:
            png = Image.open(osp.join(out, 'seg', 'annotations', ade_split, name))
            assert png.mode == 'L' and png.size == (SMALL['size'], ) * 2
            seg = np.array(png)
            values = set(np.unique(seg).tolist())
            assert values <= set(range(1, len(shapes.SEG_CLASSES) + 1))
            assert shapes.SEG_IGNORE_VALUE not in values
            # the PNG's classes are the COCO objects' classes of the same scene
            img_id = int(name[:-4]) + 1
            cats = {a['category_id'] for a in coco['annotations'] if a['image_id'] == img_id}
            assert values - {shapes.SEG_BACKGROUND_VALUE} == {
                c + shapes.SEG_BACKGROUND_VALUE for c in cats}


def test_cls_folders_are_valid(small_shapes):
    out, _ = small_shapes
    for split, n in (('train', SMALL['num_train']), ('val', SMALL['num_val'])):
        assert sorted(os.listdir(osp.join(out, 'cls', split))) == sorted(shapes.CLASSES)
        counts = [len(os.listdir(osp.join(out, 'cls', split, c))) for c in shapes.CLASSES]
        assert sum(counts) == n and max(counts) - min(counts) <= 1
        img = Image.open(osp.join(out, 'cls', split, 'circle', '000000.jpg'))
        assert img.size == (SMALL['cls_size'], ) * 2 and img.mode == 'RGB'


def test_cls_objects_fill_the_frame(monkeypatch):
    """A classification image is object-centric: its object (whole, inside the image)
    covers 9-62% of it, between a small triangle and a large circle of
    :data:`shapes.CLS_RADIUS`; over 40 images, the circles cover more than 25%."""
    areas = []
    paint = shapes._paint

    def recording_paint(img, poly, bg_mean, rng):
        mask = paint(img, poly, bg_mean, rng)
        assert poly.min() > 0 and poly.max() < img.shape[0]  # the whole object is in
        areas.append(mask.mean())
        return mask

    monkeypatch.setattr(shapes, '_paint', recording_paint)
    labels = [shapes.render_single(0, 'train', i, 64)[1] for i in range(40)]
    assert all(0.09 <= a <= 0.62 for a in areas), (min(areas), max(areas))
    circles = [a for a, k in zip(areas, labels) if shapes.CLASSES[k] == 'circle']
    assert len(circles) == 10 and min(circles) > 0.25


def test_layouts_load_in_openmmlab_datasets(small_shapes):
    """The dataset classes the real configs use read the three layouts."""
    out, _ = small_shapes
    from mmdet.datasets import CocoDataset
    from mmpretrain.datasets import ImageNet
    from mmseg.datasets import BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations

    cls = ImageNet(data_root=osp.join(out, 'cls'), split='val',
                   metainfo=dict(classes=shapes.CLASSES))
    assert len(cls) == SMALL['num_val']
    # folder-layout labels are numbered by sorted folder name: they must agree with CLASSES
    for i in range(len(cls)):
        info = cls.get_data_info(i)
        assert shapes.CLASSES[info['gt_label']] == osp.basename(osp.dirname(info['img_path']))

    det = CocoDataset(data_root=osp.join(out, 'det'),
                      ann_file='annotations/instances_val.json',
                      data_prefix=dict(img='val/'), metainfo=dict(classes=shapes.CLASSES),
                      pipeline=[], test_mode=True)
    assert len(det) == SMALL['num_val']
    assert det[0]['instances'][0]['mask'] and det.metainfo['classes'] == shapes.CLASSES

    # ADE20KDataset pins the 150 ADE classes; the demo reads the same layout and label
    # convention with BaseSegDataset and its own classes.
    seg = BaseSegDataset(data_root=osp.join(out, 'seg'), img_suffix='.jpg',
                         seg_map_suffix='.png', reduce_zero_label=True,
                         data_prefix=dict(img_path='images/validation',
                                          seg_map_path='annotations/validation'),
                         metainfo=dict(classes=shapes.SEG_CLASSES), pipeline=[])
    assert len(seg) == SMALL['num_val'] and seg.reduce_zero_label
    results = LoadAnnotations(reduce_zero_label=True)(dict(seg[0], seg_fields=[]))
    values = set(np.unique(results['gt_seg_map']).tolist())
    assert 0 in values and values <= set(range(len(shapes.SEG_CLASSES)))


def test_generate_cli(tmp_path):
    out = str(tmp_path / 'cli')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'dataset_converters', 'generate_shapes.py'),
           '--out', out, '--train', '4', '--val', '4', '--size', '64', '--cls-train', '4',
           '--cls-val', '4', '--cls-size', '32',
           '--seed', '1']
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert '16/16' in first.stdout and 'done' in first.stdout
    with open(osp.join(out, 'meta.json')) as f:
        assert json.load(f)['seed'] == 1
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert 'up to date' in second.stdout


def test_write_shapes_skips_what_is_up_to_date(tmp_path, capsys):
    """What the command line runs: written once, then skipped while ``meta.json`` says the
    same generator wrote the same arguments (``force`` rewrites)."""
    out = str(tmp_path / 'w')
    args = dict(num_train=2, num_val=2, size=64, cls_size=32, seed=1, cls_train=4,
                cls_val=4)
    assert not shapes.is_up_to_date(out, **args)
    assert shapes.write_shapes(out, **args)
    text = capsys.readouterr().out
    assert f'[shapes] writing 12 images to {out} (seed 1)' in text and 'done in' in text
    assert shapes.is_up_to_date(out, **args)
    for changed in (dict(seed=2), dict(cls_val=3), dict(size=96)):
        assert not shapes.is_up_to_date(out, **dict(args, **changed)), changed
    assert not shapes.write_shapes(out, **args)
    assert capsys.readouterr().out == \
        f'[shapes] {out} is up to date (seed 1); --force to rewrite\n'
    assert shapes.write_shapes(out, force=True, **args)
    with open(osp.join(out, 'meta.json'), 'w') as f:
        f.write('{not json')
    assert not shapes.is_up_to_date(out, **args)


# ------------------------------------------------------------------------ inference
def test_inference_helpers(tmp_path):
    from mmscope.apis.inference import find_picture, upscaled
    small, big = str(tmp_path / 'small.jpg'), str(tmp_path / 'big.png')
    Image.new('RGB', (48, 32), 'red').save(small)
    Image.new('RGB', (100, 80), 'blue').save(big)
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    out = upscaled([small, big], 64, str(tmp))
    assert out == [str(tmp / 'small.jpg'), big]
    assert Image.open(out[0]).size == (96, 64)  # short side to 64, aspect kept
    assert upscaled([small], 0, str(tmp)) == [small]
    with pytest.raises(FileNotFoundError, match='cannot read image'):
        upscaled([str(tmp_path / 'missing.jpg')], 64, str(tmp))
    assert find_picture(str(tmp), 'small.png') == str(tmp / 'small.jpg')
    with pytest.raises(FileNotFoundError, match='no visualisation of other.jpg'):
        find_picture(str(tmp), 'other.jpg')


def test_library_of_config(tmp_path):
    from mmscope.apis import LIBRARIES
    from mmscope.apis.inference import library_of_config
    bad = tmp_path / 'bad.py'
    bad.write_text("default_scope = 'mmocr'\n")
    with pytest.raises(ValueError) as err:
        library_of_config(str(bad))
    assert str(err.value) == \
        f"{bad}: default_scope 'mmocr' is none of {sorted(LIBRARIES)}"
    good = tmp_path / 'good.py'
    good.write_text("default_scope = 'mmseg'\n")
    assert library_of_config(str(good)) is LIBRARIES['mmseg']


def test_library_rows_drive_the_inference():
    """What differs between the inferencers is in the library rows."""
    import torch
    from mmengine.structures import PixelData

    from mmscope.apis import LIBRARIES

    class FakeInferencer:
        class model:
            dataset_meta = dict(classes=('circle', 'square', 'star', 'triangle'))

    cls, det, seg = LIBRARIES['mmpretrain'], LIBRARIES['mmdet'], LIBRARIES['mmseg']
    assert (cls.weights_arg, det.weights_arg, seg.weights_arg) == \
        ('pretrained', 'weights', 'weights')
    assert dict(det.inferencer_kwargs) == dict(show_progress=False)
    assert cls.infer_kwargs('/t', 0.3) == dict(show_dir=osp.join('/t', 'vis'))
    assert det.infer_kwargs('/t', 0.4) == dict(out_dir='/t', pred_score_thr=0.4)
    assert seg.infer_kwargs('/t', 0.3) == dict(out_dir='/t', return_datasamples=True)
    fake = FakeInferencer()
    pred = dict(pred_class='star', pred_score=0.834)
    assert cls.predictions([pred]) == [pred]
    assert cls.summarize(pred, fake, 0.3) == 'star (0.83)'
    boxes = dict(labels=[2, 0, 1], scores=[0.91, 0.45, 0.2])
    assert det.predictions(dict(predictions=[boxes])) == [boxes]
    assert det.summarize(boxes, fake, 0.3) == '2 objects: star 0.91, circle 0.45'
    assert det.summarize(boxes, fake, 0.95) == 'no object'
    sample = type('Sample', (), {})()
    label_map = torch.zeros(1, 20, 20, dtype=torch.long)
    label_map[0, :4] = 2  # 20% star
    label_map[0, 4, :4] = 1  # 1% square
    label_map[0, 5, 0] = 3  # 0.25% triangle: not shown
    sample.pred_sem_seg = PixelData(data=label_map)
    assert seg.predictions(sample) == [sample] and seg.predictions([sample]) == [sample]
    assert seg.summarize(sample, fake, 0.3) == 'circle 79%, star 20%, square 1%'


def test_pose_row_drives_the_inference():
    """mmpose's row: MMPoseInferencer with the whole image as the box, its per-batch
    results flattened to one instance list per image, summarised."""
    from mmscope.apis import LIBRARIES
    pose = LIBRARIES['mmpose']
    assert pose.weights_arg == 'pose2d_weights'
    assert dict(pose.inferencer_kwargs) == dict(det_model='whole_image')
    assert pose.infer_kwargs('/t', 0.3) == dict(vis_out_dir=osp.join('/t', 'vis'),
                                                kpt_thr=0.3, draw_bbox=True)
    inst = [dict(keypoints=[[1, 2]] * 5, keypoint_scores=[0.9, 0.8, 0.7, 0.9, 0.85]),
            dict(keypoints=[[3, 4]] * 5, keypoint_scores=[0.8] * 5)]
    batches = iter([dict(predictions=[inst, inst[:1]]), dict(predictions=[[]])])
    assert pose.predictions(batches) == [inst, inst[:1], []]
    assert pose.summarize(inst, None, 0.3) == '2 instances, 5 keypoints each, mean score 0.82'
    assert pose.summarize(inst[:1], None, 0.3) == '1 instance, 5 keypoints, mean score 0.83'
    assert pose.summarize([], None, 0.3) == 'no instance'


def test_box_centre_baseline(small_shapes):
    """The keypoint baseline: COCO AP of every keypoint at its box centre is 0 (the
    extreme points are half a box away), and the ground truth itself scores 100."""
    import contextlib
    import io

    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    from mmscope.apis import demo
    out, meta = small_shapes
    ann_file = osp.join(out, 'det', 'annotations', 'keypoints_val.json')
    assert demo.box_centre_keypoint_ap(ann_file, meta['keypoint_sigmas']) == 0.0
    assert demo.baselines(meta, out)['coco/AP'] == (0.0, 'all at box centre')
    with contextlib.redirect_stdout(io.StringIO()):  # the same evaluation, perfect answers
        gt = COCO(ann_file)
        res = gt.loadRes([dict(a, score=1.0) for a in gt.loadAnns(gt.getAnnIds())])
        ev = COCOeval(gt, res, 'keypoints', np.array(meta['keypoint_sigmas']), use_area=True)
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def _random_checkpoint(config, path, classes):
    """A checkpoint of ``config``'s model with its initial (seeded) weights and the
    dataset meta (classes, palette) that a training run would record."""
    import torch

    from mmscope.apis import build_model, load_config
    torch.manual_seed(0)
    model = build_model(load_config(config), init_weights=True)
    palette = [[40 * k, 255 - 40 * k, 128] for k in range(len(classes))]
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=list(classes), palette=palette))),
               path)
    return path


def test_image_demo_cli_classifier(small_shapes, tmp_path):
    """demo/image_demo.py: a picture per image and one summary line each."""
    out, _ = small_shapes
    config = 'configs/demo/quick/scopevit-xt_shapes-cls_quick.py'
    ckpt = _random_checkpoint(config, str(tmp_path / 'cls.pth'), shapes.CLASSES)
    images = [osp.join(out, 'cls', 'val', 'circle', '000000.jpg'),
              osp.join(out, 'cls', 'val', 'square', '000001.jpg')]
    vis = str(tmp_path / 'vis')
    proc = subprocess.run([sys.executable, 'demo/image_demo.py', *images, config, ckpt,
                           '--out-dir', vis, '--device', 'cpu'], cwd=ROOT,
                          capture_output=True, text=True, env=one_thread_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for image, name in zip(images, ('000000.png', '000001.png')):
        line = re.search(rf'\[classification\] {re.escape(image)}: (\w+) \((\d\.\d\d)\)\n'
                         rf'    -> {re.escape(osp.join(vis, name))}', proc.stdout)
        assert line and line.group(1) in shapes.CLASSES, proc.stdout
        # the demo images (48 px) are drawn upscaled to 384 px
        assert min(Image.open(osp.join(vis, name)).size) >= 384


def _digest(path):
    import hashlib
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_image_demo_one_result_per_image_and_no_input_overwritten(small_shapes, tmp_path):
    """Two images of the same name in two folders keep their own predictions and
    pictures; an image inside the output folder, named like its picture, is not
    overwritten (its picture takes the next free name)."""
    import shutil

    from mmscope.apis.inference import inference, picture_paths
    out, _ = small_shapes
    config = osp.join(ROOT, 'configs/demo/quick/scopevit-xt_shapes-cls_quick.py')
    ckpt = _random_checkpoint(config, str(tmp_path / 'cls.pth'), shapes.CLASSES)
    sources = [osp.join(out, 'cls', 'val', c, f'{i:06d}.jpg')
               for i, c in enumerate(('circle', 'square', 'star'))]
    images = [str(tmp_path / 'a' / 'img.jpg'), str(tmp_path / 'b' / 'img.jpg'),
              str(tmp_path / 'ow' / 'img.png')]
    for src, dst in zip(sources, images):
        os.makedirs(osp.dirname(dst), exist_ok=True)
        if dst.endswith('.png'):
            Image.open(src).save(dst)
        else:
            shutil.copyfile(src, dst)
    before = _digest(images[2])
    out_dir = str(tmp_path / 'ow')
    res = inference(images, config, ckpt, out_dir, device='cpu')
    # ow/img.png is an input: the pictures take the next free names
    assert [r['vis'] for r in res] == [osp.join(out_dir, n)
                                       for n in ('img_1.png', 'img_2.png', 'img_3.png')]
    assert _digest(images[2]) == before  # the input is untouched
    assert len({_digest(r['vis']) for r in res}) == 3  # three different pictures
    # each image's prediction is the one it gets alone
    for image, r in zip(images, res):
        (alone, ) = inference([image], config, ckpt, str(tmp_path / 'alone'), device='cpu')
        assert alone['summary'] == r['summary'], (image, alone, r)
    assert picture_paths(['x/p.jpg', 'y/p.png', 'p.gif'], 'x') == ['x/p.png', 'x/p_1.png',
                                                                   'x/p_2.png']


@pytest.mark.parametrize('key,config', [
    ('seg', 'configs/demo/quick/upernet_scalablevit-xs_shapes_quick.py'),
    ('det', 'configs/demo/quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py')])
def test_inference_checkpoint_without_class_names(small_shapes, tmp_path, key, config):
    """A checkpoint without ``dataset_meta`` is named with the config's classes, not
    the library's default dataset (Cityscapes' 19 names made the summary of a 5-class
    segmentor fail; COCO's would name wrong objects)."""
    import torch

    from mmscope.apis import build_model, load_config
    from mmscope.apis.inference import inference
    out, _ = small_shapes
    torch.manual_seed(0)
    model = build_model(load_config(osp.join(ROOT, config)), init_weights=True)
    ckpt = str(tmp_path / 'weights_only.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    images = [osp.join(out, 'det', 'val', '000000.jpg')]
    (res, ) = inference(images, osp.join(ROOT, config), ckpt, str(tmp_path / 'vis'),
                        device='cpu', score_thr=0.0, min_size=0)
    classes = shapes.SEG_CLASSES if key == 'seg' else shapes.CLASSES
    named = re.findall(r'([a-z]+) \d', res['summary'])
    assert named and set(named) <= set(classes), res['summary']


@pytest.mark.slow
@pytest.mark.parametrize('key,config', [
    ('det', 'configs/demo/quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py'),
    ('seg', 'configs/demo/quick/upernet_scalablevit-xs_shapes_quick.py')])
def test_inference_detector_and_segmentor(small_shapes, tmp_path, key, config):
    from mmscope.apis.inference import inference
    out, _ = small_shapes
    classes = shapes.SEG_CLASSES if key == 'seg' else shapes.CLASSES
    ckpt = _random_checkpoint(osp.join(ROOT, config), str(tmp_path / 'm.pth'), classes)
    images = [osp.join(out, 'det', 'val', name) for name in ('000000.jpg', '000001.jpg')]
    res = inference(images, osp.join(ROOT, config), ckpt, str(tmp_path / 'vis'),
                    device='cpu', score_thr=0.0)
    assert [r['image'] for r in res] == images
    for r in res:
        assert osp.getsize(r['vis']) > 1000 and r['vis'].endswith('.png')
        if key == 'det':
            assert re.fullmatch(r'\d+ objects: .*|no object', r['summary']), r['summary']
        else:
            assert any(c in r['summary'] for c in classes), r['summary']


# ------------------------------------------------------------------------ demo helpers
def test_demo_tasks_follow_the_library_table():
    from mmscope.apis import LIBRARIES, load_config
    from mmscope.apis.demo import DATA, DEMO_TASKS, THRESHOLDS
    assert list(DEMO_TASKS) == ['cls', 'cls-scalable', 'det', 'seg', 'pose']
    for key, task in DEMO_TASKS.items():
        # the key is the library's task, with a suffix for a second task of the library
        assert task.library is LIBRARIES[task.scope]
        assert key.split('-')[0] == task.library.task
        assert task.title == task.library.title
        for config in (task.config, task.quick_config):
            assert load_config(osp.join(ROOT, config)).default_scope == task.scope
        for name, _, _ in task.metrics:
            assert name in THRESHOLDS['full'][key] and name in THRESHOLDS['quick'][key]
        # a backbone starts from a classifier of its own family, trained before it
        if task.backbone_from is not None:
            source = DEMO_TASKS[task.backbone_from]
            assert source.scope == 'mmpretrain'
            assert list(DEMO_TASKS).index(task.backbone_from) < list(DEMO_TASKS).index(key)
            family = task.model.split(' + ')[-1].split('-')[0]
            assert source.model.split('-')[0] == family, (key, task.model, source.model)
    # both families appear, and every dense task starts from a classifier
    assert {t.model.split(' + ')[-1].split('-')[0] for t in DEMO_TASKS.values()} == \
        {'ScopeViT', 'ScalableViT'}
    assert all(t.backbone_from for t in DEMO_TASKS.values() if t.scope != 'mmpretrain')
    assert set(THRESHOLDS['full']) == set(THRESHOLDS['quick']) == set(DEMO_TASKS)
    assert set(DATA) == set(THRESHOLDS) == {'full', 'quick'}
    proc = subprocess.run([sys.executable, 'tools/demo.py', '--help'], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and '--tasks {cls,cls-scalable,det,seg,pose}' in proc.stdout


def test_demo_helpers(tmp_path):
    from mmscope.apis import demo, demo_results
    assert (demo.fmt_time(42.4), demo.fmt_time(65), demo.fmt_time(600)) == \
        ('42s', '1m05s', '10m00s')
    paths = [f'img_{i}.png' for i in (10, 2, 7, 1, 30)]
    assert demo_results.fixed_set(paths, 10) == ['img_1.png', 'img_2.png', 'img_7.png', 'img_10.png',
                                    'img_30.png']
    assert demo_results.fixed_set(paths, 3) == ['img_1.png', 'img_7.png', 'img_30.png']
    # pictures: small ones enlarged (an integer factor) to the minimum width
    pics = []
    for i, size in enumerate(((64, 64), (100, 50), (300, 40))):
        pics.append(str(tmp_path / f'{i}.png'))
        Image.new('RGB', size, 'red').save(pics[-1])
    assert demo.tile(pics, str(tmp_path / 'grid.png'), cols=2, min_width=256) == \
        str(tmp_path / 'grid.png')
    # cells: 256x256 (x4), 300x150 (x3), 300x40: 304x260 each, 2 x 2 of them
    assert Image.open(tmp_path / 'grid.png').size == (608, 520)
    assert demo.tile([], str(tmp_path / 'none.png')) is None
    assert not osp.exists(tmp_path / 'none.png')
    # work-dir records
    work = tmp_path / 'work'
    assert demo.last_checkpoint(str(work)) is None
    first = [dict(iter=1, loss=3.), dict(iter=2, loss=2.), dict(lr=0.1)]
    resumed = [dict(iter=2, loss=1.5), dict(iter=3, loss=1.)]  # replaces iteration 2
    for run, recs in (('20240101_000000', first), ('20240102_000000', resumed)):
        (work / run / 'vis_data').mkdir(parents=True)
        (work / run / 'vis_data' / 'scalars.json').write_text(
            '\n'.join(json.dumps(r) for r in recs) + '\n\n')
    assert [r['loss'] for r in demo.read_train_scalars(str(work))] == [3., 1.5, 1.]
    (work / 'iter_3.pth').write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'iter_3.pth') + '\n')
    assert demo.last_checkpoint(str(work)) == str(work / 'iter_3.pth')
    (work / 'last_checkpoint').write_text(str(work / 'gone.pth'))
    assert demo.last_checkpoint(str(work)) is None
    test_dir = tmp_path / 'test'
    with pytest.raises(RuntimeError, match='no test metrics found'):
        demo.read_test_metrics(str(test_dir))
    for run, value in (('20240101_000000', 10.), ('20240102_000000', 20.)):
        (test_dir / run).mkdir(parents=True)
        (test_dir / run / f'{run}.json').write_text(json.dumps({'mIoU': value}) + '\n')
    assert demo.read_test_metrics(str(test_dir)) == {'mIoU': 20.}
    meta = dict(classes=['a', 'b', 'c', 'd'],
                stats=dict(seg_pixel_counts=dict(val=[60, 10, 10, 10, 10])))
    assert demo.background_only_miou(meta) == pytest.approx(12.0)
    base = demo.baselines(meta)
    assert base['accuracy/top1'] == (25.0, 'chance') and base['mIoU'][1] == 'all background'
    assert base['coco/AP'] == (0.0, 'all at box centre')  # no data root: nothing to score


# ------------------------------------------------------------------------ demo results
def _rect_coco(tmp_path):
    """A 3-image COCO file (128 x 128): categories a, b, c, d; two a, one b, two c (one
    small, one large), no d."""
    boxes = {1: [(1, [4, 4, 20, 12]), (2, [30, 30, 16, 16])],  # img 1: a, b
             2: [(1, [10, 8, 24, 20]), (3, [40, 4, 12, 30])],  # img 2: a, c
             3: [(3, [10, 20, 110, 100])]}  # img 3: c, over 96 x 96 pixels (large)
    anns, n = [], 0
    for img_id, objs in boxes.items():
        for cat, (x, y, w, h) in objs:
            n += 1
            anns.append(dict(id=n, image_id=img_id, category_id=cat, bbox=[x, y, w, h],
                             area=w * h, iscrowd=0,
                             segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    coco = dict(images=[dict(id=i, file_name=f'{i:06d}.jpg', width=128, height=128)
                        for i in (1, 2, 3)],
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
    pred = dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                labels=torch.tensor([lb for _, lb, _ in objs], dtype=torch.long),
                scores=torch.tensor([s for _, _, s in objs], dtype=torch.float32),
                masks=masks)
    if mask_scores is not None:
        pred['mask_scores'] = torch.tensor(mask_scores, dtype=torch.float32)
    return dict(img_id=img_id, img_path=f'{img_id:06d}.jpg', ori_shape=(128, 128),
                pred_instances=pred)


def test_coco_per_class_averages_to_mmdets_map(tmp_path):
    """Per-category AP of known predictions: a found exactly (100), b missed (0), c half
    found (the small one; COCO's 101 recall points: 51 at precision 1) with a false
    positive scored under it for its box but over it for its mask (mask precision 1/2:
    half that AP), d without ground truth (None, though predicted); the mean over a, b,
    c is what mmdet's CocoMetric reports."""
    import copy

    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO

    from mmscope.apis import demo_results as dr
    ann_file = _rect_coco(tmp_path)
    gt = COCO(ann_file)
    a1, b1, a2, c2, c3 = gt.loadAnns([1, 2, 3, 4, 5])
    samples = [_det_sample(gt, 1, [(a1, 0, 0.9)]),
               _det_sample(gt, 2, [(a2, 0, 0.9), (c2, 2, 0.8)]),
               # d: a false positive; c: one away from c3, its mask scored 0.99
               _det_sample(gt, 3, [((2, 40, 10, 10), 3, 0.5), ((2, 2, 6, 6), 2, 0.1)],
                           mask_scores=[0.5, 0.99])]
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
    empty = [dict(s, pred_instances=dict(scores=s['pred_instances']['scores'][:0],
                                         labels=s['pred_instances']['labels'][:0],
                                         bboxes=s['pred_instances']['bboxes'][:0],
                                         masks=[])) for s in samples]
    table = dr.coco_per_class(ann_file, empty, classes=('a', 'b', 'c', 'd'))
    assert [table[c]['bbox_AP'] for c in 'abcd'] == [0.0, 0.0, 0.0, None]
    # the table printed by the demo
    assert dr.per_class_lines(OrderedDict(
        a=dict(IoU=91.24, Acc=None), bb=dict(IoU=5.0, Acc=10.0))) == [
        'class   IoU   Acc',
        'a      91.2     -',
        'bb      5.0  10.0',
        'mean   48.1  10.0']


def test_seg_per_class_matches_mmseg(tmp_path):
    """Per-class IoU / accuracy of two label maps whose counts are worked out by hand
    (pixels summed over the images, annotation value 0 ignored, class c in neither:
    None); their means are mmseg's IoUMetric mIoU / mAcc on the same maps."""
    import torch
    from mmseg.evaluation import IoUMetric

    from mmscope.apis import demo_results as dr
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
        metric.process({}, [dict(pred_sem_seg=dict(data=(torch.tensor(p) - 1)[None]),
                                 gt_sem_seg=dict(data=g[None]))])
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
    from mmscope.apis import demo_results as dr
    paths = [f'd{i % 3}/{i:06d}.jpg' for i in range(10)]
    shuffled = [paths[i] for i in (7, 2, 9, 0, 5, 1, 8, 3, 6, 4)]
    assert dr.fixed_set(shuffled, 4) == dr.fixed_set(paths, 4) == \
        ['d0/000000.jpg', 'd0/000003.jpg', 'd0/000006.jpg', 'd0/000009.jpg']
    assert dr.fixed_set(shuffled, 20) == sorted(paths, key=osp.basename)
    assert dr.fixed_set(paths, 1) == ['d0/000000.jpg']
    gt, pred = Image.new('RGB', (40, 30), 'red'), Image.new('RGB', (40, 30), 'blue')
    out = str(tmp_path / 'pairs.png')
    assert dr.compose_pairs([('x', gt, pred)] * 3, out, cols=2,
                            legend=[('a', (0, 255, 0))]) == out
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
    from mmscope.apis import demo_results as dr
    image = Image.new('RGB', (32, 32), (100, 100, 100))  # 16 x 16 enlarged twice
    mask = np.zeros((16, 16), bool)
    mask[2:6, 3:7] = True  # rows 4..11, columns 6..13 at factor 2
    out = np.array(dr.draw_instances(image, 2, [mask], [[3, 2, 7, 6]], [''],
                                     [(200, 0, 0)]))
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
        det.append(dict(img_id=img_id, pred_instances=dict(
            bboxes=torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                  a['bbox'][1] + a['bbox'][3]] for a in anns] +
                                [[0., 0., 127., 127.]]),
            labels=torch.tensor([a['category_id'] - 1 for a in anns] + [0]),
            scores=torch.tensor([0.9] * len(anns) + [0.05]),
            masks=[mask_utils.encode(np.asfortranarray(gt.annToMask(a))) for a in anns] +
            [mask_utils.encode(np.ones((128, 128), np.uint8, order='F'))])))
    kpt = COCO(osp.join(out, 'det', 'annotations', 'keypoints_val.json'))
    pose = []
    for a in kpt.loadAnns(kpt.getAnnIds()):
        x, y, w, h = a['bbox']
        info = kpt.loadImgs(a['image_id'])[0]
        pose.append(dict(id=a['id'], img_id=a['image_id'],
                         img_path=osp.join(out, 'det', 'val', info['file_name']),
                         pred_instances=dict(
                             keypoints=np.array(a['keypoints'], np.float32).reshape(
                                 1, -1, 3)[..., :2],
                             keypoint_scores=np.ones((1, 5), np.float32),
                             bboxes=np.array([[x, y, x + w, y + h]], np.float32))))
    cls = []
    for i, path in enumerate(sorted(glob.glob(osp.join(out, 'cls', 'val', '*', '*.jpg')))):
        label = shapes.CLASSES.index(osp.basename(osp.dirname(path)))
        pred = label if i % 2 == 0 else (label + 1) % 4  # every second one wrong
        score = torch.full((4, ), 0.1)
        score[pred] = 0.7
        cls.append(dict(img_path=path, gt_label=torch.tensor([label]),
                        pred_label=torch.tensor([pred]), pred_score=score))
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
    from mmscope.apis import demo_results as dr
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
        objects = np.kron(_seg_of(out, 'val', int(name[:6]) + 1) > 1, np.ones((2, 2), bool))
        painted = (g != plain).any(-1)
        assert painted[objects].mean() > 0.9  # the objects, where they are
        assert ((g != p).any(-1).mean()) < 0.05  # the same but for the score texts
        assert (g0 == g).all() and (p0 == plain).all()
    table, problems = dr.per_class_results('mmdet', out, dumps['det'], {
        'coco/bbox_mAP': 1.0, 'coco/segm_mAP': 1.0})
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

    from mmscope.apis import demo_results as dr
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
        seg = _seg_of(out, 'val', int(name[:6]) + 1)
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

    from mmscope.apis import demo_results as dr
    out, meta, dumps = shapes_with_predictions
    ann = osp.join(out, 'det', 'annotations', 'keypoints_val.json')
    img_dir = osp.join(out, 'det', 'val')
    preds = dr.load_predictions(dumps['pose'])
    pairs = dr.pose_pairs(ann, img_dir, preds, 4)
    assert [n for n, _, _ in pairs] == ['000000.jpg', '000002.jpg', '000003.jpg',
                                       '000005.jpg']
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
    assert [n for n, _, _ in pairs] == [osp.basename(first['img_path']),
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
    pic = dr.draw_gt_vs_pred('mmpretrain', out, dumps['cls'], str(tmp_path / 'c.png'), 8,
                             cols=4)
    assert Image.open(pic).size == (4 * (2 * 288 + 12), 2 * (18 + 308 + 8))
    assert dr.draw_gt_vs_pred('mmocr', out, dumps['cls'], str(tmp_path / 'x.png'), 8) is None


def test_demo_curves(tmp_path):
    """Validation records (a step and metrics, no loss) are read apart from the training
    ones, a resumed run's replacing those it repeated; the metric row is drawn for the
    tasks that have them (by epoch after epoch-based training), and only if one has."""
    from mmscope.apis import demo, demo_results as dr
    cls, det = tmp_path / 'cls', tmp_path / 'det'
    first = [dict(epoch=1, iter=10, loss=2.0, lr=0.1, step=10),
             {'accuracy/top1': 30.0, 'data_time': 0.1, 'time': 0.2, 'step': 1},
             dict(epoch=2, iter=20, loss=1.5, lr=0.1, step=20),
             {'accuracy/top1': 35.0, 'data_time': 0.1, 'time': 0.2, 'step': 2}]
    resumed = [{'accuracy/top1': 40.0, 'step': 2},
               dict(epoch=3, iter=30, loss=1.0, lr=0.1, step=30),
               {'accuracy/top1': 50.0, 'step': 3}]
    for work, runs in ((cls, (first, resumed)), (det, ([dict(iter=5, loss=3.0, lr=.1,
                                                              step=5)], ))):
        for i, recs in enumerate(runs):
            (work / f'2024010{i}_000000' / 'vis_data').mkdir(parents=True)
            (work / f'2024010{i}_000000' / 'vis_data' / 'scalars.json').write_text(
                '\n'.join(json.dumps(r) for r in recs) + '\n')
    val = dr.read_val_scalars(str(cls))
    assert [(r['step'], r['accuracy/top1']) for r in val] == [(1, 30.), (2, 40.), (3, 50.)]
    assert dr.read_val_scalars(str(det)) == []
    assert [r['loss'] for r in demo.read_train_scalars(str(cls))] == [2.0, 1.5, 1.0]
    two = str(tmp_path / 'two.png')
    shown = demo.plot_losses(OrderedDict(cls=str(cls), det=str(det)), two)
    assert shown == {'cls': {'unit': 'epoch',
                             'top-1 acc': [(1, 30.), (2, 40.), (3, 50.)]}}
    one = str(tmp_path / 'one.png')
    assert demo.plot_losses(OrderedDict(det=str(det)), one) == {}
    assert Image.open(two).size[1] == 2 * Image.open(one).size[1] == 2 * 396
    # metrics not among the task's: every metric of the records, as recorded; steps
    # past the last epoch (or no epochs) are iterations
    panels = dict(x=dict(title='x', train=[dict(iter=100, loss=1.0)],
                         val=[dict(mIoU=20.0, aAcc=80.0, step=100)],
                         metrics=(('coco/AP', 'AP', 100.0), )))
    assert dr.plot_curves(panels, str(tmp_path / 'x.png')) == {
        'x': {'unit': 'iteration', 'mIoU': [(100, 20.0)], 'aAcc': [(100, 80.0)]}}


# ------------------------------------------------------------------------ end to end
QUICK_CLS = 'configs/demo/quick/scopevit-xt_shapes-cls_quick.py'

# Hang bounds of the end-to-end runs: no output for IDLE_TIMEOUT seconds, or a run
# several times longer than it takes on 2 idle cores (quick demo: about 4 min; one
# 2-process DDP epoch: about 40 s; the kill-and-resume pair: about 2 min). A machine
# twice as slow, or with one core taken by another job, stays well inside them.
IDLE_TIMEOUT = 600
QUICK_DEMO_TIMEOUT = 3600
RUN_TIMEOUT = 1200


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _scalars(work_dir):
    """Training records of every run (timestamp folder) in ``work_dir``, in run order."""
    runs = []
    for path in sorted(glob.glob(osp.join(work_dir, '2*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            runs.append([r for r in map(json.loads, filter(str.strip, f)) if 'loss' in r])
    return runs


@pytest.fixture(scope='module')
def quick_demo(tmp_path_factory):
    """``tools/demo.py --quick``: all four tasks on the small data set, in a temp dir."""
    root = tmp_path_factory.mktemp('demo')
    dirs = dict(data=str(root / 'data'), work=str(root / 'work'), out=str(root / 'results'))
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--quick',
           '--data-root', dirs['data'], '--work-dir', dirs['work'], '--out-dir', dirs['out']]
    proc = run_watched(cmd, cwd=ROOT, env=one_thread_env(), idle_timeout=IDLE_TIMEOUT,
                       total_timeout=QUICK_DEMO_TIMEOUT,
                       log_file=str(root / 'demo.log'))
    dirs.update(proc=proc)
    return dirs


@pytest.mark.slow
def test_quick_demo_learns(quick_demo):
    from mmscope.apis import demo_results
    proc = quick_demo['proc']
    assert proc.returncode == 0, proc.tail(9000)
    with open(osp.join(quick_demo['out'], 'metrics.json')) as f:
        summary = json.load(f)
    assert summary['passed'] and not summary['failures']
    res = summary['results']
    from mmscope.apis.demo import DEMO_TASKS
    assert list(res) == list(DEMO_TASKS)
    # above chance / baselines, not only above the demo's own thresholds
    for key in ('cls', 'cls-scalable'):
        assert res[key]['metrics']['accuracy/top1'] > \
            summary['baselines']['accuracy/top1'] + 5, key
    assert res['det']['metrics']['coco/bbox_mAP'] > 0
    assert res['det']['metrics']['coco/segm_mAP'] > 0
    assert res['seg']['metrics']['mIoU'] > summary['baselines']['mIoU'] + 2
    assert res['pose']['metrics']['coco/AP'] > summary['baselines']['coco/AP'] + 2
    # the training loss falls
    for task in DEMO_TASKS:
        losses = [r['loss'] for run in _scalars(osp.join(quick_demo['work'], task))
                  for r in run]
        assert len(losses) >= 6, task
        assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), (task, losses)
    # pictures: loss curves, predictions per task, image_demo outputs; the table printed
    for name in ['loss_curves.png'] + [f'{key}_predictions.png' for key in DEMO_TASKS]:
        assert osp.getsize(osp.join(quick_demo['out'], name)) > 1000, name
    # the metric curves: every task that validates during training recorded its metric
    # more than once
    for key, task in DEMO_TASKS.items():
        if task.validate:
            vals = demo_results.read_val_scalars(osp.join(quick_demo['work'], key))
            name = task.metrics[0][0]
            assert len([r for r in vals if name in r]) >= 2, (key, vals)
    assert len(os.listdir(osp.join(quick_demo['out'], 'pose'))) == 8  # of the test pictures
    # ground truth next to the predictions for every task; per-class tables whose class
    # means are the reported metrics (detection, segmentation), printed
    for key, r in res.items():
        assert osp.getsize(osp.join(quick_demo['out'], f'{key}_gt_vs_pred.png')) > 1000, key
        kind = demo_results.RESULT_KINDS[DEMO_TASKS[key].scope]
        if kind.per_class is not None:
            assert demo_results.check_class_means(r['per_class'], r['raw'], kind.means) == []
    assert len(res['det']['per_class']) == 4 and len(res['seg']['per_class']) == 5
    assert 'per class (%), segmentation' in proc.output
    for task in DEMO_TASKS:
        assert os.listdir(osp.join(quick_demo['out'], 'image_demo', task)), task
    assert 'PASS' in proc.output and quick_demo['out'] in proc.output


@pytest.mark.slow
def test_onnx_models_give_the_demos_metrics(quick_demo, tmp_path, monkeypatch):
    """The quick demo's classifier, detector (mmdeploy), segmentor and pose estimator
    exported with tools/deployment/pytorch2onnx.py, then evaluated with onnxruntime on
    the demo's validation data (mmscope.deploy.evaluate_onnx): top-1 and mIoU exactly
    what tools/test.py measured with PyTorch, bbox mAP and keypoint AP (flip test
    included) within 0.1 (points): a keypoint's quarter-pixel shift follows the sign of
    a difference of two neighbouring heatmap values, which rounding can flip."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('mmdeploy')
    from mmscope.deploy.evaluate import evaluate_onnx
    assert quick_demo['proc'].returncode == 0, quick_demo['proc'].tail(3000)
    with open(osp.join(quick_demo['out'], 'metrics.json')) as f:
        results = json.load(f)['results']
    monkeypatch.setenv('MMSCOPE_SHAPES_ROOT', quick_demo['data'])
    image = sorted(glob.glob(osp.join(quick_demo['data'], 'det', 'val', '*.jpg')))[0]
    cases = [('cls', 'configs/demo/quick/scopevit-xt_shapes-cls_quick.py', 'accuracy/top1',
              0., ['--shape', '64', '64']),
             ('seg', 'configs/demo/quick/upernet_scalablevit-xs_shapes_quick.py', 'mIoU', 0.,
              ['--shape', '64', '64']),
             ('det', 'configs/demo/quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py',
              'coco/bbox_mAP', 0.001, ['--image', image]),
             ('pose', 'configs/demo/quick/td-hm_scopevit-xt_shapes-kpt_quick.py', 'coco/AP',
              0.001, ['--shape', '64', '64'])]
    for task, config, metric, tol, extra in cases:
        checkpoint = results[task]['checkpoint']
        out = str(tmp_path / f'{task}.onnx')
        proc = subprocess.run(
            [sys.executable, 'tools/deployment/pytorch2onnx.py', config, checkpoint, '--out',
             out] + extra, cwd=ROOT, capture_output=True, text=True, timeout=1200,
            env=one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data']))
        assert proc.returncode == 0, (task, proc.stderr[-3000:])
        got = evaluate_onnx(osp.join(ROOT, config), out, checkpoint, threads=1)[metric]
        want = results[task]['raw'][metric]
        assert abs(got - want) <= tol, (task, metric, got, want)


@pytest.mark.slow
def test_onnx_retinanet_gives_pytorchs_detections(quick_demo, tmp_path, monkeypatch):
    """RetinaNet + ScopeViT-XT (configs/demo/retinanet_scopevit-xt_fpn_shapes.py, 100
    iterations from the quick demo's classifier) exported through mmdeploy by
    tools/deployment/pytorch2onnx.py, which compares its detections on an image with
    PyTorch's and writes nothing unless they agree (boxes within 1e-4 of the input side,
    scores within 1e-4; some detections above the cut are checked); bbox mAP through onnxruntime equals tools/test.py's within 0.1
    (points)."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('mmdeploy')
    from mmscope.apis.demo import read_test_metrics
    from mmscope.deploy.evaluate import evaluate_onnx
    assert quick_demo['proc'].returncode == 0, quick_demo['proc'].tail(3000)
    with open(osp.join(quick_demo['out'], 'metrics.json')) as f:
        cls_checkpoint = json.load(f)['results']['cls']['checkpoint']
    config = 'configs/demo/retinanet_scopevit-xt_fpn_shapes.py'
    work = str(tmp_path / 'retinanet')
    env = one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data'],
                         MMSCOPE_DEMO_CLS_CKPT=cls_checkpoint)
    proc = run_watched([sys.executable, 'tools/train.py', config, '--work-dir', work,
                        '--cfg-options', 'train_cfg.max_iters=100'],
                       cwd=ROOT, env=env, idle_timeout=IDLE_TIMEOUT, total_timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.tail()
    checkpoint = osp.join(work, 'iter_100.pth')
    proc = run_watched([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
                        osp.join(work, 'test')],
                       cwd=ROOT, env=env, idle_timeout=IDLE_TIMEOUT, total_timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.tail()
    want = read_test_metrics(osp.join(work, 'test'))['coco/bbox_mAP']

    monkeypatch.setenv('MMSCOPE_SHAPES_ROOT', quick_demo['data'])
    image = sorted(glob.glob(osp.join(quick_demo['data'], 'det', 'val', '*.jpg')))[0]
    out = str(tmp_path / 'retinanet.onnx')
    proc = subprocess.run([sys.executable, 'tools/deployment/pytorch2onnx.py', config,
                           checkpoint, '--out', out, '--image', image],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.rindex('\n{') + 1:])
    assert report['kind'] == 'detector' and report['n_checked'] > 0, report
    got = evaluate_onnx(osp.join(ROOT, config), out, checkpoint, threads=1)['coco/bbox_mAP']
    assert abs(got - want) <= 0.001, (got, want)


def _dist_env(quick_demo, **extra):
    return one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data'], PYTHON=sys.executable,
                          PORT=str(_free_port()), **extra)


def _dist_train(quick_demo, work, config=QUICK_CLS, env=None):
    return run_watched(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config, '2', '--work-dir', work,
         '--cfg-options', 'train_cfg.max_epochs=1'],
        cwd=ROOT, env=env or _dist_env(quick_demo), idle_timeout=IDLE_TIMEOUT,
        total_timeout=RUN_TIMEOUT)


@pytest.mark.slow
def test_dist_train_two_processes(quick_demo, tmp_path):
    """tools/dist_train.sh CONFIG 2: DDP with 2 CPU processes (gloo) exits 0 on both
    ranks, with no gradient-layout copy; tools/test.py reads the checkpoint."""
    work = str(tmp_path / 'dist')
    proc = _dist_train(quick_demo, work)
    assert proc.returncode == 0, proc.tail()
    # an exit abort of a finished rank (gloo torn down by static destructors) and the
    # DDP warning for gradients laid out unlike their parameters
    assert 'terminate called' not in proc.output, proc.tail()
    assert 'Grad strides do not match' not in proc.output, proc.tail()
    (run, ) = _scalars(work)
    assert run and all(np.isfinite(r['loss']) for r in run)
    with open(osp.join(quick_demo['data'], 'meta.json')) as f:
        n_train = json.load(f)['cls_train']
    # 2 processes x 32 images per iteration: half the iterations of one process
    ckpt = osp.join(work, 'epoch_1.pth')
    from mmscope.utils.checkpoint import safe_load
    meta = safe_load(ckpt, map_location='cpu')['meta']
    assert (meta['epoch'], meta['iter']) == (1, -(-n_train // 64))
    test = run_watched(
        [sys.executable, 'tools/test.py', QUICK_CLS, ckpt, '--work-dir', work + '/test'],
        cwd=ROOT, env=_dist_env(quick_demo), idle_timeout=IDLE_TIMEOUT,
        total_timeout=RUN_TIMEOUT)
    assert test.returncode == 0, test.tail(3000)
    assert 'accuracy/top1' in test.output


@pytest.mark.slow
def test_dist_train_failure_fails_loudly(quick_demo, tmp_path):
    """One rank raising in the middle of training fails the job (non-zero exit) with
    that rank's traceback, promptly, instead of hanging or being reported as an abort."""
    work = str(tmp_path / 'dist_fail')
    env = _dist_env(quick_demo, PYTHONPATH=osp.join(ROOT, 'tests', 'fixtures'))
    proc = _dist_train(quick_demo, work, 'tests/fixtures/cls_quick_failing_rank1.py', env=env)
    assert proc.returncode != 0, proc.tail()
    assert 'RuntimeError: injected failure on rank 1 at iteration 3' in proc.output, \
        proc.tail()
    assert '[mmscope] rank 1 failed' in proc.output, proc.tail()
    assert 'terminate called' not in proc.output, proc.tail()
    # the run stopped at the failure: no checkpoint of a finished epoch
    assert not osp.exists(osp.join(work, 'epoch_1.pth'))


@pytest.mark.slow
def test_kill_and_resume(quick_demo, tmp_path):
    """Kill a training run after its first checkpoint; --resume finishes it with the same
    iterations and learning rates as the uninterrupted demo run, and keeps what the first
    run wrote."""
    work = str(tmp_path / 'resume')
    env = one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data'])
    cmd = [sys.executable, 'tools/train.py', QUICK_CLS, '--work-dir', work]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    marker = osp.join(work, 'last_checkpoint')
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline and first.poll() is None:
        if osp.isfile(marker) and open(marker).read().strip().endswith('epoch_1.pth'):
            break
        time.sleep(0.1)
    assert first.poll() is None, 'the run ended before it could be interrupted'
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = {p: osp.getsize(p) for p in glob.glob(osp.join(work, '**', '*'), recursive=True)
              if osp.isfile(p)}
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert not osp.exists(osp.join(work, 'epoch_4.pth'))

    second = run_watched(cmd + ['--resume'], cwd=ROOT, env=env, idle_timeout=IDLE_TIMEOUT,
                         total_timeout=RUN_TIMEOUT)
    assert second.returncode == 0, second.tail(3000)
    assert 'resumed epoch: 1' in second.output
    # nothing written before the interruption is lost or rewritten, except what points at
    # the latest state by design: last_checkpoint, the best-so-far checkpoint (save_best),
    # and the config dump in the work dir root (each run keeps its own copy in
    # <timestamp>/vis_data/config.py)
    pointers = {'last_checkpoint', osp.basename(QUICK_CLS)}
    for path, size in before.items():
        name = osp.basename(path)
        if name in pointers or (name.startswith('best_') and osp.dirname(path) == work):
            continue
        assert osp.isfile(path) and osp.getsize(path) >= size, path
    first_run = sorted(glob.glob(osp.join(work, '2*')))[0]
    assert osp.isfile(osp.join(first_run, 'vis_data', 'config.py'))
    assert osp.isfile(osp.join(work, 'epoch_4.pth'))
    # the same schedule: iterations and learning rates of the uninterrupted demo run
    killed, resumed = _scalars(work)
    (reference, ) = _scalars(osp.join(quick_demo['work'], 'cls'))
    ref = {r['iter']: r['lr'] for r in reference}
    assert killed and resumed[0]['epoch'] == 2  # continues after the saved epoch 1
    assert resumed[-1]['iter'] == reference[-1]['iter']
    for r in killed + resumed:
        assert r['lr'] == pytest.approx(ref[r['iter']], rel=1e-6), r['iter']
