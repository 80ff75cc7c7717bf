"""(slow) The quick demo end to end, and mmscope's tools on the models it trained: ONNX
export with the same metrics, two-process training, a failing rank, kill and resume.
"""
import glob
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from helpers import one_thread_env, run_watched  # noqa: E402

# ------------------------------------------------------------------------ end to end
QUICK_CLS = 'projects/shapes_demo/configs/quick/scopevit-xt_shapes-cls_quick.py'

# Hang bounds of the end-to-end runs: no output for IDLE_TIMEOUT seconds, or a run
# several times longer than it takes on 2 idle cores (quick demo: about 4 min; one
# 2-process DDP epoch: about 40 s; the kill-and-resume pair: about 2 min). A machine
# twice as slow, or with one core taken by another job, stays well inside them.
IDLE_TIMEOUT = 600
QUICK_DEMO_TIMEOUT = 3600
RUN_TIMEOUT = 1200


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _scalars(work_dir):
    """Training records of every run (timestamp folder) in ``work_dir``, in run order."""
    runs = []
    for path in sorted(glob.glob(osp.join(work_dir, '2*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            runs.append([r for r in map(json.loads, filter(str.strip, f)) if 'loss' in r])
    return runs


def _run_quick_demo(dirs, precision, log_file):
    """``demo.py --quick --precision PRECISION`` with the folders of ``dirs`` (``data``,
    ``work``, ``out``); returns ``dirs`` with the run (``proc``) added."""
    cmd = [
        sys.executable,
        osp.join(ROOT, 'projects', 'shapes_demo', 'demo.py'), '--quick', '--data-root',
        dirs['data'], '--work-dir', dirs['work'], '--out-dir', dirs['out'], '--precision', precision
    ]
    proc = run_watched(
        cmd,
        cwd=ROOT,
        env=one_thread_env(),
        idle_timeout=IDLE_TIMEOUT,
        total_timeout=QUICK_DEMO_TIMEOUT,
        log_file=log_file)
    return dict(dirs, proc=proc)


@pytest.fixture(scope='module')
def quick_demo(tmp_path_factory):
    """``projects/shapes_demo/demo.py --quick``: all four tasks on the small data set, in a temp
    dir."""
    root = tmp_path_factory.mktemp('demo')
    dirs = dict(data=str(root / 'data'), work=str(root / 'work'), out=str(root / 'results'))
    # fp32 whatever the CPU (auto would take bf16 on a CPU with native bf16): the bf16
    # path is forced below (quick_demo_bf16), so every machine runs both
    return _run_quick_demo(dirs, 'fp32', str(root / 'demo.log'))


@pytest.fixture(scope='module')
def quick_demo_bf16(quick_demo, tmp_path_factory):
    """The quick demo again with ``--precision bf16`` (forced: bf16 autocast runs on any
    x86 CPU, emulated where the CPU has no native bf16), on a copy of the fp32 run's
    finished checkpoints: ``--resume`` trains nothing more, so this is the bf16 path of
    testing (``tools/test.py --amp``), of the per-class tables and of every picture,
    ``inference(amp=True)`` with each library's inferencer included, at the cost of the
    evaluations alone."""
    assert quick_demo['proc'].returncode == 0, quick_demo['proc'].tail(3000)
    root = tmp_path_factory.mktemp('demo_bf16')
    dirs = dict(data=quick_demo['data'], work=str(root / 'work'), out=str(root / 'results'))
    shutil.copytree(quick_demo['work'], dirs['work'])
    # the copies' pointers name the copies, so nothing of the fp32 run is read or written
    for marker in glob.glob(osp.join(dirs['work'], '*', 'last_checkpoint')):
        with open(marker) as f:
            name = osp.basename(f.read().strip())
        with open(marker, 'w') as f:
            f.write(osp.join(osp.dirname(marker), name))
    return _run_quick_demo(dirs, 'bf16', str(root / 'demo.log'))


@pytest.mark.slow
def test_quick_demo_learns(quick_demo):
    from shapes_demo import results as demo_results
    proc = quick_demo['proc']
    assert proc.returncode == 0, proc.tail(9000)
    with open(osp.join(quick_demo['out'], 'metrics.json')) as f:
        summary = json.load(f)
    assert summary['passed'] and not summary['failures']
    # which precision and which CPU produced the numbers, in metrics.json and printed
    prec = summary['precision']
    assert (prec['dtype'], prec['requested'], prec['threads']) == ('fp32', 'fp32', 1), prec
    assert prec['cpu']['model'] and isinstance(prec['cpu']['flags'], list), prec
    assert f"precision: fp32 ({prec['reason']}); CPU: {prec['cpu']['model']}" in proc.output
    res = summary['results']
    from shapes_demo.run import DEMO_TASKS
    assert list(res) == list(DEMO_TASKS)
    # above chance / baselines, not only above the demo's own thresholds
    for key in ('cls', 'cls-scalable'):
        assert res[key]['metrics']['accuracy/top1'] > \
            summary['baselines']['accuracy/top1'] + 5, key
    assert res['det']['metrics']['coco/bbox_mAP'] > 0
    assert res['det']['metrics']['coco/segm_mAP'] > 0
    assert res['seg']['metrics']['mIoU'] > summary['baselines']['mIoU'] + 2
    assert res['pose']['metrics']['coco/AP'] > summary['baselines']['coco/AP'] + 2
    # the training loss falls
    for task in DEMO_TASKS:
        losses = [r['loss'] for run in _scalars(osp.join(quick_demo['work'], task)) for r in run]
        assert len(losses) >= 6, task
        assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), (task, losses)
    # pictures: loss curves, predictions per task, image_demo outputs; the table printed
    for name in ['loss_curves.png'] + [f'{key}_predictions.png' for key in DEMO_TASKS]:
        assert osp.getsize(osp.join(quick_demo['out'], name)) > 1000, name
    # the metric curves: every task that validates during training recorded its metric
    # more than once
    for key, task in DEMO_TASKS.items():
        if task.validate:
            vals = demo_results.read_val_scalars(osp.join(quick_demo['work'], key))
            name = task.metrics[0][0]
            assert len([r for r in vals if name in r]) >= 2, (key, vals)
    assert len(os.listdir(osp.join(quick_demo['out'], 'pose'))) == 8  # of the test pictures
    # ground truth next to the predictions for every task; per-class tables whose class
    # means are the reported metrics (detection, segmentation), printed
    for key, r in res.items():
        assert osp.getsize(osp.join(quick_demo['out'], f'{key}_gt_vs_pred.png')) > 1000, key
        kind = demo_results.RESULT_KINDS[DEMO_TASKS[key].scope]
        if kind.per_class is not None:
            assert demo_results.check_class_means(r['per_class'], r['raw'], kind.means) == []
    assert len(res['det']['per_class']) == 4 and len(res['seg']['per_class']) == 5
    assert 'per class (%), segmentation' in proc.output
    for task in DEMO_TASKS:
        assert os.listdir(osp.join(quick_demo['out'], 'image_demo', task)), task
    assert 'PASS' in proc.output and quick_demo['out'] in proc.output


@pytest.mark.slow
def test_quick_demo_in_bf16(quick_demo, quick_demo_bf16, tmp_path):
    """``--precision bf16`` on any CPU: every task tested under bf16 autocast
    (``tools/test.py --amp``: the classifiers, the detector, the segmentor, the pose
    model), with every picture and the image demo of each library, exit 0; its
    metrics.json says bf16 and the CPU; the metrics stay near the fp32 evaluation of the
    same checkpoints (bf16 autocast of the backbone and neck only)."""
    proc = quick_demo_bf16['proc']
    assert proc.returncode == 0, proc.tail(9000)
    out = quick_demo_bf16['out']
    with open(osp.join(out, 'metrics.json')) as f:
        summary = json.load(f)
    with open(osp.join(quick_demo['out'], 'metrics.json')) as f:
        fp32 = json.load(f)
    assert summary['passed'] and not summary['failures'], summary['failures']
    assert (summary['precision']['dtype'], summary['precision']['requested']) == ('bf16', 'bf16')
    assert 'precision: bf16 (bf16 autocast (--precision bf16)' in proc.output
    # every tool run of the demo had --amp, and said so in its log
    from shapes_demo.run import DEMO_TASKS
    for key in DEMO_TASKS:
        with open(osp.join(out, 'logs', f'{key}_test.log')) as f:
            assert 'mixed precision: ' in f.read(), key
    for key, res in summary['results'].items():
        # the same checkpoints as the fp32 run (nothing was trained again)
        assert osp.basename(res['checkpoint']) == \
            osp.basename(fp32['results'][key]['checkpoint']), key
        for name, value in res['metrics'].items():
            assert abs(value - fp32['results'][key]['metrics'][name]) <= 5.0, \
                (key, name, value, fp32['results'][key]['metrics'][name])
    for name in ['loss_curves.png'] + [
            f'{key}_{kind}.png' for key in DEMO_TASKS
            for kind in ('predictions', 'gt_vs_pred', 'image_demo')
    ]:
        assert osp.getsize(osp.join(out, name)) > 1000, name
    for key in DEMO_TASKS:
        assert len(os.listdir(osp.join(out, 'image_demo', key))) == 4, key
    # and its command line: demo/image_demo.py --amp with the pose model
    image = sorted(glob.glob(osp.join(quick_demo['data'], 'cls', 'val', '*', '*.jpg')))[0]
    pictures = str(tmp_path / 'image_demo')
    cli = run_watched([
        sys.executable, 'demo/image_demo.py', image, DEMO_TASKS['pose'].quick_config,
        summary['results']['pose']['checkpoint'], '--out-dir', pictures, '--amp'
    ],
                      cwd=ROOT,
                      env=one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data']),
                      idle_timeout=IDLE_TIMEOUT,
                      total_timeout=RUN_TIMEOUT)
    assert cli.returncode == 0, cli.tail()
    assert '[pose estimation]' in cli.output and 'keypoints' in cli.output, cli.tail()
    assert len(os.listdir(pictures)) == 1


@pytest.mark.slow
def test_train_amp_dense_models(quick_demo, tmp_path):
    """``tools/train.py --amp`` (bf16 autocast of backbone and neck, forced on any CPU)
    for the detector, the segmentor and the pose model: two iterations each, finite
    losses, a checkpoint, and the log says so."""
    from shapes_demo.run import DEMO_TASKS
    env = one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data'])
    for key in ('det', 'seg', 'pose'):
        work = str(tmp_path / key)
        proc = run_watched([
            sys.executable, 'tools/train.py', DEMO_TASKS[key].quick_config, '--work-dir', work,
            '--amp', '--no-validate', '--cfg-options', 'train_cfg.max_iters=2',
            'model.backbone.init_cfg=None', 'default_hooks.checkpoint.interval=2',
            'default_hooks.logger.interval=1'
        ],
                           cwd=ROOT,
                           env=env,
                           idle_timeout=IDLE_TIMEOUT,
                           total_timeout=RUN_TIMEOUT)
        assert proc.returncode == 0, (key, proc.tail())
        assert re.search(r'mixed precision: backbone(\+neck)? under bf16 autocast on the CPU',
                         proc.output), key
        (run, ) = _scalars(work)
        assert [r['iter'] for r in run] == [1, 2], (key, run)
        assert all(np.isfinite(r['loss']) for r in run), (key, run)
        assert osp.isfile(osp.join(work, 'iter_2.pth')), key


@pytest.mark.slow
def test_onnx_models_give_the_demos_metrics(quick_demo, tmp_path, monkeypatch):
    """The quick demo's classifier, detector (mmdeploy), segmentor and pose estimator
    exported with tools/deployment/pytorch2onnx.py, then evaluated with onnxruntime on
    the demo's validation data (mmscope.deploy.evaluate_onnx): top-1 and mIoU exactly
    what tools/test.py measured with PyTorch, bbox mAP and keypoint AP (flip test
    included) within 0.1 (points): a keypoint's quarter-pixel shift follows the sign of
    a difference of two neighbouring heatmap values, which rounding can flip."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('mmdeploy')
    from mmscope.deploy.evaluate import evaluate_onnx
    assert quick_demo['proc'].returncode == 0, quick_demo['proc'].tail(3000)
    with open(osp.join(quick_demo['out'], 'metrics.json')) as f:
        results = json.load(f)['results']
    monkeypatch.setenv('MMSCOPE_SHAPES_ROOT', quick_demo['data'])
    image = sorted(glob.glob(osp.join(quick_demo['data'], 'det', 'val', '*.jpg')))[0]
    cases = [('cls', 'projects/shapes_demo/configs/quick/scopevit-xt_shapes-cls_quick.py',
              'accuracy/top1', 0., ['--shape', '64', '64']),
             ('seg', 'projects/shapes_demo/configs/quick/upernet_scalablevit-xs_shapes_quick.py',
              'mIoU', 0., ['--shape', '64', '64']),
             ('det', 'projects/shapes_demo/configs/quick/mask-rcnn_scopevit-xt_fpn_shapes_quick.py',
              'coco/bbox_mAP', 0.001, ['--image', image]),
             ('pose', 'projects/shapes_demo/configs/quick/td-hm_scopevit-xt_shapes-kpt_quick.py',
              'coco/AP', 0.001, ['--shape', '64', '64'])]
    for task, config, metric, tol, extra in cases:
        checkpoint = results[task]['checkpoint']
        out = str(tmp_path / f'{task}.onnx')
        proc = subprocess.run(
            [sys.executable, 'tools/deployment/pytorch2onnx.py', config, checkpoint, '--out', out] +
            extra,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
            env=one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data']))
        assert proc.returncode == 0, (task, proc.stderr[-3000:])
        got = evaluate_onnx(osp.join(ROOT, config), out, checkpoint, threads=1)[metric]
        want = results[task]['raw'][metric]
        assert abs(got - want) <= tol, (task, metric, got, want)


@pytest.mark.slow
def test_onnx_retinanet_gives_pytorchs_detections(quick_demo, tmp_path, monkeypatch):
    """RetinaNet + ScopeViT-XT (projects/shapes_demo/configs/retinanet_scopevit-xt_fpn_shapes.py,
    100
    iterations from the quick demo's classifier) exported through mmdeploy by
    tools/deployment/pytorch2onnx.py, which compares its detections on an image with
    PyTorch's and writes nothing unless they agree (boxes within 1e-4 of the input side,
    scores within 1e-4; some detections above the cut are checked); bbox mAP through onnxruntime
    equals tools/test.py's within 0.1
    (points)."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('mmdeploy')
    from mmscope.deploy.evaluate import evaluate_onnx
    from shapes_demo.run import read_test_metrics
    assert quick_demo['proc'].returncode == 0, quick_demo['proc'].tail(3000)
    with open(osp.join(quick_demo['out'], 'metrics.json')) as f:
        cls_checkpoint = json.load(f)['results']['cls']['checkpoint']
    config = 'projects/shapes_demo/configs/retinanet_scopevit-xt_fpn_shapes.py'
    work = str(tmp_path / 'retinanet')
    env = one_thread_env(
        MMSCOPE_SHAPES_ROOT=quick_demo['data'], MMSCOPE_DEMO_CLS_CKPT=cls_checkpoint)
    proc = run_watched([
        sys.executable, 'tools/train.py', config, '--work-dir', work, '--cfg-options',
        'train_cfg.max_iters=100'
    ],
                       cwd=ROOT,
                       env=env,
                       idle_timeout=IDLE_TIMEOUT,
                       total_timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.tail()
    checkpoint = osp.join(work, 'iter_100.pth')
    proc = run_watched(
        [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
         osp.join(work, 'test')],
        cwd=ROOT,
        env=env,
        idle_timeout=IDLE_TIMEOUT,
        total_timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.tail()
    want = read_test_metrics(osp.join(work, 'test'))['coco/bbox_mAP']

    monkeypatch.setenv('MMSCOPE_SHAPES_ROOT', quick_demo['data'])
    image = sorted(glob.glob(osp.join(quick_demo['data'], 'det', 'val', '*.jpg')))[0]
    out = str(tmp_path / 'retinanet.onnx')
    proc = subprocess.run([
        sys.executable, 'tools/deployment/pytorch2onnx.py', config, checkpoint, '--out', out,
        '--image', image
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=1200,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.rindex('\n{') + 1:])
    assert report['kind'] == 'detector' and report['n_checked'] > 0, report
    got = evaluate_onnx(osp.join(ROOT, config), out, checkpoint, threads=1)['coco/bbox_mAP']
    assert abs(got - want) <= 0.001, (got, want)


def _dist_env(quick_demo, **extra):
    return one_thread_env(
        MMSCOPE_SHAPES_ROOT=quick_demo['data'],
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        **extra)


def _dist_train(quick_demo, work, config=QUICK_CLS, env=None):
    return run_watched([
        'bash',
        osp.join(ROOT, 'tools', 'dist_train.sh'), config, '2', '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
                       cwd=ROOT,
                       env=env or _dist_env(quick_demo),
                       idle_timeout=IDLE_TIMEOUT,
                       total_timeout=RUN_TIMEOUT)


@pytest.mark.slow
def test_dist_train_two_processes(quick_demo, tmp_path):
    """tools/dist_train.sh CONFIG 2: DDP with 2 CPU processes (gloo) exits 0 on both
    ranks, with no gradient-layout copy; tools/test.py reads the checkpoint."""
    work = str(tmp_path / 'dist')
    proc = _dist_train(quick_demo, work)
    assert proc.returncode == 0, proc.tail()
    # an exit abort of a finished rank (gloo torn down by static destructors) and the
    # DDP warning for gradients laid out unlike their parameters
    assert 'terminate called' not in proc.output, proc.tail()
    assert 'Grad strides do not match' not in proc.output, proc.tail()
    (run, ) = _scalars(work)
    assert run and all(np.isfinite(r['loss']) for r in run)
    with open(osp.join(quick_demo['data'], 'meta.json')) as f:
        n_train = json.load(f)['cls_train']
    # 2 processes x 32 images per iteration: half the iterations of one process
    ckpt = osp.join(work, 'epoch_1.pth')
    from mmscope.utils.checkpoint import safe_load
    meta = safe_load(ckpt, map_location='cpu')['meta']
    assert (meta['epoch'], meta['iter']) == (1, -(-n_train // 64))
    test = run_watched(
        [sys.executable, 'tools/test.py', QUICK_CLS, ckpt, '--work-dir', work + '/test'],
        cwd=ROOT,
        env=_dist_env(quick_demo),
        idle_timeout=IDLE_TIMEOUT,
        total_timeout=RUN_TIMEOUT)
    assert test.returncode == 0, test.tail(3000)
    assert 'accuracy/top1' in test.output


@pytest.mark.slow
def test_dist_train_failure_fails_loudly(quick_demo, tmp_path):
    """One rank raising in the middle of training fails the job (non-zero exit) with
    that rank's traceback, promptly, instead of hanging or being reported as an abort."""
    work = str(tmp_path / 'dist_fail')
    env = _dist_env(
        quick_demo, PYTHONPATH=osp.join(ROOT, 'projects', 'shapes_demo', 'tests', 'fixtures'))
    proc = _dist_train(
        quick_demo, work, 'projects/shapes_demo/tests/fixtures/cls_quick_failing_rank1.py', env=env)
    assert proc.returncode != 0, proc.tail()
    assert 'RuntimeError: injected failure on rank 1 at iteration 3' in proc.output, \
        proc.tail()
    assert '[mmscope] rank 1 failed' in proc.output, proc.tail()
    assert 'terminate called' not in proc.output, proc.tail()
    # the run stopped at the failure: no checkpoint of a finished epoch
    assert not osp.exists(osp.join(work, 'epoch_1.pth'))


@pytest.mark.slow
def test_kill_and_resume(quick_demo, tmp_path):
    """Kill a training run after its first checkpoint; --resume finishes it with the same
    iterations and learning rates as the uninterrupted demo run, and keeps what the first
    run wrote."""
    work = str(tmp_path / 'resume')
    env = one_thread_env(MMSCOPE_SHAPES_ROOT=quick_demo['data'])
    cmd = [sys.executable, 'tools/train.py', QUICK_CLS, '--work-dir', work]
    first = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True)
    marker = osp.join(work, 'last_checkpoint')
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline and first.poll() is None:
        if osp.isfile(marker) and open(marker).read().strip().endswith('epoch_1.pth'):
            break
        time.sleep(0.1)
    assert first.poll() is None, 'the run ended before it could be interrupted'
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = {
        p: osp.getsize(p)
        for p in glob.glob(osp.join(work, '**', '*'), recursive=True) if osp.isfile(p)
    }
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert not osp.exists(osp.join(work, 'epoch_4.pth'))

    second = run_watched(
        cmd + ['--resume'], cwd=ROOT, env=env, idle_timeout=IDLE_TIMEOUT, total_timeout=RUN_TIMEOUT)
    assert second.returncode == 0, second.tail(3000)
    assert 'resumed epoch: 1' in second.output
    # nothing written before the interruption is lost or rewritten, except what points at
    # the latest state by design: last_checkpoint, the best-so-far checkpoint (save_best),
    # and the config dump in the work dir root (each run keeps its own copy in
    # <timestamp>/vis_data/config.py)
    pointers = {'last_checkpoint', osp.basename(QUICK_CLS)}
    for path, size in before.items():
        name = osp.basename(path)
        if name in pointers or (name.startswith('best_') and osp.dirname(path) == work):
            continue
        assert osp.isfile(path) and osp.getsize(path) >= size, path
    first_run = sorted(glob.glob(osp.join(work, '2*')))[0]
    assert osp.isfile(osp.join(first_run, 'vis_data', 'config.py'))
    assert osp.isfile(osp.join(work, 'epoch_4.pth'))
    # the same schedule: iterations and learning rates of the uninterrupted demo run
    killed, resumed = _scalars(work)
    (reference, ) = _scalars(osp.join(quick_demo['work'], 'cls'))
    ref = {r['iter']: r['lr'] for r in reference}
    assert killed and resumed[0]['epoch'] == 2  # continues after the saved epoch 1
    assert resumed[-1]['iter'] == reference[-1]['iter']
    for r in killed + resumed:
        assert r['lr'] == pytest.approx(ref[r['iter']], rel=1e-6), r['iter']
