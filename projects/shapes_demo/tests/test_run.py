"""The demo's steps (:mod:`shapes_demo.run`): its task table follows mmscope's library
table, its helpers, the keypoint baseline and the loss curves.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


# ------------------------------------------------------------------------ demo helpers
def test_demo_tasks_follow_the_library_table():
    from mmscope.apis import LIBRARIES, load_config
    from shapes_demo.run import DATA, DEMO_TASKS, THRESHOLDS
    assert list(DEMO_TASKS) == ['cls', 'cls-scalable', 'det', 'seg', 'pose']
    for key, task in DEMO_TASKS.items():
        # the key is the library's task, with a suffix for a second task of the library
        assert task.library is LIBRARIES[task.scope]
        assert key.split('-')[0] == task.library.task
        assert task.title == task.library.title
        for config in (task.config, task.quick_config):
            assert load_config(osp.join(ROOT, config)).default_scope == task.scope
        for name, _, _ in task.metrics:
            assert name in THRESHOLDS['full'][key] and name in THRESHOLDS['quick'][key]
        # a backbone starts from a classifier of its own family, trained before it
        if task.backbone_from is not None:
            source = DEMO_TASKS[task.backbone_from]
            assert source.scope == 'mmpretrain'
            assert list(DEMO_TASKS).index(task.backbone_from) < list(DEMO_TASKS).index(key)
            family = task.model.split(' + ')[-1].split('-')[0]
            assert source.model.split('-')[0] == family, (key, task.model, source.model)
    # both families appear, and every dense task starts from a classifier
    assert {t.model.split(' + ')[-1].split('-')[0] for t in DEMO_TASKS.values()} == \
        {'ScopeViT', 'ScalableViT'}
    assert all(t.backbone_from for t in DEMO_TASKS.values() if t.scope != 'mmpretrain')
    assert set(THRESHOLDS['full']) == set(THRESHOLDS['quick']) == set(DEMO_TASKS)
    assert set(DATA) == set(THRESHOLDS) == {'full', 'quick'}
    proc = subprocess.run([sys.executable, 'projects/shapes_demo/demo.py', '--help'],
                          cwd=ROOT,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0 and '--tasks {cls,cls-scalable,det,seg,pose}' in proc.stdout


def test_demo_helpers(tmp_path):
    from shapes_demo import results as demo_results
    from shapes_demo import run as demo
    assert (demo.fmt_time(42.4), demo.fmt_time(65), demo.fmt_time(600)) == \
        ('42s', '1m05s', '10m00s')
    paths = [f'img_{i}.png' for i in (10, 2, 7, 1, 30)]
    assert demo_results.fixed_set(
        paths, 10) == ['img_1.png', 'img_2.png', 'img_7.png', 'img_10.png', 'img_30.png']
    assert demo_results.fixed_set(paths, 3) == ['img_1.png', 'img_7.png', 'img_30.png']
    # pictures: small ones enlarged (an integer factor) to the minimum width
    pics = []
    for i, size in enumerate(((64, 64), (100, 50), (300, 40))):
        pics.append(str(tmp_path / f'{i}.png'))
        Image.new('RGB', size, 'red').save(pics[-1])
    assert demo.tile(pics, str(tmp_path / 'grid.png'), cols=2, min_width=256) == \
        str(tmp_path / 'grid.png')
    # cells: 256x256 (x4), 300x150 (x3), 300x40: 304x260 each, 2 x 2 of them
    assert Image.open(tmp_path / 'grid.png').size == (608, 520)
    assert demo.tile([], str(tmp_path / 'none.png')) is None
    assert not osp.exists(tmp_path / 'none.png')
    # work-dir records
    work = tmp_path / 'work'
    assert demo.last_checkpoint(str(work)) is None
    first = [dict(iter=1, loss=3.), dict(iter=2, loss=2.), dict(lr=0.1)]
    resumed = [dict(iter=2, loss=1.5), dict(iter=3, loss=1.)]  # replaces iteration 2
    for run, recs in (('20240101_000000', first), ('20240102_000000', resumed)):
        (work / run / 'vis_data').mkdir(parents=True)
        (work / run / 'vis_data' /
         'scalars.json').write_text('\n'.join(json.dumps(r) for r in recs) + '\n\n')
    assert [r['loss'] for r in demo.read_train_scalars(str(work))] == [3., 1.5, 1.]
    (work / 'iter_3.pth').write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'iter_3.pth') + '\n')
    assert demo.last_checkpoint(str(work)) == str(work / 'iter_3.pth')
    (work / 'last_checkpoint').write_text(str(work / 'gone.pth'))
    assert demo.last_checkpoint(str(work)) is None
    test_dir = tmp_path / 'test'
    with pytest.raises(RuntimeError, match='no test metrics found'):
        demo.read_test_metrics(str(test_dir))
    for run, value in (('20240101_000000', 10.), ('20240102_000000', 20.)):
        (test_dir / run).mkdir(parents=True)
        (test_dir / run / f'{run}.json').write_text(json.dumps({'mIoU': value}) + '\n')
    assert demo.read_test_metrics(str(test_dir)) == {'mIoU': 20.}
    meta = dict(
        classes=['a', 'b', 'c', 'd'], stats=dict(seg_pixel_counts=dict(val=[60, 10, 10, 10, 10])))
    assert demo.background_only_miou(meta) == pytest.approx(12.0)
    base = demo.baselines(meta)
    assert base['accuracy/top1'] == (25.0, 'chance') and base['mIoU'][1] == 'all background'
    assert base['coco/AP'] == (0.0, 'all at box centre')  # no data root: nothing to score


def test_box_centre_baseline(small_shapes):
    """The keypoint baseline: COCO AP of every keypoint at its box centre is 0 (the
    extreme points are half a box away), and the ground truth itself scores 100."""
    import contextlib
    import io

    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    from shapes_demo import run as demo
    out, meta = small_shapes
    ann_file = osp.join(out, 'det', 'annotations', 'keypoints_val.json')
    assert demo.box_centre_keypoint_ap(ann_file, meta['keypoint_sigmas']) == 0.0
    assert demo.baselines(meta, out)['coco/AP'] == (0.0, 'all at box centre')
    with contextlib.redirect_stdout(io.StringIO()):  # the same evaluation, perfect answers
        gt = COCO(ann_file)
        res = gt.loadRes([dict(a, score=1.0) for a in gt.loadAnns(gt.getAnnIds())])
        ev = COCOeval(gt, res, 'keypoints', np.array(meta['keypoint_sigmas']), use_area=True)
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_demo_curves(tmp_path):
    """Validation records (a step and metrics, no loss) are read apart from the training
    ones, a resumed run's replacing those it repeated; the metric row is drawn for the
    tasks that have them (by epoch after epoch-based training), and only if one has."""
    from shapes_demo import results as dr
    from shapes_demo import run as demo
    cls, det = tmp_path / 'cls', tmp_path / 'det'
    first = [
        dict(epoch=1, iter=10, loss=2.0, lr=0.1, step=10), {
            'accuracy/top1': 30.0,
            'data_time': 0.1,
            'time': 0.2,
            'step': 1
        },
        dict(epoch=2, iter=20, loss=1.5, lr=0.1, step=20), {
            'accuracy/top1': 35.0,
            'data_time': 0.1,
            'time': 0.2,
            'step': 2
        }
    ]
    resumed = [{
        'accuracy/top1': 40.0,
        'step': 2
    },
               dict(epoch=3, iter=30, loss=1.0, lr=0.1, step=30), {
                   'accuracy/top1': 50.0,
                   'step': 3
               }]
    for work, runs in ((cls, (first, resumed)), (det, ([dict(iter=5, loss=3.0, lr=.1, step=5)], ))):
        for i, recs in enumerate(runs):
            (work / f'2024010{i}_000000' / 'vis_data').mkdir(parents=True)
            (work / f'2024010{i}_000000' / 'vis_data' /
             'scalars.json').write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
    val = dr.read_val_scalars(str(cls))
    assert [(r['step'], r['accuracy/top1']) for r in val] == [(1, 30.), (2, 40.), (3, 50.)]
    assert dr.read_val_scalars(str(det)) == []
    assert [r['loss'] for r in demo.read_train_scalars(str(cls))] == [2.0, 1.5, 1.0]
    two = str(tmp_path / 'two.png')
    shown = demo.plot_losses(OrderedDict(cls=str(cls), det=str(det)), two)
    assert shown == {'cls': {'unit': 'epoch', 'top-1 acc': [(1, 30.), (2, 40.), (3, 50.)]}}
    one = str(tmp_path / 'one.png')
    assert demo.plot_losses(OrderedDict(det=str(det)), one) == {}
    assert Image.open(two).size[1] == 2 * Image.open(one).size[1] == 2 * 396
    # metrics not among the task's: every metric of the records, as recorded; steps
    # past the last epoch (or no epochs) are iterations
    panels = dict(
        x=dict(
            title='x',
            train=[dict(iter=100, loss=1.0)],
            val=[dict(mIoU=20.0, aAcc=80.0, step=100)],
            metrics=(('coco/AP', 'AP', 100.0), )))
    assert dr.plot_curves(panels, str(tmp_path / 'x.png')) == {
        'x': {
            'unit': 'iteration',
            'mIoU': [(100, 20.0)],
            'aAcc': [(100, 80.0)]
        }
    }


def test_demo_precision_choice(monkeypatch):
    """``--precision auto`` takes bf16 only on a CPU with native bf16 where a training step
    measured at least MIN_BF16_SPEEDUP faster; it always says why."""
    import torch

    from mmscope.apis import precision
    from shapes_demo import run as demo
    monkeypatch.setattr(precision, '_warned', set())
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = osp.join(ROOT, 'projects', 'shapes_demo', 'configs', 'scopevit-xt_shapes-cls.py')
    assert demo.choose_precision('fp32', cfg) == (False, 'fp32 (--precision fp32)')
    monkeypatch.setattr(
        precision,
        'cpu_bf16_support',
        lambda flags=None: (False, 'the CPU has no native bf16: none of X'))
    amp, why = demo.choose_precision('auto', cfg)
    assert not amp and why.startswith('fp32: the CPU has no native bf16')
    with pytest.warns(RuntimeWarning, match='with --precision auto or fp32'):
        amp, why = demo.choose_precision('bf16', cfg)
    assert amp and 'no native bf16' in why
    monkeypatch.setattr(
        precision,
        'cpu_bf16_support',
        lambda flags=None: (True, 'the CPU has native bf16 (avx512_bf16)'))
    speedups = iter([1.5, demo.MIN_BF16_SPEEDUP - 0.01])
    monkeypatch.setattr(precision, 'bf16_step_speedup', lambda model, x: next(speedups))
    amp, why = demo.choose_precision('auto', cfg, batch=2)
    assert amp and 'measured 1.50x faster' in why
    amp, why = demo.choose_precision('auto', cfg, batch=2)
    assert not amp and 'measured only 1.09x' in why
    with pytest.raises(
            ValueError, match="precision must be one of \\('auto', 'fp32', "
            "'bf16'\\), got 'fp16'"):
        demo.choose_precision('fp16', cfg)


def test_a_failing_picture_step_is_reported(tmp_path, monkeypatch, capsys):
    """An image demo that raises (as the pose inferencer's ``--amp`` once did) is a failed
    step: the demo still draws the other tasks, writes ``metrics.json`` with the failure
    and the precision and CPU it ran on, and exits 2, instead of a traceback."""
    import mmscope.apis.inference as inference_api
    from shapes_demo import run as demo

    def inference(images, config, checkpoint, out_dir, **kwargs):
        if 'td-hm' in config:
            raise AttributeError("'MMPoseInferencer' object has no attribute 'model'")
        drawn.append((config, kwargs))
        os.makedirs(out_dir)
        return []

    drawn = []
    monkeypatch.setattr(inference_api, 'inference', inference)
    monkeypatch.setattr(demo, 'plot_losses', lambda task_dirs, out_file: {})
    out = tmp_path / 'out'
    out.mkdir()
    run = demo._Run(
        root=ROOT,
        data_root=str(tmp_path / 'data'),
        work_root=str(tmp_path / 'work'),
        out_root=str(out),
        log_dir=str(out),
        env={},
        quick=True,
        amp=True,
        precision=dict(
            dtype='bf16',
            requested='bf16',
            reason='forced',
            cpu=dict(model='Some CPU', flags=['avx2']),
            threads=1))
    for key in ('pose', 'seg'):
        run.results[key] = dict(checkpoint='x.pth', raw={}, metrics=OrderedDict())
    demo._pictures(run)
    assert [c for c, _ in drawn] == [run.config(demo.DEMO_TASKS['seg'])]
    assert drawn[0][1] == dict(amp=True, amp_dtype='bf16')
    assert run.failures == [
        "pose: image demo failed: AttributeError: 'MMPoseInferencer' object has no "
        "attribute 'model'"
    ]
    assert demo._report(run) == 2
    assert 'precision: bf16 (forced); CPU: Some CPU, flags avx2; 1 thread(s)' in \
        capsys.readouterr().out
    with open(out / 'metrics.json') as f:
        summary = json.load(f)
    assert summary['failures'] == run.failures and not summary['passed']
    assert summary['precision']['cpu'] == dict(model='Some CPU', flags=['avx2'])
    for flags, said in (([], 'flags none;'), (None, 'flags unknown;')):  # none vs unreadable
        run.precision['cpu']['flags'] = flags
        demo._report(run)
        assert said in capsys.readouterr().out
