"""Run one of our models on any image and save the picture of its prediction.

    python demo/image_demo.py IMAGE [IMAGE ...] CONFIG CHECKPOINT [--out-dir DIR]
        [--device cpu|cuda] [--score-thr 0.3] [--min-size 384]

The task comes from the config's ``default_scope``: mmpretrain configs go through
``ImageClassificationInferencer``, mmdet configs through ``DetInferencer`` and mmseg
configs through ``MMSegInferencer``. Pictures are written under ``--out-dir`` (default
``results/image_demo``) with the image's file name; a one-line summary of each
prediction is printed.

Small images (like the 64/128-pixel demo images) are upscaled to ``--min-size`` before
inference, only so the drawing is legible: every config's test pipeline resizes its input
to the model's own input size anyway.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Dict, List, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mmscope  # noqa: E402,F401  (safe checkpoint loading on torch >= 2.6)

TASKS = {'mmpretrain': 'classification', 'mmdet': 'detection', 'mmseg': 'segmentation'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Inference on images with an mmscope config')
    p.add_argument('inputs', nargs='+', metavar='IMAGE CONFIG CHECKPOINT',
                   help='one or more images, then the config and the checkpoint')
    p.add_argument('--out-dir', default='results/image_demo',
                   help='where the pictures go (default results/image_demo)')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='detection score threshold for drawing (default 0.3)')
    p.add_argument('--min-size', type=int, default=384,
                   help='upscale smaller images to this short side for drawing (0: never)')
    args = p.parse_args(argv)
    if len(args.inputs) < 3:
        p.error('give IMAGE [IMAGE ...] CONFIG CHECKPOINT')
    args.images, args.config, args.checkpoint = args.inputs[:-2], *args.inputs[-2:]
    return args


def task_of(config: str) -> str:
    from mmengine.config import Config
    scope = Config.fromfile(config).get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'{config}: default_scope {scope!r} is none of {sorted(TASKS)}')
    return scope


def _upscaled(images: Sequence[str], min_size: int, tmp: str) -> List[str]:
    """Copies of ``images`` (same file names) whose short side is at least ``min_size``."""
    import cv2
    out = []
    for path in images:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f'cannot read image {path}')
        short = min(img.shape[:2])
        if not min_size or short >= min_size:
            out.append(path)
            continue
        f = min_size / short
        big = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        dst = osp.join(tmp, osp.basename(path))
        cv2.imwrite(dst, big)
        out.append(dst)
    return out


def _find(folder: str, name: str) -> str:
    stem = osp.splitext(name)[0]
    for f in sorted(os.listdir(folder)):
        if osp.splitext(f)[0] == stem:
            return osp.join(folder, f)
    raise FileNotFoundError(f'no visualisation of {name} in {folder}')


def inference(images: Sequence[str], config: str, checkpoint: str, out_dir: str,
              device=None, score_thr: float = 0.3, min_size: int = 384) -> List[Dict]:
    """Predict ``images`` with ``config`` + ``checkpoint``; draw into ``out_dir``.

    Returns one dict per image: ``image``, ``vis`` (the picture written) and ``summary``.
    """
    import torch
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    scope = task_of(config)
    os.makedirs(out_dir, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = _upscaled(images, min_size, tmp)
        vis_dir = osp.join(tmp, 'vis')
        if scope == 'mmpretrain':
            from mmpretrain.apis import ImageClassificationInferencer
            inferencer = ImageClassificationInferencer(config, pretrained=checkpoint,
                                                       device=device)
            preds = inferencer(inputs, show_dir=vis_dir)
            summaries = [f"{p['pred_class']} ({p['pred_score']:.2f})" for p in preds]
        elif scope == 'mmdet':
            from mmdet.apis import DetInferencer
            inferencer = DetInferencer(config, weights=checkpoint, device=device,
                                       show_progress=False)
            preds = inferencer(inputs, out_dir=tmp, pred_score_thr=score_thr)['predictions']
            classes = inferencer.model.dataset_meta['classes']
            summaries = []
            for p in preds:
                kept = [(classes[lb], s) for lb, s in zip(p['labels'], p['scores'])
                        if s >= score_thr]
                summaries.append(f'{len(kept)} objects: ' + ', '.join(
                    f'{c} {s:.2f}' for c, s in kept) if kept else 'no object')
        else:
            import numpy as np
            from mmseg.apis import MMSegInferencer
            inferencer = MMSegInferencer(config, weights=checkpoint, device=device)
            preds = inferencer(inputs, out_dir=tmp, return_datasamples=True)
            preds = preds if isinstance(preds, list) else [preds]
            classes = inferencer.model.dataset_meta['classes']
            summaries = []
            for p in preds:
                seg = p.pred_sem_seg.data.cpu().numpy().ravel()
                frac = np.bincount(seg, minlength=len(classes)) / seg.size
                summaries.append(', '.join(f'{classes[k]} {frac[k]:.0%}'
                                           for k in np.argsort(-frac) if frac[k] >= 0.005))
        for path, summary in zip(images, summaries):
            dst = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '.png')
            src = _find(vis_dir, osp.basename(path))
            if src.endswith('.png'):
                shutil.copyfile(src, dst)
            else:
                import cv2
                cv2.imwrite(dst, cv2.imread(src))
            results.append(dict(image=path, vis=dst, summary=summary))
    return results


def main(argv=None):
    args = parse_args(argv)
    task = TASKS[task_of(args.config)]
    for r in inference(args.images, args.config, args.checkpoint, args.out_dir,
                       args.device, args.score_thr, args.min_size):
        print(f"[{task}] {r['image']}: {r['summary']}\n    -> {r['vis']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
