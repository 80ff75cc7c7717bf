"""The mmscope demo (``make demo``): from nothing to trained, evaluated models on a CPU.

1. writes the seeded synthetic "shapes" dataset (``projects/shapes_demo/
   generate_shapes.py``) in the ImageNet, COCO (instances and keypoints) and ADE20K
   layouts;
2. trains and tests, through ``tools/train.py`` and ``tools/test.py``, the five demo
   configs of ``projects/shapes_demo/configs/`` (each inherits a real task config); every dense
   model
   starts from a classifier of its family trained first, as the real recipes start from
   ImageNet:

   * ``cls``: a ScopeViT-XT image classifier (mmpretrain),
   * ``cls-scalable``: a ScalableViT-XS image classifier (mmpretrain; a small custom arch
     declared in its config),
   * ``det``: Mask R-CNN + FPN with the ScopeViT-XT backbone (mmdet),
   * ``seg``: UperNet with the ScalableViT-XS backbone (mmseg),
   * ``pose``: a top-down heatmap pose estimator with the ScopeViT-XT backbone (mmpose):
     5 keypoints per object, from the ground-truth boxes;
3. draws ground truth next to the predictions of a fixed set of validation images per
   task, the loss and validation-metric curves, per-class tables (detection,
   segmentation), and runs ``demo/image_demo.py``'s inference on a few images per task;
4. prints a table of the metrics against thresholds that only a model that learned
   passes, and exits non-zero when one is missed.

    python projects/shapes_demo/demo.py [--quick] [--tasks cls cls-scalable det seg pose]
        [--data-root data/shapes] [--work-dir work_dirs/demo] [--out-dir results/demo]
        [--fresh] [--precision auto|fp32|bf16]

Training always runs with ``--resume``: a demo that was interrupted continues from its
last checkpoint, and a finished one is not trained again (``--fresh`` starts over).
``--quick`` is the small variant the tests run (less data, a few dozen iterations).
``--precision auto`` (the default) trains and tests in bf16 autocast where the CPU has
native bf16 and a training step measured faster with it, else in fp32; the demo prints
which and why. The steps are :func:`shapes_demo.run.run_demo`.
"""
import argparse
import os.path as osp
import sys

from shapes_demo.run import DEMO_TASKS, PRECISIONS, run_demo

#: the repository root: the demo runs its configs and mmscope's tools from there
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    """The command line (see the module doc)."""
    p = argparse.ArgumentParser(description='mmscope end-to-end demo on synthetic shapes')
    p.add_argument('--tasks', nargs='+', choices=list(DEMO_TASKS), default=list(DEMO_TASKS))
    p.add_argument(
        '--quick',
        action='store_true',
        help='small, fast variant (tests/CI): less data, fewer iterations')
    p.add_argument(
        '--data-root',
        default=None,
        help='dataset folder (default data/shapes, quick: data/shapes-quick)')
    p.add_argument(
        '--work-dir', default=None, help='checkpoints and logs (default work_dirs/demo[-quick])')
    p.add_argument(
        '--out-dir', default=None, help='pictures and metrics (default results/demo[-quick])')
    p.add_argument('--seed', type=int, default=0, help='dataset seed')
    p.add_argument(
        '--fresh',
        action='store_true',
        help='delete earlier checkpoints of the demo and train from scratch')
    p.add_argument('--no-pictures', action='store_true', help='skip all drawing')
    p.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='auto',
        help='auto: bf16 autocast where the CPU has native bf16 and it measured '
        'faster, else fp32')
    return p.parse_args(argv)


def main(argv=None):
    """Run the demo; return its exit status (0 pass, 1 a metric missed, 2 a step failed)."""
    args = parse_args(argv)
    return run_demo(
        ROOT,
        tasks=args.tasks,
        quick=args.quick,
        data_root=args.data_root,
        work_dir=args.work_dir,
        out_dir=args.out_dir,
        seed=args.seed,
        fresh=args.fresh,
        no_pictures=args.no_pictures,
        precision=args.precision)


if __name__ == '__main__':
    sys.exit(main())
