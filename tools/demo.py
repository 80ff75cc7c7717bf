"""The mmscope demo (``make demo``): from nothing to trained, evaluated models on a CPU.

1. writes the seeded synthetic "shapes" dataset (``tools/dataset_converters/
   generate_shapes.py``) in the ImageNet, COCO and ADE20K layouts;
2. trains and tests, through ``tools/train.py`` and ``tools/test.py``, the three demo
   configs of ``configs/demo/`` (each inherits a real task config):

   * a ScopeViT-XT image classifier (mmpretrain),
   * Mask R-CNN + FPN with a ScopeViT-XT backbone (mmdet),
   * UperNet with a ScalableViT-S backbone (mmseg);
3. draws predictions on validation images, the loss curves, and runs
   ``demo/image_demo.py``'s inference on one image per task;
4. prints a table of the metrics against thresholds that only a model that learned
   passes, and exits non-zero when one is missed.

    python tools/demo.py [--quick] [--tasks cls det seg] [--data-root data/shapes]
        [--work-dir work_dirs/demo] [--out-dir results/demo] [--fresh]

Training always runs with ``--resume``: a demo that was interrupted continues from its
last checkpoint, and a finished one is not trained again (``--fresh`` starts over).
``--quick`` is the small variant the tests run (less data, a few dozen iterations).
"""
import argparse
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

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# ----------------------------------------------------------------------------- settings
#: task key -> what is trained, with which config, and which metrics are checked.
#: Metrics are shown in percent (COCO mAPs are multiplied by 100).
TASKS = OrderedDict(
    cls=dict(
        title='classification', model='ScopeViT-XT', library='mmpretrain',
        config='configs/demo/scopevit-xt_shapes-cls.py',
        quick_config='configs/demo/quick/scopevit-xt_shapes-cls_quick.py',
        validate=True,
        metrics=[('accuracy/top1', 'top-1 acc', 1.0)]),
    det=dict(
        title='detection', model='Mask R-CNN + ScopeViT-XT', library='mmdet',
        config='configs/demo/mask-rcnn_scopevit-xt_fpn_shapes.py',
        quick_config='configs/demo/quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py',
        validate=False,
        metrics=[('coco/bbox_mAP', 'bbox mAP', 100.0), ('coco/segm_mAP', 'mask mAP', 100.0)]),
    seg=dict(
        title='segmentation', model='UperNet + ScalableViT-S', library='mmseg',
        config='configs/demo/upernet_scalablevit-s_shapes.py',
        quick_config='configs/demo/quick/upernet_scalablevit-s_shapes_quick.py',
        validate=False,
        metrics=[('mIoU', 'mIoU', 1.0)]),
)

#: Pass marks (percent): well under what the demo measured on 2 CPU cores (full: 52.5
#: top-1, 12.8 / 15.3 bbox / mask mAP, 28.6 mIoU; quick: 43.3, 5.1 / 6.3, 21.8; see the
#: README's demo section) and over what an untrained model scores (chance: 25% top-1,
#: 0 mAP; the mIoU of predicting background everywhere, about 17%).
THRESHOLDS = {
    'full': {'accuracy/top1': 40.0, 'coco/bbox_mAP': 6.0, 'coco/segm_mAP': 7.0,
             'mIoU': 21.0},
    'quick': {'accuracy/top1': 33.0, 'coco/bbox_mAP': 2.0, 'coco/segm_mAP': 2.0,
              'mIoU': 19.0},
}

#: Dataset sizes: full demo / quick variant (see generate_shapes.py).
DATA = {
    'full': dict(train=400, val=100, cls_train=2000, cls_val=400, size=128, cls_size=64),
    'quick': dict(train=48, val=24, cls_train=2000, cls_val=400, size=128, cls_size=64),
}

PICTURES_PER_TASK = 8


# ----------------------------------------------------------------------------- helpers
def say(msg=''):
    print(f'\033[1m[demo]\033[0m {msg}' if msg else '', flush=True)


def fmt_time(seconds):
    m, s = divmod(int(round(seconds)), 60)
    return f'{m}m{s:02d}s' if m else f'{s}s'


def run_streamed(cmd, env, log_file):
    """Run ``cmd``; its output goes to the console and to ``log_file``."""
    say('$ ' + ' '.join(osp.relpath(c, ROOT) if osp.isabs(c) and c.startswith(ROOT) else c
                        for c in cmd))
    with open(log_file, 'a') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        return proc.wait()


def run_with_bar(cmd, env, log_file, desc):
    """Run a ``tools/test.py`` command: a progress bar from its ``Epoch(test) [i/n]`` lines,
    the full output in ``log_file`` (and its tail on the console if it fails)."""
    from tqdm import tqdm
    say('$ ' + ' '.join(osp.relpath(c, ROOT) if osp.isabs(c) and c.startswith(ROOT) else c
                        for c in cmd))
    pattern = re.compile(r'Epoch\(test\)\s*\[\s*(\d+)/(\d+)\]')
    tail = []
    with open(log_file, 'a') as log, tqdm(desc=desc, unit='img', dynamic_ncols=True,
                                          file=sys.stdout) as bar:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
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


def last_checkpoint(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def read_test_metrics(test_dir):
    """Metrics of the newest ``tools/test.py`` run whose work dir is ``test_dir``."""
    runs = sorted(glob.glob(osp.join(test_dir, '2*', '2*.json')))
    if not runs:
        raise RuntimeError(f'no test metrics found under {test_dir}')
    with open(runs[-1]) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return lines[-1]


def read_train_scalars(work_dir):
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


def background_only_miou(meta):
    """mIoU (percent) of a segmentor that predicts background everywhere on val."""
    counts = meta['stats']['seg_pixel_counts']['val']
    return 100.0 * counts[0] / sum(counts) / len(counts)


# ----------------------------------------------------------------------------- pictures
def plot_losses(task_dirs, out_file):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(1, len(task_dirs), figsize=(5 * len(task_dirs), 3.6),
                             squeeze=False)
    for ax, (key, work_dir) in zip(axes[0], task_dirs.items()):
        recs = read_train_scalars(work_dir)
        if not recs:
            continue
        x = np.array([r.get('iter', r.get('step')) for r in recs])
        parts = [k for k in recs[0] if k.startswith('loss_')]
        for k in parts:
            ax.plot(x, [r.get(k, np.nan) for r in recs], lw=1, alpha=0.7, label=k[5:])
        ax.plot(x, [r['loss'] for r in recs], 'k', lw=2, label='total')
        ax.set_title(f"{TASKS[key]['title']}: {TASKS[key]['model']}")
        ax.set_xlabel('iteration')
        ax.set_ylabel('training loss')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)


def pick(paths, n):
    """``n`` of ``paths`` spread evenly, in the natural order of their numbers."""
    def key(p):
        nums = re.findall(r'\d+', osp.basename(p))
        return (int(nums[-1]) if nums else -1, p)
    paths = sorted(paths, key=key)
    if len(paths) <= n:
        return paths
    return [paths[round(i * (len(paths) - 1) / (n - 1))] for i in range(n)]


def tile(images, out_file, cols=4, min_width=256):
    """Paste ``images`` (paths) into a grid picture, small ones enlarged (nearest) to at
    least ``min_width`` pixels."""
    from PIL import Image
    ims = [Image.open(p).convert('RGB') for p in images]
    if not ims:
        return None
    ims = [im.resize((im.width * -(-min_width // im.width), im.height * -(-min_width // im.width)),
                     Image.NEAREST) if im.width < min_width else im for im in ims]
    cell = max(im.width for im in ims) + 4, max(im.height for im in ims) + 4
    cols = min(cols, len(ims))
    rows = (len(ims) + cols - 1) // cols
    grid = Image.new('RGB', (cols * cell[0], rows * cell[1]), 'white')
    for i, im in enumerate(ims):
        grid.paste(im, ((i % cols) * cell[0] + 2, (i // cols) * cell[1] + 2))
    grid.save(out_file)
    return out_file


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description='mmscope end-to-end demo on synthetic shapes')
    p.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    p.add_argument('--quick', action='store_true',
                   help='small, fast variant (tests/CI): less data, fewer iterations')
    p.add_argument('--data-root', default=None,
                   help='dataset folder (default data/shapes, quick: data/shapes-quick)')
    p.add_argument('--work-dir', default=None,
                   help='checkpoints and logs (default work_dirs/demo[-quick])')
    p.add_argument('--out-dir', default=None,
                   help='pictures and metrics (default results/demo[-quick])')
    p.add_argument('--seed', type=int, default=0, help='dataset seed')
    p.add_argument('--fresh', action='store_true',
                   help='delete earlier checkpoints of the demo and train from scratch')
    p.add_argument('--no-pictures', action='store_true', help='skip all drawing')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    mode = 'quick' if args.quick else 'full'
    suffix = '-quick' if args.quick else ''
    data_root = osp.abspath(args.data_root or osp.join(ROOT, 'data', 'shapes' + suffix))
    work_root = osp.abspath(args.work_dir or osp.join(ROOT, 'work_dirs', 'demo' + suffix))
    out_root = osp.abspath(args.out_dir or osp.join(ROOT, 'results', 'demo' + suffix))
    os.makedirs(out_root, exist_ok=True)
    os.makedirs(work_root, exist_ok=True)
    log_dir = osp.join(out_root, 'logs')
    os.makedirs(log_dir, exist_ok=True)
    env = dict(os.environ, MMSCOPE_SHAPES_ROOT=data_root, PYTHONUNBUFFERED='1')
    timings = OrderedDict()
    t_start = time.time()

    import torch
    say(f'mmscope demo ({mode}): {", ".join(TASKS[t]["title"] for t in args.tasks)} on '
        f'{torch.get_num_threads()} CPU thread(s)' +
        (' + CUDA' if torch.cuda.is_available() else ''))
    say(f'data: {data_root}   checkpoints/logs: {work_root}   results: {out_root}')

    # 1. data --------------------------------------------------------------------------
    t0 = time.time()
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    import generate_shapes
    d = DATA[mode]
    gen_args = ['--out', data_root, '--train', str(d['train']), '--val', str(d['val']),
                '--cls-train', str(d['cls_train']), '--cls-val', str(d['cls_val']),
                '--size', str(d['size']), '--cls-size', str(d['cls_size']),
                '--seed', str(args.seed)]
    say('1/4 dataset: python tools/dataset_converters/generate_shapes.py ' +
        ' '.join(gen_args))
    generate_shapes.main(gen_args)
    with open(osp.join(data_root, 'meta.json')) as f:
        meta = json.load(f)
    timings['dataset'] = time.time() - t0

    baselines = {'accuracy/top1': (100.0 / len(meta['classes']), 'chance'),
                 'coco/bbox_mAP': (0.0, 'untrained'), 'coco/segm_mAP': (0.0, 'untrained'),
                 'mIoU': (background_only_miou(meta), 'all background')}

    # 2. train + 3. test ----------------------------------------------------------------
    results, task_dirs, failures = OrderedDict(), OrderedDict(), []
    for n, key in enumerate(args.tasks, 1):
        task = TASKS[key]
        config = osp.join(ROOT, task['quick_config'] if args.quick else task['config'])
        work_dir = osp.join(work_root, key)
        task_dirs[key] = work_dir
        if args.fresh and osp.isdir(work_dir):
            shutil.rmtree(work_dir)
        say()
        say(f'2/4 [{n}/{len(args.tasks)}] train {task["title"]}: {task["model"]} '
            f'({task["library"]})')
        t0 = time.time()
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
               '--work-dir', work_dir, '--resume']
        if not task['validate']:
            cmd.append('--no-validate')
        if key == 'det':
            # the detector's backbone starts from the demo classifier, as on COCO it
            # starts from the ImageNet one
            cls_ckpt = last_checkpoint(osp.join(work_root, 'cls'))
            if cls_ckpt:
                env['MMSCOPE_DEMO_CLS_CKPT'] = cls_ckpt
                say(f'backbone initialised from the classifier {osp.relpath(cls_ckpt, ROOT)}')
            else:
                cmd += ['--cfg-options', 'model.backbone.init_cfg=None']
                say('no classifier checkpoint: the detector is trained from scratch')
        rc = run_streamed(cmd, env, osp.join(log_dir, f'{key}_train.log'))
        timings[f'{key} train'] = time.time() - t0
        ckpt = last_checkpoint(work_dir)
        if rc != 0 or ckpt is None:
            failures.append(f'{key}: training failed (exit code {rc}); see '
                            f'{osp.join(log_dir, key + "_train.log")}')
            continue

        say(f'3/4 [{n}/{len(args.tasks)}] test {task["title"]}: {osp.relpath(ckpt, ROOT)}')
        t0 = time.time()
        n_val = meta['cls_val'] if key == 'cls' else meta['num_val']
        vis_dir = osp.join(work_dir, 'test_vis')
        shutil.rmtree(vis_dir, ignore_errors=True)
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config, ckpt,
               '--work-dir', osp.join(work_dir, 'test'),
               '--cfg-options', 'default_hooks.logger.interval=1']
        if not args.no_pictures:
            cmd[4:4] = ['--show-dir', vis_dir,
                        '--interval', str(max(1, n_val // PICTURES_PER_TASK))]
        rc = run_with_bar(cmd, env, osp.join(log_dir, f'{key}_test.log'),
                          f'evaluating {task["title"]}')
        timings[f'{key} test'] = time.time() - t0
        if rc != 0:
            failures.append(f'{key}: testing failed (exit code {rc}); see '
                            f'{osp.join(log_dir, key + "_test.log")}')
            continue
        metrics = read_test_metrics(osp.join(work_dir, 'test'))
        results[key] = dict(checkpoint=ckpt, raw=metrics, metrics=OrderedDict(
            (name, metrics[name] * scale) for name, _, scale in task['metrics']
            if name in metrics))
        for name, _, _ in task['metrics']:
            if name not in metrics:
                failures.append(f'{key}: metric {name} missing from the test results')
        if not args.no_pictures:
            pics = pick([p for p in glob.glob(osp.join(vis_dir, '**', '*.*'), recursive=True)
                         if p.endswith(('.png', '.jpg'))], PICTURES_PER_TASK)
            task_pics = osp.join(out_root, key)
            shutil.rmtree(task_pics, ignore_errors=True)
            os.makedirs(task_pics)
            for p in pics:
                shutil.copy(p, task_pics)
            tile(pics, osp.join(out_root, f'{key}_predictions.png'),
                 cols=4 if key == 'cls' else 2, min_width=256 if key == 'cls' else 512)

    # 4. pictures ----------------------------------------------------------------------
    if not args.no_pictures and task_dirs:
        say()
        say('4/4 pictures')
        t0 = time.time()
        plot_losses(task_dirs, osp.join(out_root, 'loss_curves.png'))
        sys.path.insert(0, osp.join(ROOT, 'demo'))
        from image_demo import inference
        for key, res in results.items():
            config = osp.join(ROOT, TASKS[key]['quick_config' if args.quick else 'config'])
            images = pick(glob.glob(osp.join(data_root, 'cls', 'val', '*', '*.jpg'))
                          if key == 'cls' else
                          glob.glob(osp.join(data_root, 'det', 'val', '*.jpg')), 4)
            vis_dir = osp.join(out_root, 'image_demo', key)
            shutil.rmtree(vis_dir, ignore_errors=True)
            say(f'demo/image_demo.py on {len(images)} validation images: {TASKS[key]["title"]}')
            for r in inference(images, config, res['checkpoint'], vis_dir):
                say(f'  {osp.relpath(r["image"], data_root)}: {r["summary"]}')
            tile([osp.join(vis_dir, f) for f in sorted(os.listdir(vis_dir))],
                 osp.join(out_root, f'{key}_image_demo.png'), cols=4)
        timings['pictures'] = time.time() - t0
    timings['total'] = time.time() - t_start

    # table ----------------------------------------------------------------------------
    rows, passed = [], True
    for key, res in results.items():
        task = TASKS[key]
        for name, label, _ in task['metrics']:
            if name not in res['metrics']:
                continue
            value, thr = res['metrics'][name], THRESHOLDS[mode][name]
            base, base_name = baselines[name]
            ok = value >= thr
            passed &= ok
            rows.append((task['title'], task['model'], label + ' (%)', f'{value:.1f}',
                         f'>= {thr:g}', f'{base:.1f} ({base_name})',
                         'PASS' if ok else 'FAIL'))
    header = ('task', 'model', 'metric', 'value', 'threshold', 'baseline', '')
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = '  '.join('{:<%d}' % w for w in widths)
    say()
    say(f'results ({mode}), pictures and metrics in {out_root}')
    print(line.format(*header))
    print('-' * (sum(widths) + 2 * (len(widths) - 1)))
    for r in rows:
        print(line.format(*r))
    print('time: ' + ', '.join(f'{k} {fmt_time(v)}' for k, v in timings.items()))
    if not args.no_pictures:
        print('pictures: ' + ', '.join(
            osp.relpath(p, ROOT) for p in sorted(glob.glob(osp.join(out_root, '*.png')))))

    summary = dict(mode=mode, data_root=data_root, work_dir=work_root, passed=passed and
                   not failures, failures=failures, thresholds=THRESHOLDS[mode],
                   baselines={k: v[0] for k, v in baselines.items()},
                   timings=timings, results=results)
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


if __name__ == '__main__':
    sys.exit(main())
