"""Write the seeded synthetic "shapes" dataset used by the mmscope demo.

    python projects/shapes_demo/generate_shapes.py --out data/shapes \
        [--train 400 --val 100 --size 128 --cls-train 2000 --cls-val 400 --cls-size 64
         --seed 0]

One run writes the same scenes in the three layouts the configs read: ImageNet class
folders (``cls/``), COCO instances with polygon masks and COCO keypoints (5 per object,
``det/``) and ADE20K images + annotation PNGs (``seg/``). See
``projects/shapes_demo/shapes_demo/shapes.py`` for the conventions. The output is byte-identical
for the
same arguments.
"""
import argparse
import sys

from shapes_demo.shapes import write_shapes


def parse_args(argv=None):
    """The command line (see the module doc)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='data/shapes', help='output folder (default data/shapes)')
    p.add_argument(
        '--train', type=int, default=400, help='training scenes (det + seg), default 400')
    p.add_argument('--val', type=int, default=100, help='validation scenes, default 100')
    p.add_argument('--size', type=int, default=128, help='scene size in pixels, default 128')
    p.add_argument(
        '--cls-train', type=int, default=2000, help='training classification images, default 2000')
    p.add_argument(
        '--cls-val', type=int, default=400, help='validation classification images, default 400')
    p.add_argument('--cls-size', type=int, default=64, help='classification image size, default 64')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if OUT/meta.json says it is up to date')
    return p.parse_args(argv)


def main(argv=None):
    """Write the data set (or say it is up to date); exit status 0."""
    args = parse_args(argv)
    write_shapes(
        args.out,
        num_train=args.train,
        num_val=args.val,
        size=args.size,
        cls_size=args.cls_size,
        seed=args.seed,
        cls_train=args.cls_train,
        cls_val=args.cls_val,
        force=args.force)
    return 0


if __name__ == '__main__':
    sys.exit(main())
