"""Write the seeded synthetic "shapes" dataset used by the mmscope demo.

    python tools/dataset_converters/generate_shapes.py --out data/shapes \
        [--train 400 --val 100 --size 128 --cls-train 2000 --cls-val 400 --cls-size 64
         --seed 0]

One run writes the same scenes in the three layouts the configs read: ImageNet class
folders (``cls/``), COCO instances with polygon masks (``det/``) and ADE20K images +
annotation PNGs (``seg/``). See ``mmscope/datasets/shapes.py`` for the conventions.
The output is byte-identical for the same arguments.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmscope.datasets.shapes import (GENERATOR_VERSION, count_images,  # noqa: E402
                                     generate_shapes)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='data/shapes', help='output folder (default data/shapes)')
    p.add_argument('--train', type=int, default=400,
                   help='training scenes (det + seg), default 400')
    p.add_argument('--val', type=int, default=100, help='validation scenes, default 100')
    p.add_argument('--size', type=int, default=128, help='scene size in pixels, default 128')
    p.add_argument('--cls-train', type=int, default=2000,
                   help='training classification images, default 2000')
    p.add_argument('--cls-val', type=int, default=400,
                   help='validation classification images, default 400')
    p.add_argument('--cls-size', type=int, default=64,
                   help='classification image size, default 64')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--force', action='store_true',
                   help='regenerate even if OUT/meta.json says it is up to date')
    return p.parse_args(argv)


def is_up_to_date(out, args):
    """True when ``out`` was completely written by this generator with these arguments."""
    try:
        with open(osp.join(out, 'meta.json')) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    want = dict(generator_version=GENERATOR_VERSION, seed=args.seed, num_train=args.train,
                num_val=args.val, size=args.size, cls_size=args.cls_size,
                cls_train=args.cls_train, cls_val=args.cls_val)
    return all(meta.get(k) == v for k, v in want.items())


def main(argv=None):
    args = parse_args(argv)
    if not args.force and is_up_to_date(args.out, args):
        print(f'[shapes] {args.out} is up to date (seed {args.seed}); --force to rewrite')
        return 0
    from mmengine.utils import ProgressBar
    total = count_images(args.train, args.val, args.cls_train, args.cls_val)
    print(f'[shapes] writing {total} images to {args.out} (seed {args.seed})')
    t0 = time.time()
    bar = ProgressBar(total)
    meta = generate_shapes(args.out, args.train, args.val, args.size, args.cls_size,
                           args.seed, args.cls_train, args.cls_val, progress=bar.update)
    sys.stdout.write('\n')
    objs = meta['stats']['scene_objects']
    print(f'[shapes] done in {time.time() - t0:.1f}s: classes {meta["classes"]}, '
          f'scene objects train={objs["train"]} val={objs["val"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
