"""The mmscope demo (``projects/shapes_demo/demo.py``, ``make demo``): from nothing to trained,
evaluated
models on a CPU.

:func:`run_demo`

1. writes the seeded synthetic "shapes" dataset (:func:`shapes_demo.shapes.
   write_shapes`, what ``projects/shapes_demo/generate_shapes.py`` runs) in the
   ImageNet, COCO and ADE20K layouts;
2. trains and tests, through ``tools/train.py`` and ``tools/test.py`` subprocesses (the
   commands are printed, relative to the repository root), the demo configs of
   ``projects/shapes_demo/configs/`` (:data:`DEMO_TASKS`: a classifier of each family, then
   detection,
   segmentation and keypoints, each starting from its family's classifier: every library
   of :data:`mmscope.apis.libraries.LIBRARIES` and both backbone families);
3. draws predictions on validation images, ground truth next to the predictions of a
   fixed set of them (``<task>_gt_vs_pred.png``), the loss and validation-metric curves,
   and runs :func:`mmscope.apis.inference.inference` (``demo/image_demo.py``) on a few
   images per task; computes per-class tables (detection: AP per category,
   segmentation: IoU per class) from the predictions ``tools/test.py --out`` dumped
   (:mod:`shapes_demo.results`);
4. prints a table of the metrics against thresholds that only a model that learned
   passes, and the per-class tables, writes ``metrics.json`` (the same numbers) and
   returns non-zero when one is missed.

Training always runs with ``--resume``: a demo that was interrupted continues from its
last checkpoint, and a finished one is not trained again (``fresh`` starts over).
``quick`` is the small variant the tests run (less data, a few dozen iterations).

Precision (:func:`choose_precision`): on a CPU with native bf16 (its flags list
``avx512_bf16`` or ``amx_bf16``) where a classifier training step measured at least
:data:`MIN_BF16_SPEEDUP` times faster under bf16 autocast, every training, test and
image demo runs with ``--amp`` (bf16 autocast of backbone and neck,
:mod:`mmscope.apis.precision`); elsewhere in fp32. The demo says which and why.
"""
import glob
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmscope.apis.libraries import Library, get_library
from . import results as demo_results

__all__ = [
    'DemoTask', 'DEMO_TASKS', 'THRESHOLDS', 'DATA', 'PICTURES_PER_TASK', 'MIN_BF16_SPEEDUP',
    'PRECISIONS', 'choose_precision', 'say', 'fmt_time', 'run_streamed', 'run_with_bar',
    'last_checkpoint', 'read_test_metrics', 'read_train_scalars', 'background_only_miou',
    'box_centre_keypoint_ap', 'baselines', 'plot_losses', 'tile', 'run_demo'
]

# ----------------------------------------------------------------------------- settings
#: the demo's configs, relative to the repository root
CONFIGS = 'projects/shapes_demo/configs/'


@dataclass(frozen=True)
class DemoTask:
    """What the demo trains for one library, with which configs, and what it checks.

    Args:
        scope: the library (a key of :data:`~mmscope.apis.libraries.LIBRARIES`).
        model: the model's name, for messages.
        config: the demo config (relative to the repository root).
        quick_config: its ``--quick`` variant.
        validate: evaluate during training (else ``tools/train.py --no-validate``).
        metrics: ``(name, label, scale)`` of the checked test metrics; ``scale`` turns
            them into percent (COCO mAPs are fractions).
        val_count: the ``meta.json`` key of the number of validation images, or
            ``'val_objects'``: the validation objects (top-down pose tests each alone).
        val_images: glob of the validation images under the data root (image demo).
        tile_cols: columns of the picture of test predictions.
        tile_min_width: smaller test pictures are enlarged to this width.
        backbone_from: the task whose last checkpoint initialises this one's backbone
            (handed to the config as ``MMSCOPE_DEMO_CLS_CKPT``), or None.
    """
    scope: str
    model: str
    config: str
    quick_config: str
    validate: bool
    metrics: Tuple[Tuple[str, str, float], ...]
    val_count: str
    val_images: str
    tile_cols: int = 2
    tile_min_width: int = 512
    backbone_from: Optional[str] = None

    @property
    def library(self) -> Library:
        """The task's :class:`~mmscope.apis.libraries.Library` row."""
        return get_library(self.scope)

    @property
    def title(self) -> str:
        """``'classification'``, ``'detection'``, ...: the library's title."""
        return self.library.title


#: key -> what is trained, with which config, and which metrics are checked, in the
#: order of training (a task whose backbone starts from a classifier comes after it).
#: The key is the library's ``task``, with a suffix for a second task of one library.
#: Metrics are shown in percent (COCO mAPs are multiplied by 100).
DEMO_TASKS: Dict[str, DemoTask] = OrderedDict((
    ('cls',
     DemoTask(
         scope='mmpretrain',
         model='ScopeViT-XT',
         config=CONFIGS + 'scopevit-xt_shapes-cls.py',
         quick_config=CONFIGS + 'quick/scopevit-xt_shapes-cls_quick.py',
         validate=True,
         metrics=(('accuracy/top1', 'top-1 acc', 1.0), ),
         val_count='cls_val',
         val_images='cls/val/*/*.jpg',
         tile_cols=4,
         tile_min_width=256)),
    # the second family's classifier: the segmentor starts from it
    ('cls-scalable',
     DemoTask(
         scope='mmpretrain',
         model='ScalableViT-XS',
         config=CONFIGS + 'scalablevit-xs_shapes-cls.py',
         quick_config=CONFIGS + 'quick/scalablevit-xs_shapes-cls_quick.py',
         validate=True,
         metrics=(('accuracy/top1', 'top-1 acc', 1.0), ),
         val_count='cls_val',
         val_images='cls/val/*/*.jpg',
         tile_cols=4,
         tile_min_width=256)),
    ('det',
     DemoTask(
         scope='mmdet',
         model='Mask R-CNN + ScopeViT-XT',
         config=CONFIGS + 'mask-rcnn_scopevit-xt_fpn_shapes.py',
         quick_config=CONFIGS + 'quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py',
         validate=False,
         metrics=(('coco/bbox_mAP', 'bbox mAP', 100.0), ('coco/segm_mAP', 'mask mAP', 100.0)),
         val_count='num_val',
         val_images='det/val/*.jpg',
         backbone_from='cls')),
    ('seg',
     DemoTask(
         scope='mmseg',
         model='UperNet + ScalableViT-XS',
         config=CONFIGS + 'upernet_scalablevit-xs_shapes.py',
         quick_config=CONFIGS + 'quick/upernet_scalablevit-xs_shapes_quick.py',
         validate=True,
         metrics=(('mIoU', 'mIoU', 1.0), ),
         val_count='num_val',
         val_images='det/val/*.jpg',
         backbone_from='cls-scalable')),
    # top-down from the ground-truth boxes: the test draws one picture per object, so
    # the pictures are counted in objects; the image demo has no detector and takes the
    # whole image as the box: it runs on the single-object classification images
    ('pose',
     DemoTask(
         scope='mmpose',
         model='top-down heatmaps + ScopeViT-XT',
         config=CONFIGS + 'td-hm_scopevit-xt_shapes-kpt.py',
         quick_config=CONFIGS + 'quick/td-hm_scopevit-xt_shapes-kpt_quick.py',
         validate=False,
         metrics=(('coco/AP', 'keypoint AP', 100.0), ),
         val_count='val_objects',
         val_images='cls/val/*/*.jpg',
         tile_cols=4,
         backbone_from='cls')),
))

#: Pass marks (percent) per task and metric: between what an untrained model scores
#: (chance: 25% top-1, 0 mAP; the mIoU of predicting background everywhere, 17%; keypoint
#: AP of every keypoint at its box centre, 0: :func:`box_centre_keypoint_ap`) and what the
#: demo measured on 2 CPU cores (7 December 2026, generator v4, fp32; docs/demo.md).
#: Full: top-1 85.75 (ScopeViT-XT) and 87.25 (ScalableViT-XS), bbox / mask mAP 35.1 /
#: 39.2, mIoU 53.1, keypoint AP 71.3. Quick (7 December 2026, generator v4, fp32): 67.5,
#: 62.25, 13.2 / 15.4, 24.4, 16.1.
THRESHOLDS = {
    'full': {
        'cls': {
            'accuracy/top1': 70.0
        },
        'cls-scalable': {
            'accuracy/top1': 70.0
        },
        'det': {
            'coco/bbox_mAP': 20.0,
            'coco/segm_mAP': 22.0
        },
        'seg': {
            'mIoU': 40.0
        },
        'pose': {
            'coco/AP': 60.0
        }
    },
    'quick': {
        'cls': {
            'accuracy/top1': 50.0
        },
        'cls-scalable': {
            'accuracy/top1': 48.0
        },
        'det': {
            'coco/bbox_mAP': 6.0,
            'coco/segm_mAP': 6.0
        },
        'seg': {
            'mIoU': 20.0
        },
        'pose': {
            'coco/AP': 12.0
        }
    },
}

#: Dataset sizes: full demo / quick variant (arguments of ``write_shapes``).
DATA = {
    'full': dict(train=400, val=100, cls_train=2000, cls_val=400, size=128, cls_size=64),
    'quick': dict(train=48, val=24, cls_train=2000, cls_val=400, size=128, cls_size=64),
}

PICTURES_PER_TASK = 8

#: ``precision`` choices of :func:`run_demo` (``--precision``).
PRECISIONS = ('auto', 'fp32', 'bf16')
#: ``auto`` takes bf16 only where a training step measured at least this much faster.
MIN_BF16_SPEEDUP = 1.1
#: What the tools get when the demo runs in bf16 (the CPU default; CUDA's is fp16).
AMP_ARGS = ['--amp', '--amp-dtype', 'bf16']


# ----------------------------------------------------------------------------- helpers
def say(msg: str = '') -> None:
    """Print a ``[demo]`` line (an empty line for no message)."""
    print(f'\033[1m[demo]\033[0m {msg}' if msg else '', flush=True)


def fmt_time(seconds: float) -> str:
    """``'1m05s'`` / ``'42s'``."""
    m, s = divmod(int(round(seconds)), 60)
    return f'{m}m{s:02d}s' if m else f'{s}s'


def _say_command(cmd: Sequence[str], root: str) -> None:
    """Print ``cmd`` with the paths under ``root`` relative to it."""
    say('$ ' +
        ' '.join(osp.relpath(c, root) if osp.isabs(c) and c.startswith(root) else c for c in cmd))


def run_streamed(cmd: Sequence[str], env: dict, log_file: str, root: str) -> int:
    """Run ``cmd`` in ``root``; its output goes to the console and to ``log_file``.
    Returns its exit status."""
    _say_command(cmd, root)
    with open(log_file, 'a') as log:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        return proc.wait()


def run_with_bar(cmd: Sequence[str], env: dict, log_file: str, desc: str, root: str) -> int:
    """Run a ``tools/test.py`` command in ``root``: a progress bar from its
    ``Epoch(test) [i/n]`` lines, the full output in ``log_file`` (and its tail on the
    console if it fails). Returns its exit status."""
    from tqdm import tqdm
    _say_command(cmd, root)
    pattern = re.compile(r'Epoch\(test\)\s*\[\s*(\d+)/(\d+)\]')
    tail = []
    with open(log_file, 'a') as log, tqdm(
            desc=desc, unit='img', dynamic_ncols=True, file=sys.stdout) as bar:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1)
        for line in proc.stdout:
            log.write(line)
            tail = (tail + [line])[-40:]
            m = pattern.search(line)
            if m:
                done, total = int(m.group(1)), int(m.group(2))
                bar.total = total
                bar.update(done - bar.n)
        rc = proc.wait()
    if rc != 0:
        sys.stdout.write(''.join(tail))
    return rc


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named by ``work_dir/last_checkpoint``, if that file exists."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def read_test_metrics(test_dir: str) -> dict:
    """Metrics of the newest ``tools/test.py`` run whose work dir is ``test_dir``."""
    runs = sorted(glob.glob(osp.join(test_dir, '2*', '2*.json')))
    if not runs:
        raise RuntimeError(f'no test metrics found under {test_dir}')
    with open(runs[-1]) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return lines[-1]


def read_train_scalars(work_dir: str) -> List[dict]:
    """Training log records (dicts with ``loss``) of every run in ``work_dir``, by
    iteration; a resumed run's records replace the ones it repeated."""
    records = {}
    for path in sorted(glob.glob(osp.join(work_dir, '2*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                if 'loss' in rec:
                    records[rec.get('iter', rec.get('step'))] = rec
    return [records[k] for k in sorted(records)]


def background_only_miou(meta: dict) -> float:
    """mIoU (percent) of a segmentor that predicts background everywhere on val."""
    counts = meta['stats']['seg_pixel_counts']['val']
    return 100.0 * counts[0] / sum(counts) / len(counts)


def box_centre_keypoint_ap(ann_file: str, sigmas: Sequence[float]) -> float:
    """COCO keypoint AP (percent) of a pose estimator that puts every keypoint at the
    centre of its ground-truth box (score 1): what a top-down model scores that learned
    nothing but the box it is given.

    Evaluated as mmpose's ``CocoMetric`` evaluates (xtcocotools' ``COCOeval`` with
    ``iouType='keypoints'``, the data set's OKS ``sigmas``) on the keypoint annotations
    ``ann_file``.
    """
    import contextlib
    import io

    import numpy as np
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        dets = []
        for ann in gt.loadAnns(gt.getAnnIds()):
            x, y, w, h = ann['bbox']
            dets.append(
                dict(
                    image_id=ann['image_id'],
                    category_id=ann['category_id'],
                    keypoints=[x + w / 2, y + h / 2, 1.0] * len(sigmas),
                    score=1.0))
        evaluator = COCOeval(gt, gt.loadRes(dets), 'keypoints', np.array(sigmas), use_area=True)
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return 100.0 * max(float(evaluator.stats[0]), 0.0)


def baselines(meta: dict, data_root: Optional[str] = None) -> Dict[str, Tuple[float, str]]:
    """metric -> ``(value, name)`` of what an untrained model scores on the data set;
    the keypoint AP (:func:`box_centre_keypoint_ap`) needs the data set's ``data_root``
    and its keypoint annotations (0 without them).
    """
    kpt_ann = osp.join(data_root or '', 'det', 'annotations', 'keypoints_val.json')
    kpt_ap = (
        box_centre_keypoint_ap(kpt_ann, meta['keypoint_sigmas'])
        if data_root and 'keypoint_sigmas' in meta and osp.isfile(kpt_ann) else 0.0)
    return {
        'accuracy/top1': (100.0 / len(meta['classes']), 'chance'),
        'coco/bbox_mAP': (0.0, 'untrained'),
        'coco/segm_mAP': (0.0, 'untrained'),
        'mIoU': (background_only_miou(meta), 'all background'),
        'coco/AP': (kpt_ap, 'all at box centre')
    }


# ----------------------------------------------------------------------------- pictures
def plot_losses(task_dirs: Dict[str, str], out_file: str) -> dict:
    """One panel per task (``task -> work dir``): its training losses by iteration; under
    them, for the tasks that validated during training, their checked metrics
    (:func:`shapes_demo.results.plot_curves`, which returns what that row shows)."""
    return demo_results.plot_curves(
        OrderedDict((key,
                     dict(
                         title=f'{DEMO_TASKS[key].title}: {DEMO_TASKS[key].model}',
                         train=read_train_scalars(work_dir),
                         val=demo_results.read_val_scalars(work_dir),
                         metrics=DEMO_TASKS[key].metrics))
                    for key, work_dir in task_dirs.items()), out_file)


def tile(images: Sequence[str],
         out_file: str,
         cols: int = 4,
         min_width: int = 256) -> Optional[str]:
    """Paste ``images`` (paths) into a grid picture, small ones enlarged (nearest) to at
    least ``min_width`` pixels. Returns ``out_file``, or None (nothing written) for no
    images."""
    from PIL import Image
    ims = [Image.open(p).convert('RGB') for p in images]
    if not ims:
        return None
    ims = [
        im.resize(
            (im.width * -(-min_width // im.width),
             im.height * -(-min_width // im.width)), Image.NEAREST) if im.width < min_width else im
        for im in ims
    ]
    cell = max(im.width for im in ims) + 4, max(im.height for im in ims) + 4
    cols = min(cols, len(ims))
    rows = (len(ims) + cols - 1) // cols
    grid = Image.new('RGB', (cols * cell[0], rows * cell[1]), 'white')
    for i, im in enumerate(ims):
        grid.paste(im, ((i % cols) * cell[0] + 2, (i // cols) * cell[1] + 2))
    grid.save(out_file)
    return out_file


def choose_precision(request: str,
                     config: str,
                     batch: int = 32,
                     size: int = 64) -> Tuple[bool, str]:
    """``(amp, why)``: whether the demo runs with ``--amp`` (bf16 autocast on the CPU),
    for ``request`` (one of :data:`PRECISIONS`) and the classifier ``config`` whose
    training step is measured (``batch`` images of ``size`` pixels) when ``auto`` finds
    native bf16 on a CPU-only machine."""
    import torch

    from mmscope.apis.precision import bf16_step_speedup, cpu_bf16_support, warn_if_emulated_bf16
    if request not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {request!r}')
    if request == 'fp32':
        return False, 'fp32 (--precision fp32)'
    if torch.cuda.is_available():
        if request == 'bf16':
            return True, 'bf16 autocast on CUDA (--precision bf16)'
        return False, 'fp32 on CUDA (--precision bf16 for mixed precision)'
    native, why = cpu_bf16_support()
    if request == 'bf16':
        warn_if_emulated_bf16('run the demo with --precision auto or fp32')
        return True, f'bf16 autocast (--precision bf16); {why}'
    if not native:
        return False, f'fp32: {why} (bf16 would be emulated, slower)'
    from mmscope.apis.config import build_model, load_config
    model = build_model(load_config(config))
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    speedup = bf16_step_speedup(model, x)
    if speedup >= MIN_BF16_SPEEDUP:
        return True, (f'bf16 autocast: {why}, and a classifier training step measured '
                      f'{speedup:.2f}x faster than fp32')
    return False, (f'fp32: {why}, but bf16 autocast measured only {speedup:.2f}x '
                   f'(< {MIN_BF16_SPEEDUP}x) on a classifier training step')


# ----------------------------------------------------------------------------- the steps
@dataclass
class _Run:
    """The state of one :func:`run_demo`: its folders and options, and what the steps
    found so far."""
    root: str
    data_root: str
    work_root: str
    out_root: str
    log_dir: str
    env: dict
    quick: bool = False
    fresh: bool = False
    no_pictures: bool = False
    amp: bool = False
    precision: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    timings: dict = field(default_factory=OrderedDict)
    results: dict = field(default_factory=OrderedDict)
    task_dirs: dict = field(default_factory=OrderedDict)
    failures: List[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        """``'quick'`` or ``'full'``."""
        return 'quick' if self.quick else 'full'

    def count(self, task: DemoTask) -> int:
        """The number of test iterations of ``task``: its ``val_count`` in ``meta.json``
        (``val_objects``: the validation objects, one top-down sample each)."""
        if task.val_count == 'val_objects':
            return self.meta['stats']['scene_objects']['val']
        return self.meta[task.val_count]

    def config(self, task: DemoTask) -> str:
        """The absolute path of ``task``'s config (its quick one for ``quick``)."""
        return osp.join(self.root, task.quick_config if self.quick else task.config)


def _make_data(data_root: str, mode: str, seed: int) -> dict:
    """Step 1: the data set of ``mode`` under ``data_root``; returns its ``meta.json``."""
    from shapes_demo.shapes import write_shapes
    d = DATA[mode]
    gen_args = [
        '--out', data_root, '--train',
        str(d['train']), '--val',
        str(d['val']), '--cls-train',
        str(d['cls_train']), '--cls-val',
        str(d['cls_val']), '--size',
        str(d['size']), '--cls-size',
        str(d['cls_size']), '--seed',
        str(seed)
    ]
    say('1/4 dataset: python projects/shapes_demo/generate_shapes.py ' + ' '.join(gen_args))
    write_shapes(
        data_root,
        num_train=d['train'],
        num_val=d['val'],
        size=d['size'],
        cls_size=d['cls_size'],
        seed=seed,
        cls_train=d['cls_train'],
        cls_val=d['cls_val'])
    with open(osp.join(data_root, 'meta.json')) as f:
        return json.load(f)


def _train_and_test(key: str, n: int, n_tasks: int, run: _Run) -> Optional[str]:
    """Steps 2 and 3 for the task ``key``: train, test, collect the metrics (and the test
    pictures) into ``run``. Returns a failure message, or None."""
    task, root, env, log_dir = DEMO_TASKS[key], run.root, run.env, run.log_dir
    config = run.config(task)
    work_dir = osp.join(run.work_root, key)
    run.task_dirs[key] = work_dir
    if run.fresh and osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    say()
    say(f'2/4 [{n}/{n_tasks}] train {task.title}: {task.model} ({task.scope})')
    t0 = time.time()
    cmd = [
        sys.executable,
        osp.join(root, 'tools', 'train.py'), config, '--work-dir', work_dir, '--resume'
    ] + (
        AMP_ARGS if run.amp else [])
    if not task.validate:
        cmd.append('--no-validate')
    if task.backbone_from is not None:
        # the detector's backbone starts from the demo classifier, as on COCO it
        # starts from the ImageNet one
        cls_ckpt = last_checkpoint(osp.join(run.work_root, task.backbone_from))
        if cls_ckpt:
            env['MMSCOPE_DEMO_CLS_CKPT'] = cls_ckpt
            say(f'backbone initialised from the classifier {osp.relpath(cls_ckpt, root)}')
        else:
            cmd += ['--cfg-options', 'model.backbone.init_cfg=None']
            say(f'no checkpoint of {task.backbone_from}: the backbone is trained from scratch')
    rc = run_streamed(cmd, env, osp.join(log_dir, f'{key}_train.log'), root)
    run.timings[f'{key} train'] = time.time() - t0
    ckpt = last_checkpoint(work_dir)
    if rc != 0 or ckpt is None:
        return (f'{key}: training failed (exit code {rc}); see '
                f'{osp.join(log_dir, key + "_train.log")}')

    say(f'3/4 [{n}/{n_tasks}] test {task.title}: {osp.relpath(ckpt, root)}')
    t0 = time.time()
    n_val = run.count(task)
    vis_dir = osp.join(work_dir, 'test_vis')
    shutil.rmtree(vis_dir, ignore_errors=True)
    # the predictions, for the per-class tables and the ground truth / prediction pairs
    dump = demo_results.dump_path(task.library, osp.join(work_dir, 'test'))
    if osp.isdir(dump):
        shutil.rmtree(dump)
    elif osp.isfile(dump):
        os.remove(dump)
    cmd = [
        sys.executable,
        osp.join(root, 'tools', 'test.py'), config, ckpt, '--work-dir',
        osp.join(work_dir, 'test'), '--out', dump
    ] + (AMP_ARGS if run.amp else []) + ['--cfg-options', 'default_hooks.logger.interval=1']
    if not run.no_pictures:
        cmd[4:4] = ['--show-dir', vis_dir, '--interval', str(max(1, n_val // PICTURES_PER_TASK))]
    rc = run_with_bar(cmd, env, osp.join(log_dir, f'{key}_test.log'), f'evaluating {task.title}',
                      root)
    run.timings[f'{key} test'] = time.time() - t0
    if rc != 0:
        return (f'{key}: testing failed (exit code {rc}); see '
                f'{osp.join(log_dir, key + "_test.log")}')
    metrics = read_test_metrics(osp.join(work_dir, 'test'))
    run.results[key] = dict(
        checkpoint=ckpt,
        raw=metrics,
        metrics=OrderedDict(
            (name, metrics[name] * scale) for name, _, scale in task.metrics if name in metrics))
    for name, _, _ in task.metrics:
        if name not in metrics:
            run.failures.append(f'{key}: metric {name} missing from the test results')
    _results_of_predictions(key, dump, run)
    if not run.no_pictures:
        pics = demo_results.fixed_set([
            p for p in glob.glob(osp.join(vis_dir, '**', '*.*'), recursive=True)
            if p.endswith(('.png', '.jpg'))
        ], PICTURES_PER_TASK)
        task_pics = osp.join(run.out_root, key)
        shutil.rmtree(task_pics, ignore_errors=True)
        os.makedirs(task_pics)
        for p in pics:
            shutil.copy(p, task_pics)
        tile(
            pics,
            osp.join(run.out_root, f'{key}_predictions.png'),
            cols=task.tile_cols,
            min_width=task.tile_min_width)
    return None


def _results_of_predictions(key: str, dump: str, run: _Run) -> None:
    """Step 3, from the predictions ``tools/test.py`` dumped to ``dump``: the per-class
    table of ``key`` (into ``run.results[key]['per_class']``; its class means must be
    the reported metrics) and its ground truth / prediction picture
    (``<key>_gt_vs_pred.png``). What fails is added to ``run.failures``."""
    task, res = DEMO_TASKS[key], run.results[key]
    try:
        per_class, problems = demo_results.per_class_results(task.scope, run.data_root, dump,
                                                             res['raw'])
    except Exception as e:  # noqa: BLE001 (reported as a failure of the step)
        run.failures.append(f'{key}: per-class results failed: {type(e).__name__}: {e}')
    else:
        if per_class is not None:
            res['per_class'] = per_class
        run.failures.extend(f'{key}: {msg}' for msg in problems)
    if run.no_pictures:
        return
    try:
        demo_results.draw_gt_vs_pred(
            task.scope,
            run.data_root,
            dump,
            osp.join(run.out_root, f'{key}_gt_vs_pred.png'),
            PICTURES_PER_TASK,
            cols=task.tile_cols)
    except Exception as e:  # noqa: BLE001
        run.failures.append(f'{key}: ground truth / prediction picture failed: '
                            f'{type(e).__name__}: {e}')


def _pictures(run: _Run) -> None:
    """Step 4: the loss and validation-metric curves, and the image demo on a few
    validation images per task."""
    from mmscope.apis.inference import inference
    out_root, data_root = run.out_root, run.data_root
    say()
    say('4/4 pictures')
    t0 = time.time()
    plot_losses(run.task_dirs, osp.join(out_root, 'loss_curves.png'))
    for key, res in run.results.items():
        task = DEMO_TASKS[key]
        config = run.config(task)
        images = demo_results.fixed_set(glob.glob(osp.join(data_root, task.val_images)), 4)
        vis_dir = osp.join(out_root, 'image_demo', key)
        shutil.rmtree(vis_dir, ignore_errors=True)
        say(f'demo/image_demo.py on {len(images)} validation images: {task.title}')
        try:
            drawn = inference(
                images, config, res['checkpoint'], vis_dir, amp=run.amp, amp_dtype='bf16')
        except Exception as e:  # noqa: BLE001 (reported as a failure of the step)
            run.failures.append(f'{key}: image demo failed: {type(e).__name__}: {e}')
            say(f'  failed: {type(e).__name__}: {e}')
            continue
        for r in drawn:
            say(f'  {osp.relpath(r["image"], data_root)}: {r["summary"]}')
        tile([osp.join(vis_dir, f) for f in sorted(os.listdir(vis_dir))],
             osp.join(out_root, f'{key}_image_demo.png'),
             cols=4)
    run.timings['pictures'] = time.time() - t0


def _report(run: _Run) -> int:
    """The table of metrics, ``metrics.json``, and the exit status (0 pass, 1 a metric
    below its threshold, 2 a step failed)."""
    root, out_root, base, mode = run.root, run.out_root, run.baselines, run.mode
    failures = run.failures
    rows, passed = [], True
    for key, res in run.results.items():
        task = DEMO_TASKS[key]
        for name, label, _ in task.metrics:
            if name not in res['metrics']:
                continue
            value, thr = res['metrics'][name], THRESHOLDS[mode][key][name]
            base_value, base_name = base[name]
            ok = value >= thr
            passed &= ok
            rows.append((task.title, task.model, label + ' (%)', f'{value:.1f}', f'>= {thr:g}',
                         f'{base_value:.1f} ({base_name})', 'PASS' if ok else 'FAIL'))
    header = ('task', 'model', 'metric', 'value', 'threshold', 'baseline', '')
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = '  '.join('{:<%d}' % w for w in widths)
    say()
    say(f'results ({mode}), pictures and metrics in {out_root}')
    print(line.format(*header))
    print('-' * (sum(widths) + 2 * (len(widths) - 1)))
    for r in rows:
        print(line.format(*r))
    for key, res in run.results.items():
        if res.get('per_class'):
            task = DEMO_TASKS[key]
            print(f'\nper class (%), {task.title}: {task.model}')
            print('\n'.join(demo_results.per_class_lines(res['per_class'])))
    prec, cpu = run.precision, run.precision.get('cpu', {})
    flags = 'unknown' if cpu.get('flags') is None else (', '.join(cpu['flags']) or 'none')
    print(f"precision: {prec.get('dtype')} ({prec.get('reason')}); CPU: {cpu.get('model')}, "
          f"flags {flags}; {prec.get('threads')} thread(s)")
    print('time: ' + ', '.join(f'{k} {fmt_time(v)}' for k, v in run.timings.items()))
    if not run.no_pictures:
        print('pictures: ' + ', '.join(
            osp.relpath(p, root) for p in sorted(glob.glob(osp.join(out_root, '*.png')))))

    summary = dict(
        mode=mode,
        data_root=run.data_root,
        work_dir=run.work_root,
        passed=passed and not failures,
        failures=failures,
        precision=run.precision,
        thresholds=THRESHOLDS[mode],
        baselines={
            k: v[0]
            for k, v in base.items()
        },
        timings=run.timings,
        results=run.results)
    with open(osp.join(out_root, 'metrics.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    for msg in failures:
        say('ERROR: ' + msg)
    if failures:
        return 2
    if not passed:
        say('FAILED: a metric is below its threshold: the models did not learn enough')
        return 1
    say('all metrics above their thresholds')
    return 0


def run_demo(root: str,
             tasks: Optional[Sequence[str]] = None,
             quick: bool = False,
             data_root: Optional[str] = None,
             work_dir: Optional[str] = None,
             out_dir: Optional[str] = None,
             seed: int = 0,
             fresh: bool = False,
             no_pictures: bool = False,
             precision: str = 'auto') -> int:
    """The demo (see the module doc) of ``tasks`` (keys of :data:`DEMO_TASKS`, default
    all), run from the repository ``root`` (which holds ``configs/`` and ``tools/``).

    Defaults: data in ``root/data/shapes``, checkpoints and logs in
    ``root/work_dirs/demo``, pictures and metrics in ``root/results/demo`` (each with
    ``-quick`` for ``quick``). ``seed`` is the data set's, ``fresh`` deletes earlier
    checkpoints, ``no_pictures`` skips all drawing, ``precision`` is one of
    :data:`PRECISIONS` (:func:`choose_precision`). Returns the exit status: 0 when every
    metric passes, 1 when one is below its threshold, 2 when a step failed.
    """
    tasks = list(DEMO_TASKS) if tasks is None else list(tasks)
    mode = 'quick' if quick else 'full'
    suffix = '-quick' if quick else ''
    data_root = osp.abspath(data_root or osp.join(root, 'data', 'shapes' + suffix))
    work_root = osp.abspath(work_dir or osp.join(root, 'work_dirs', 'demo' + suffix))
    out_root = osp.abspath(out_dir or osp.join(root, 'results', 'demo' + suffix))
    os.makedirs(out_root, exist_ok=True)
    os.makedirs(work_root, exist_ok=True)
    log_dir = osp.join(out_root, 'logs')
    os.makedirs(log_dir, exist_ok=True)
    run = _Run(
        root=root,
        data_root=data_root,
        work_root=work_root,
        out_root=out_root,
        log_dir=log_dir,
        quick=quick,
        fresh=fresh,
        no_pictures=no_pictures,
        env=dict(os.environ, MMSCOPE_SHAPES_ROOT=data_root, PYTHONUNBUFFERED='1'))
    t_start = time.time()

    import torch
    say(f'mmscope demo ({mode}): {", ".join(DEMO_TASKS[t].title for t in tasks)} on '
        f'{torch.get_num_threads()} CPU thread(s)' +
        (' + CUDA' if torch.cuda.is_available() else ''))
    say(f'data: {data_root}   checkpoints/logs: {work_root}   results: {out_root}')

    t0 = time.time()
    run.amp, why = choose_precision(precision, run.config(DEMO_TASKS['cls']))
    say(f'precision: {why}')
    from mmscope.apis.precision import cpu_description
    run.precision = dict(
        dtype='bf16' if run.amp else 'fp32',
        requested=precision,
        reason=why,
        cpu=cpu_description(),
        threads=torch.get_num_threads(),
        cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    run.timings['precision'] = time.time() - t0
    t0 = time.time()
    run.meta = _make_data(data_root, mode, seed)
    run.timings['dataset'] = time.time() - t0
    run.baselines = baselines(run.meta, data_root)

    for n, key in enumerate(tasks, 1):
        failure = _train_and_test(key, n, len(tasks), run)
        if failure is not None:
            run.failures.append(failure)

    if not no_pictures and run.task_dirs:
        _pictures(run)
    run.timings['total'] = time.time() - t_start
    return _report(run)
