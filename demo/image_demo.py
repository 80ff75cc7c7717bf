"""Run one of our models on any image and save the picture of its prediction.

    python demo/image_demo.py IMAGE [IMAGE ...] CONFIG CHECKPOINT [--out-dir DIR]
        [--device cpu|cuda] [--score-thr 0.3] [--min-size 384] [--amp [--amp-dtype bf16|fp16]]

The task comes from the config's ``default_scope``: mmpretrain configs go through
``ImageClassificationInferencer``, mmdet configs through ``DetInferencer``, mmseg
configs through ``MMSegInferencer`` and mmpose configs through ``MMPoseInferencer``
(top-down, with the whole image as the one box: no detector). Pictures are written under
``--out-dir`` (default ``results/image_demo``) with the image's file name, numbered
(``img_1.png``) where that would overwrite an input image or another image's picture; a
one-line summary of each prediction is printed.

Small images (like the 64/128-pixel demo images) are upscaled to ``--min-size`` before
inference, only so the drawing is legible: every config's test pipeline resizes its input
to the model's own input size anyway. The inference is :func:`mmscope.apis.inference.
inference`.
"""
import argparse
import sys

import mmscope  # noqa: F401  (safe checkpoint loading on torch >= 2.6)
from mmscope.apis.inference import inference, library_of_config


def parse_args(argv=None):
    """The command line (see the module doc): ``args.images``, ``args.config`` and
    ``args.checkpoint`` are split out of the positional arguments."""
    p = argparse.ArgumentParser(description='Inference on images with an mmscope config')
    p.add_argument(
        'inputs',
        nargs='+',
        metavar='IMAGE CONFIG CHECKPOINT',
        help='one or more images, then the config and the checkpoint')
    p.add_argument(
        '--out-dir',
        default='results/image_demo',
        help='where the pictures go (default results/image_demo)')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    p.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection (pose: keypoint) score threshold for drawing '
        '(default 0.3)')
    p.add_argument(
        '--min-size',
        type=int,
        default=384,
        help='upscale smaller images to this short side for drawing (0: never)')
    p.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: backbone and neck under autocast (bf16 on the CPU, '
        'fp16 on CUDA), heads in fp32')
    p.add_argument(
        '--amp-dtype',
        choices=['bf16', 'fp16'],
        default=None,
        help='autocast dtype of --amp (fp16 is refused on the CPU)')
    args = p.parse_args(argv)
    if len(args.inputs) < 3:
        p.error('give IMAGE [IMAGE ...] CONFIG CHECKPOINT')
    if args.amp_dtype is not None and not args.amp:
        p.error('--amp-dtype chooses the dtype of --amp: add --amp')
    args.images, args.config, args.checkpoint = args.inputs[:-2], *args.inputs[-2:]
    return args


def main(argv=None):
    """Predict, draw, and print ``[task] image: summary -> picture`` per image."""
    args = parse_args(argv)
    task = library_of_config(args.config).title
    for r in inference(args.images, args.config, args.checkpoint, args.out_dir, args.device,
                       args.score_thr, args.min_size, args.amp, args.amp_dtype):
        print(f"[{task}] {r['image']}: {r['summary']}\n    -> {r['vis']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
