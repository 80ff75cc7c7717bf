"""A small, seeded "shapes" dataset written in the three layouts the mmscope configs read.

One call of :func:`generate_shapes` writes, under ``out``::

    cls/                      ImageNet / CustomDataset folder layout (mmpretrain)
        train/<class>/<id>.jpg  one object per image, label = its class
        val/<class>/<id>.jpg
    det/                      COCO instances (mmdet), polygon masks
        train/<id>.jpg  val/<id>.jpg
        annotations/instances_train.json  annotations/instances_val.json
        annotations/keypoints_train.json  annotations/keypoints_val.json
                              COCO keypoints (mmpose) of the same objects
    seg/                      ADE20K layout (mmseg ``ADE20KDataset``)
        images/training/<id>.jpg       annotations/training/<id>.png
        images/validation/<id>.jpg     annotations/validation/<id>.png
    meta.json                 parameters, classes, label convention, statistics

``det`` and ``seg`` hold the same multi-object scenes (2 to 5 non-overlapping objects of
random class, size, rotation and colour on a textured background with clutter lines);
``cls`` holds smaller single-object images whose object fills most of the frame
(:data:`CLS_RADIUS`).

The keypoint files hold the same images and objects (same ids, boxes and areas) under one
category ``shape`` with the :data:`KEYPOINTS` of every object: its centre (the mean of its
polygon's vertices) and its top-, bottom-, left- and rightmost vertices, all visible
(``v = 2``). They are defined alike for every class, lie inside the object's box (the
extreme vertices on its edges) and a horizontal flip swaps ``left`` and ``right``
(:data:`KEYPOINT_SWAP`). ``meta.json`` lists them with the skeleton and the OKS sigmas.

Segmentation labels follow ADE20K's ``reduce_zero_label`` convention, which the real
UperNet configs keep: PNG value ``0`` is reserved for "unlabelled" (becomes 255 = ignore
after reduction; the generator never writes it), ``1`` is background and ``1 + k`` is
``CLASSES[k]``. After reduction the segmentor sees ``0 = background, 1 + k = CLASSES[k]``,
i.e. ``SEG_CLASSES``.

Every image comes from its own ``numpy`` generator seeded by ``(seed, part, split,
index)``, so the output is byte-identical for the same arguments and library versions,
whatever the order of generation. Only numpy, OpenCV and Pillow are imported (and
mmengine's progress bar, when :func:`write_shapes` draws one).

:func:`write_shapes` is what ``projects/shapes_demo/generate_shapes.py`` (and the demo)
run: :func:`generate_shapes` with a progress bar, skipped when :func:`is_up_to_date` finds
the same data set already written.
"""
import json
import math
import os
import os.path as osp
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

__all__ = [
    'CLASSES', 'SEG_CLASSES', 'SEG_IGNORE_VALUE', 'SEG_BACKGROUND_VALUE', 'GENERATOR_VERSION',
    'CLS_RADIUS', 'KEYPOINTS', 'KEYPOINT_SKELETON', 'KEYPOINT_SIGMAS', 'KEYPOINT_SWAP',
    'keypoints_of', 'polygon_mask', 'render_scene', 'render_single', 'generate_shapes',
    'count_images', 'is_up_to_date', 'write_shapes'
]

# 3: the keypoint annotations (det/annotations/keypoints_*.json) were added; the other
# files are byte-identical to version 2's. 4: the classification images are object-centric
# (:data:`CLS_RADIUS`); the scenes are byte-identical to version 3's
GENERATOR_VERSION = 4
#: Circumradius of the object of a classification image, as fractions of the image size.
#: The object fills the frame, as in an ImageNet photo: a circle covers 28-61% of the
#: image, a triangle about 10-25%. With 0.18-0.34 (versions 1-3: 10-36% and 4-15%) the images
#: were mostly background, and every classifier trained from scratch in the demo's budget
#: stopped near 50% top-1, a ResNet-18 with mmpretrain's defaults too (docs/demo.md).
CLS_RADIUS = (0.30, 0.44)
# Alphabetical: mmpretrain's folder layout numbers the classes by sorted folder name.
CLASSES = ('circle', 'square', 'star', 'triangle')
SEG_CLASSES = ('background', ) + CLASSES
SEG_IGNORE_VALUE = 0  # PNG value of unlabelled pixels (ADE20K convention, unused here)
SEG_BACKGROUND_VALUE = 1  # PNG value of background; class k is written as 2 + k
JPEG_QUALITY = 92

# Keypoints of every object (COCO keypoints, category ``shape``): the centre and the
# extreme vertices, in image directions (y down: ``top`` has the smallest y).
KEYPOINTS = ('centre', 'top', 'bottom', 'left', 'right')
# COCO skeleton links (1-based keypoint indices): the centre to each extreme point
KEYPOINT_SKELETON = ((1, 2), (1, 3), (1, 4), (1, 5))
# OKS sigmas: the centre is pinned down more tightly than the extreme vertices, which can
# jump between two corners when an edge is nearly horizontal or vertical
KEYPOINT_SIGMAS = (0.05, 0.08, 0.08, 0.08, 0.08)
# the keypoint each keypoint becomes under a horizontal flip
KEYPOINT_SWAP = dict(centre='centre', top='top', bottom='bottom', left='right', right='left')

# Sub-seeds that keep the parts and splits on independent random streams.
_PART_IDS = {'cls': 1, 'scene': 2}
_SPLIT_IDS = {'train': 1, 'val': 2}


# ----------------------------------------------------------------------------- drawing
def _shape_polygon(cls_name: str, cx: float, cy: float, radius: float, angle: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Vertices (N, 2) of one shape of circumradius ``radius`` rotated by ``angle``."""
    if cls_name == 'circle':
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        r = np.full_like(t, radius)
    elif cls_name == 'square':
        t = np.arange(4) * (math.pi / 2) + math.pi / 4
        r = np.full(4, radius)
    elif cls_name == 'triangle':
        t = np.arange(3) * (2 * math.pi / 3) + rng.uniform(-0.15, 0.15, 3)
        r = radius * rng.uniform(0.9, 1.0, 3)
    elif cls_name == 'star':
        inner = rng.uniform(0.4, 0.55)
        t = np.arange(10) * (math.pi / 5)
        r = radius * np.where(np.arange(10) % 2 == 0, 1.0, inner)
    else:
        raise ValueError(f'unknown shape {cls_name!r}')
    t = t + angle
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def polygon_mask(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    """Boolean (h, w) mask of the pixels whose centre ``(x + 0.5, y + 0.5)`` lies inside
    ``poly`` (even-odd rule): COCO's pixel convention, so the mask agrees with what
    pycocotools rasterises from the same polygon (OpenCV's fillPoly adds the boundary)."""
    mask = np.zeros((h, w), bool)
    x0, y0 = np.floor(poly.min(0)).astype(int).clip(0)
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 1
    x1, y1 = min(x1, w), min(y1, h)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    inside = np.zeros(ys.shape, bool)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0)):
        if ay == by:
            continue
        crosses = (ay > ys) != (by > ys)
        inside ^= crosses & (xs < ax + (ys - ay) * (bx - ax) / (by - ay))
    mask[y0:y1, x0:x1] = inside
    return mask


def keypoints_of(poly: np.ndarray) -> np.ndarray:
    """The :data:`KEYPOINTS` (5, 2) of the shape with vertices ``poly`` (N, 2): the
    vertex mean, then the vertices of smallest y, largest y, smallest x and largest x
    (the first of equal ones)."""
    return np.stack([
        poly.mean(0), poly[np.argmin(poly[:, 1])], poly[np.argmax(poly[:, 1])],
        poly[np.argmin(poly[:, 0])], poly[np.argmax(poly[:, 0])]
    ])


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (float32, 0..255) from a wide HSV range."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(70, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A textured background: blend of two colours by a gradient, stripes, checkerboard
    or low-frequency blobs, plus clutter lines and pixel noise. float32 (h, w, 3)."""
    c1 = _random_colour(rng) * rng.uniform(0.5, 1.0)
    c2 = _random_colour(rng) * rng.uniform(0.5, 1.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(0, 4)
    theta = rng.uniform(0, math.pi)
    proj = xx * math.cos(theta) + yy * math.sin(theta)
    if kind == 0:  # linear gradient
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    elif kind == 1:  # soft stripes
        period = rng.uniform(6, 24)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * proj / period + rng.uniform(0, 2 * math.pi))
    elif kind == 2:  # checkerboard
        cell = int(rng.integers(6, 20))
        t = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 0.8)
    else:  # low-frequency blobs
        small = rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7)))).astype(np.float32)
        t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    img = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    for _ in range(int(rng.integers(0, 4))):  # clutter: thin lines that are not objects
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p1, p2, _random_colour(rng).tolist(), int(rng.integers(1, 3)))
    return img


def _paint(img: np.ndarray, poly: np.ndarray, bg_mean: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Fill ``poly`` on ``img`` (in place) with a colour distinct from ``bg_mean``;
    return the object's boolean mask."""
    h, w = img.shape[:2]
    m = polygon_mask(poly, h, w)
    colour = _random_colour(rng)
    for _ in range(20):  # keep the object visible against its surroundings
        if np.linalg.norm(colour - bg_mean) > 90:
            break
        colour = _random_colour(rng)
    shade = 1 + rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, w, dtype=np.float32)[None]
    fill = np.broadcast_to(colour[None, None] * shade[..., None], img.shape)
    img[m] = fill[m]
    return m


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0, rng.uniform(3, 10), img.shape).astype(np.float32)
    return np.clip(img + noise, 0, 255).round().astype(np.uint8)


def _rng(seed: int, part: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _PART_IDS[part], _SPLIT_IDS[split], int(index)])


def render_single(seed: int, split: str, index: int, size: int = 64) -> Tuple[np.ndarray, int]:
    """One classification image (RGB uint8, ``size`` x ``size``) and its label.

    Labels cycle through the classes (``index % len(CLASSES)``) so splits are balanced.
    """
    rng = _rng(seed, 'cls', split, index)
    label = index % len(CLASSES)
    img = _background(size, size, rng)
    radius = rng.uniform(*CLS_RADIUS) * size
    margin = radius + 2
    cx, cy = rng.uniform(margin, size - margin, 2)
    poly = _shape_polygon(CLASSES[label], cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
    _paint(img, poly, img.reshape(-1, 3).mean(0), rng)
    return _finish(img, rng), label


def render_scene(seed: int,
                 split: str,
                 index: int,
                 size: int = 128,
                 min_objects: int = 2,
                 max_objects: int = 5) -> Tuple[np.ndarray, List[dict]]:
    """One multi-object scene (RGB uint8, ``size`` x ``size``) and its objects.

    Objects do not overlap (their bounding boxes keep a 2-pixel gap), so each object's
    polygon is exactly its visible region. Each object is a dict with ``label`` (index in
    ``CLASSES``), ``polygon`` (N, 2) float array in pixel coordinates, ``bbox`` (x, y, w, h)
    and ``mask`` (bool array).
    """
    rng = _rng(seed, 'scene', split, index)
    img = _background(size, size, rng)
    bg_mean = img.reshape(-1, 3).mean(0)
    n_target = int(rng.integers(min_objects, max_objects + 1))
    placed: List[Tuple[float, float, float, float]] = []
    objects: List[dict] = []
    r_min, r_max = 0.1 * size, 0.22 * size  # circumradius: 13..28 px at size 128
    for _ in range(n_target):
        label = int(rng.integers(0, len(CLASSES)))
        for _attempt in range(30):
            radius = rng.uniform(r_min, r_max)
            cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
            poly = _shape_polygon(CLASSES[label], cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            if all(x0 > b[2] + 2 or x1 < b[0] - 2 or y0 > b[3] + 2 or y1 < b[1] - 2
                   for b in placed):
                break
        else:
            continue  # no room left for this object
        placed.append((x0, y0, x1, y1))
        mask = _paint(img, poly, bg_mean, rng)
        objects.append(
            dict(
                label=label,
                polygon=poly,
                mask=mask,
                bbox=(float(x0), float(y0), float(x1 - x0), float(y1 - y0))))
    return _finish(img, rng), objects


# ----------------------------------------------------------------------------- writing
def _save_jpg(path: str, img: np.ndarray) -> None:
    Image.fromarray(img).save(path, format='JPEG', quality=JPEG_QUALITY)


def count_images(num_train: int,
                 num_val: int,
                 cls_train: Optional[int] = None,
                 cls_val: Optional[int] = None) -> int:
    """Number of images :func:`generate_shapes` renders (classification + scenes)."""
    cls_train = num_train if cls_train is None else cls_train
    cls_val = num_val if cls_val is None else cls_val
    return num_train + num_val + cls_train + cls_val


def _coco_skeleton(split: str) -> dict:
    return dict(
        info=dict(
            description=f'mmscope synthetic shapes ({split})',
            version='1.0',
            year=2024,
            contributor='mmscope',
            date_created='2024-01-01'),
        licenses=[],
        images=[],
        annotations=[],
        categories=[dict(id=k + 1, name=n, supercategory='shape') for k, n in enumerate(CLASSES)])


def _keypoint_category() -> dict:
    """The one category of the keypoint files: every object, whatever its class."""
    return dict(
        id=1,
        name='shape',
        supercategory='shape',
        keypoints=list(KEYPOINTS),
        skeleton=[list(link) for link in KEYPOINT_SKELETON])


def _keypoint_annotation(ann: dict, poly: np.ndarray) -> dict:
    """The keypoint annotation of the object of instance annotation ``ann`` (same id,
    image, box and area) with the vertices ``poly``."""
    kpts = [[round(float(x), 2), round(float(y), 2), 2] for x, y in keypoints_of(poly)]
    return dict(
        id=ann['id'],
        image_id=ann['image_id'],
        category_id=1,
        shape_class=ann['category_id'] - 1,
        bbox=ann['bbox'],
        area=ann['area'],
        iscrowd=0,
        num_keypoints=len(kpts),
        keypoints=sum(kpts, []))


def generate_shapes(out: str,
                    num_train: int = 400,
                    num_val: int = 100,
                    size: int = 128,
                    cls_size: int = 64,
                    seed: int = 0,
                    cls_train: Optional[int] = None,
                    cls_val: Optional[int] = None,
                    progress: Optional[Callable[[], None]] = None) -> Dict:
    """Write the dataset under ``out`` (see the module doc) and return its ``meta`` dict.

    ``num_train`` / ``num_val`` scenes (det + seg) and ``cls_train`` / ``cls_val``
    classification images (default: as many as scenes). ``progress`` is called once per
    rendered image.
    """
    cls_train = num_train if cls_train is None else cls_train
    cls_val = num_val if cls_val is None else cls_val
    assert min(num_train, num_val, cls_train, cls_val) > 0 and size >= 64 and cls_size >= 32
    tick = progress or (lambda: None)
    for part in ('cls', 'det', 'seg', 'meta.json'):  # no stale files of an earlier run
        path = osp.join(out, part)
        if osp.isdir(path):
            shutil.rmtree(path)
        elif osp.exists(path):
            os.remove(path)
    stats = dict(scene_objects={}, seg_pixel_counts={})
    for split, n, n_cls in (('train', num_train, cls_train), ('val', num_val, cls_val)):
        # classification: ImageNet folder layout
        for name in CLASSES:
            os.makedirs(osp.join(out, 'cls', split, name), exist_ok=True)
        for i in range(n_cls):
            img, label = render_single(seed, split, i, cls_size)
            _save_jpg(osp.join(out, 'cls', split, CLASSES[label], f'{i:06d}.jpg'), img)
            tick()
        # scenes: COCO instances + ADE20K layout
        ade_split = 'training' if split == 'train' else 'validation'
        det_img_dir = osp.join(out, 'det', split)
        seg_img_dir = osp.join(out, 'seg', 'images', ade_split)
        seg_ann_dir = osp.join(out, 'seg', 'annotations', ade_split)
        for d in (det_img_dir, seg_img_dir, seg_ann_dir, osp.join(out, 'det', 'annotations')):
            os.makedirs(d, exist_ok=True)
        coco = _coco_skeleton(split)
        # the same images (the same list) and objects, one keypoint category
        kpt_coco = dict(coco, annotations=[], categories=[_keypoint_category()])
        pixel_counts = np.zeros(len(SEG_CLASSES), np.int64)
        n_objects = 0
        for i in range(n):
            img, objects = render_scene(seed, split, i, size)
            name = f'{i:06d}'
            _save_jpg(osp.join(det_img_dir, name + '.jpg'), img)
            _save_jpg(osp.join(seg_img_dir, name + '.jpg'), img)
            seg = np.full((size, size), SEG_BACKGROUND_VALUE, np.uint8)
            image_id = i + 1
            coco['images'].append(
                dict(id=image_id, file_name=name + '.jpg', height=size, width=size))
            for obj in objects:
                seg[obj['mask']] = SEG_BACKGROUND_VALUE + 1 + obj['label']
                coco['annotations'].append(
                    dict(
                        id=len(coco['annotations']) + 1,
                        image_id=image_id,
                        category_id=obj['label'] + 1,
                        segmentation=[[round(float(v), 2) for v in obj['polygon'].ravel()]],
                        area=int(obj['mask'].sum()),
                        bbox=[round(v, 2) for v in obj['bbox']],
                        iscrowd=0))
                kpt_coco['annotations'].append(
                    _keypoint_annotation(coco['annotations'][-1], obj['polygon']))
            n_objects += len(objects)
            Image.fromarray(seg, mode='L').save(osp.join(seg_ann_dir, name + '.png'))
            pixel_counts += np.bincount(
                seg.ravel() - SEG_BACKGROUND_VALUE, minlength=len(SEG_CLASSES))
            tick()
        with open(osp.join(out, 'det', 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(coco, f, separators=(',', ':'))
        with open(osp.join(out, 'det', 'annotations', f'keypoints_{split}.json'), 'w') as f:
            json.dump(kpt_coco, f, separators=(',', ':'))
        stats['scene_objects'][split] = n_objects
        stats['seg_pixel_counts'][split] = pixel_counts.tolist()
    meta = dict(
        generator_version=GENERATOR_VERSION,
        seed=seed,
        num_train=num_train,
        num_val=num_val,
        size=size,
        cls_size=cls_size,
        cls_train=cls_train,
        cls_val=cls_val,
        classes=list(CLASSES),
        seg_classes=list(SEG_CLASSES),
        seg_png_values=dict(
            ignore=SEG_IGNORE_VALUE,
            background=SEG_BACKGROUND_VALUE,
            **{
                c: SEG_BACKGROUND_VALUE + 1 + k
                for k, c in enumerate(CLASSES)
            }),
        keypoints=list(KEYPOINTS),
        keypoint_skeleton=[list(x) for x in KEYPOINT_SKELETON],
        keypoint_sigmas=list(KEYPOINT_SIGMAS),
        keypoint_swap=dict(KEYPOINT_SWAP),
        stats=stats)
    with open(osp.join(out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    return meta


# ----------------------------------------------------------------------------- command line
def is_up_to_date(out: str, num_train: int, num_val: int, size: int, cls_size: int, seed: int,
                  cls_train: int, cls_val: int) -> bool:
    """True when ``out`` was completely written by this generator (this
    :data:`GENERATOR_VERSION`) with these arguments: its ``meta.json``, written last,
    says so."""
    try:
        with open(osp.join(out, 'meta.json')) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    want = dict(
        generator_version=GENERATOR_VERSION,
        seed=seed,
        num_train=num_train,
        num_val=num_val,
        size=size,
        cls_size=cls_size,
        cls_train=cls_train,
        cls_val=cls_val)
    return all(meta.get(k) == v for k, v in want.items())


def write_shapes(out: str,
                 num_train: int = 400,
                 num_val: int = 100,
                 size: int = 128,
                 cls_size: int = 64,
                 seed: int = 0,
                 cls_train: int = 2000,
                 cls_val: int = 400,
                 force: bool = False) -> bool:
    """:func:`generate_shapes` as the command line runs it: nothing is written when
    :func:`is_up_to_date` (unless ``force``); otherwise a progress bar and a closing
    line of statistics are printed. Returns whether the data set was written."""
    if not force and is_up_to_date(out, num_train, num_val, size, cls_size, seed, cls_train,
                                   cls_val):
        print(f'[shapes] {out} is up to date (seed {seed}); --force to rewrite')
        return False
    from mmengine.utils import ProgressBar
    total = count_images(num_train, num_val, cls_train, cls_val)
    print(f'[shapes] writing {total} images to {out} (seed {seed})')
    t0 = time.time()
    bar = ProgressBar(total)
    meta = generate_shapes(
        out, num_train, num_val, size, cls_size, seed, cls_train, cls_val, progress=bar.update)
    sys.stdout.write('\n')
    objs = meta['stats']['scene_objects']
    print(f'[shapes] done in {time.time() - t0:.1f}s: classes {meta["classes"]}, '
          f'scene objects train={objs["train"]} val={objs["val"]}')
    return True
