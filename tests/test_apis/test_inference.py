"""Inference (:mod:`mmscope.apis.inference`, ``demo/image_demo.py``) on images of the
demo project's shapes data: the library rows drive it; one result per image; no input
overwritten.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

from helpers import one_thread_env  # noqa: E402

from shapes_demo import shapes  # noqa: E402


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
    with pytest.raises(FileNotFoundError, match='image not found: .*missing.jpg'):
        upscaled([str(tmp_path / 'missing.jpg')], 64, str(tmp))
    text = tmp_path / 'notes.jpg'
    text.write_text('not an image\n')
    with pytest.raises(
            ValueError,
            match=r'notes.jpg: not an image OpenCV can read \(a text '
            r'file.*\.jpg, \.png'):
        upscaled([str(text)], 64, str(tmp))
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
    assert pose.infer_kwargs('/t', 0.3) == dict(
        vis_out_dir=osp.join('/t', 'vis'), kpt_thr=0.3, draw_bbox=True)
    inst = [
        dict(keypoints=[[1, 2]] * 5, keypoint_scores=[0.9, 0.8, 0.7, 0.9, 0.85]),
        dict(keypoints=[[3, 4]] * 5, keypoint_scores=[0.8] * 5)
    ]
    batches = iter([dict(predictions=[inst, inst[:1]]), dict(predictions=[[]])])
    assert pose.predictions(batches) == [inst, inst[:1], []]
    assert pose.summarize(inst, None, 0.3) == '2 instances, 5 keypoints each, mean score 0.82'
    assert pose.summarize(inst[:1], None, 0.3) == '1 instance, 5 keypoints, mean score 0.83'
    assert pose.summarize([], None, 0.3) == 'no instance'


def _random_checkpoint(config, path, classes):
    """A checkpoint of ``config``'s model with its initial (seeded) weights and the
    dataset meta (classes, palette) that a training run would record."""
    import torch

    from mmscope.apis import build_model, load_config
    torch.manual_seed(0)
    model = build_model(load_config(config), init_weights=True)
    palette = [[40 * k, 255 - 40 * k, 128] for k in range(len(classes))]
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=list(classes), palette=palette))), path)
    return path


def test_image_demo_cli_classifier(small_shapes, tmp_path):
    """demo/image_demo.py: a picture per image and one summary line each."""
    out, _ = small_shapes
    config = 'projects/shapes_demo/configs/quick/scopevit-xt_shapes-cls_quick.py'
    ckpt = _random_checkpoint(config, str(tmp_path / 'cls.pth'), shapes.CLASSES)
    images = [
        osp.join(out, 'cls', 'val', 'circle', '000000.jpg'),
        osp.join(out, 'cls', 'val', 'square', '000001.jpg')
    ]
    vis = str(tmp_path / 'vis')
    proc = subprocess.run([
        sys.executable, 'demo/image_demo.py', *images, config, ckpt, '--out-dir', vis, '--device',
        'cpu'
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          env=one_thread_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for image, name in zip(images, ('000000.png', '000001.png')):
        line = re.search(
            rf'\[classification\] {re.escape(image)}: (\w+) \((\d\.\d\d)\)\n'
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
    config = osp.join(ROOT, 'projects/shapes_demo/configs/quick/scopevit-xt_shapes-cls_quick.py')
    ckpt = _random_checkpoint(config, str(tmp_path / 'cls.pth'), shapes.CLASSES)
    sources = [
        osp.join(out, 'cls', 'val', c, f'{i:06d}.jpg')
        for i, c in enumerate(('circle', 'square', 'star'))
    ]
    images = [
        str(tmp_path / 'a' / 'img.jpg'),
        str(tmp_path / 'b' / 'img.jpg'),
        str(tmp_path / 'ow' / 'img.png')
    ]
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
    assert [r['vis'] for r in res
            ] == [osp.join(out_dir, n) for n in ('img_1.png', 'img_2.png', 'img_3.png')]
    assert _digest(images[2]) == before  # the input is untouched
    assert len({_digest(r['vis']) for r in res}) == 3  # three different pictures
    # each image's prediction is the one it gets alone
    for image, r in zip(images, res):
        (alone, ) = inference([image], config, ckpt, str(tmp_path / 'alone'), device='cpu')
        assert alone['summary'] == r['summary'], (image, alone, r)
    assert picture_paths(['x/p.jpg', 'y/p.png', 'p.gif'],
                         'x') == ['x/p.png', 'x/p_1.png', 'x/p_2.png']


@pytest.mark.parametrize(
    'key,config',
    [('seg', 'projects/shapes_demo/configs/quick/upernet_scalablevit-xs_shapes_quick.py'),
     ('det', 'projects/shapes_demo/configs/quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py')])
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
    (res, ) = inference(
        images,
        osp.join(ROOT, config),
        ckpt,
        str(tmp_path / 'vis'),
        device='cpu',
        score_thr=0.0,
        min_size=0)
    classes = shapes.SEG_CLASSES if key == 'seg' else shapes.CLASSES
    named = re.findall(r'([a-z]+) \d', res['summary'])
    assert named and set(named) <= set(classes), res['summary']


@pytest.mark.slow
@pytest.mark.parametrize(
    'key,config',
    [('det', 'projects/shapes_demo/configs/quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py'),
     ('seg', 'projects/shapes_demo/configs/quick/upernet_scalablevit-xs_shapes_quick.py')])
def test_inference_detector_and_segmentor(small_shapes, tmp_path, key, config):
    from mmscope.apis.inference import inference
    out, _ = small_shapes
    classes = shapes.SEG_CLASSES if key == 'seg' else shapes.CLASSES
    ckpt = _random_checkpoint(osp.join(ROOT, config), str(tmp_path / 'm.pth'), classes)
    images = [osp.join(out, 'det', 'val', name) for name in ('000000.jpg', '000001.jpg')]
    res = inference(
        images, osp.join(ROOT, config), ckpt, str(tmp_path / 'vis'), device='cpu', score_thr=0.0)
    assert [r['image'] for r in res] == images
    for r in res:
        assert osp.getsize(r['vis']) > 1000 and r['vis'].endswith('.png')
        if key == 'det':
            assert re.fullmatch(r'\d+ objects: .*|no object', r['summary']), r['summary']
        else:
            assert any(c in r['summary'] for c in classes), r['summary']
