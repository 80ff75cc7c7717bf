"""The synthetic shapes generator: same seed -> identical bytes, and the layouts load
with the tools that read them (pycocotools, mmdet/mmseg/mmpretrain/mmpose datasets).
"""
import filecmp
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from helpers import SMALL_SHAPES, seg_of  # noqa: E402

from shapes_demo import shapes  # noqa: E402


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


# ------------------------------------------------------------------------ generator
def test_generator_is_deterministic(small_shapes, tmp_path):
    out, _ = small_shapes
    again = str(tmp_path / 'b')
    shapes.generate_shapes(again, seed=3, **SMALL_SHAPES)
    files = _files(out)
    assert files == _files(again)
    n = SMALL_SHAPES['num_train'] + SMALL_SHAPES['num_val']
    assert len(files) == 1 + 2 * n + 2 * n + 4  # meta, cls, det+seg imgs, pngs, jsons
    _, mismatch, errors = filecmp.cmpfiles(out, again, files, shallow=False)
    assert not mismatch and not errors
    # another seed gives other pictures
    other = str(tmp_path / 'c')
    shapes.generate_shapes(other, seed=4, **SMALL_SHAPES)
    assert not filecmp.cmp(
        osp.join(out, 'det', 'train', '000000.jpg'),
        osp.join(other, 'det', 'train', '000000.jpg'),
        shallow=False)
    # order-independent: one image rendered alone equals the one written in the batch
    img, objs = shapes.render_scene(3, 'val', 2, SMALL_SHAPES['size'])
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
                         capture_output=True,
                         text=True,
                         check=True)
    assert out.stdout.strip() == '[]', out.stdout


def test_coco_annotations_are_valid(small_shapes):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    out, meta = small_shapes
    size = SMALL_SHAPES['size']
    for split, n in (('train', SMALL_SHAPES['num_train']), ('val', SMALL_SHAPES['num_val'])):
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
                np.testing.assert_allclose([x, y, x + w, y + h], [*xy.min(0), *xy.max(0)],
                                           atol=0.01)
                rle = mask_utils.frPyObjects(ann['segmentation'], size, size)
                m = mask_utils.decode(mask_utils.merge(rle))
                area = float(mask_utils.area(mask_utils.merge(rle)))
                assert area == pytest.approx(ann['area'], rel=0.08)
                # the polygon is exactly the painted object (same pixel convention)
                painted = seg_of(out, split, img_id) == shapes.SEG_BACKGROUND_VALUE + \
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
    assert meta['keypoint_swap'] == dict(
        centre='centre', top='top', bottom='bottom', left='right', right='left')
    assert all(1 <= i <= 5 for link in meta['keypoint_skeleton'] for i in link)
    for split, n in (('train', SMALL_SHAPES['num_train']), ('val', SMALL_SHAPES['num_val'])):
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
            np.testing.assert_allclose([top[1], bottom[1], left[0], right[0]], [y, y + h, x, x + w],
                                       atol=0.02)  # rounding
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
    cfg = Config.fromfile(
        osp.join(ROOT, 'projects/shapes_demo/configs/td-hm_scopevit-xt_shapes-kpt.py'))
    ds = CocoDataset(
        data_root=osp.join(out, 'det'),
        ann_file='annotations/keypoints_val.json',
        data_prefix=dict(img='val/'),
        metainfo=cfg.metainfo,
        bbox_file=None,
        pipeline=[],
        test_mode=True)
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
            assert png.mode == 'L' and png.size == (SMALL_SHAPES['size'], ) * 2
            seg = np.array(png)
            values = set(np.unique(seg).tolist())
            assert values <= set(range(1, len(shapes.SEG_CLASSES) + 1))
            assert shapes.SEG_IGNORE_VALUE not in values
            # the PNG's classes are the COCO objects' classes of the same scene
            img_id = int(name[:-4]) + 1
            cats = {a['category_id'] for a in coco['annotations'] if a['image_id'] == img_id}
            assert values - {shapes.SEG_BACKGROUND_VALUE} == {
                c + shapes.SEG_BACKGROUND_VALUE
                for c in cats
            }


def test_cls_folders_are_valid(small_shapes):
    out, _ = small_shapes
    for split, n in (('train', SMALL_SHAPES['num_train']), ('val', SMALL_SHAPES['num_val'])):
        assert sorted(os.listdir(osp.join(out, 'cls', split))) == sorted(shapes.CLASSES)
        counts = [len(os.listdir(osp.join(out, 'cls', split, c))) for c in shapes.CLASSES]
        assert sum(counts) == n and max(counts) - min(counts) <= 1
        img = Image.open(osp.join(out, 'cls', split, 'circle', '000000.jpg'))
        assert img.size == (SMALL_SHAPES['cls_size'], ) * 2 and img.mode == 'RGB'


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

    cls = ImageNet(
        data_root=osp.join(out, 'cls'), split='val', metainfo=dict(classes=shapes.CLASSES))
    assert len(cls) == SMALL_SHAPES['num_val']
    # folder-layout labels are numbered by sorted folder name: they must agree with CLASSES
    for i in range(len(cls)):
        info = cls.get_data_info(i)
        assert shapes.CLASSES[info['gt_label']] == osp.basename(osp.dirname(info['img_path']))

    det = CocoDataset(
        data_root=osp.join(out, 'det'),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=shapes.CLASSES),
        pipeline=[],
        test_mode=True)
    assert len(det) == SMALL_SHAPES['num_val']
    assert det[0]['instances'][0]['mask'] and det.metainfo['classes'] == shapes.CLASSES

    # ADE20KDataset pins the 150 ADE classes; the demo reads the same layout and label
    # convention with BaseSegDataset and its own classes.
    seg = BaseSegDataset(
        data_root=osp.join(out, 'seg'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        metainfo=dict(classes=shapes.SEG_CLASSES),
        pipeline=[])
    assert len(seg) == SMALL_SHAPES['num_val'] and seg.reduce_zero_label
    results = LoadAnnotations(reduce_zero_label=True)(dict(seg[0], seg_fields=[]))
    values = set(np.unique(results['gt_seg_map']).tolist())
    assert 0 in values and values <= set(range(len(shapes.SEG_CLASSES)))


def test_generate_cli(tmp_path):
    out = str(tmp_path / 'cli')
    cmd = [
        sys.executable,
        osp.join(ROOT, 'projects', 'shapes_demo',
                 'generate_shapes.py'), '--out', out, '--train', '4', '--val', '4', '--size', '64',
        '--cls-train', '4', '--cls-val', '4', '--cls-size', '32', '--seed', '1'
    ]
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
    args = dict(num_train=2, num_val=2, size=64, cls_size=32, seed=1, cls_train=4, cls_val=4)
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
