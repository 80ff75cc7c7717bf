"""Export the model of a config + checkpoint to ONNX, checked with onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx \
        [--shape H W | --image IMG] [--exporter torchscript|dynamo] [--opset 17]

Classifiers, segmentors (whole image) and pose estimators are exported with dynamic
batch / height / width and checked against PyTorch at the example size and at padded,
tall, wide and 32x32 sizes (--check-size to choose); detectors (RetinaNet, Mask R-CNN)
go through mmdeploy (needs --image). Nothing is written if a check fails. The logic is
in mmscope.deploy (docs/deployment.md).
"""
import argparse
import json

from mmengine.config import DictAction

from mmscope.deploy import EXPORTERS
from mmscope.deploy.from_config import export_config


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='weights to export (default: the config\'s initialisation)')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[224, 224],
        metavar=('H', 'W'),
        help='example input size when no --image is given (default 224 224)')
    p.add_argument('--image', help='example input: an image through the test pipeline')
    p.add_argument('--batch', type=int, default=1, help='example batch size')
    p.add_argument('--exporter', choices=sorted(EXPORTERS), default='torchscript')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument(
        '--check-size',
        type=int,
        nargs=2,
        action='append',
        metavar=('H', 'W'),
        dest='check_sizes',
        help='a size to check onnxruntime at (repeatable)')
    p.add_argument(
        '--rtol',
        type=float,
        default=1e-4,
        help='largest relative error accepted (default 1e-4); detectors: box '
        'distance relative to the input\'s longer side, and score difference')
    p.add_argument(
        '--backbone-only',
        action='store_true',
        help='export the backbone\'s feature maps instead of the whole model')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args()


def main():
    args = parse_args()
    report = export_config(
        args.config,
        args.checkpoint,
        args.out,
        shape=args.shape,
        image=args.image,
        batch=args.batch,
        exporter=args.exporter,
        opset=args.opset,
        check_sizes=[tuple(s) for s in args.check_sizes] if args.check_sizes else None,
        rtol=args.rtol,
        backbone_only=args.backbone_only,
        overwrite=args.overwrite,
        cfg_options=args.cfg_options)
    print(json.dumps(report, indent=1, default=str))


if __name__ == '__main__':
    main()
