"""The GPU check's CPU dry run (``tools/analysis_tools/gpu_check.py --device cpu``), so
that the script a GPU machine runs cannot rot here."""
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from helpers import run_watched  # noqa: E402


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / 'gc'
    proc = run_watched([
        sys.executable, 'tools/analysis_tools/gpu_check.py', '--device', 'cpu', '--out-dir',
        str(out)
    ],
                       cwd=ROOT,
                       idle_timeout=600,
                       total_timeout=1800)
    assert proc.returncode == 0, proc.tail()
    assert 'PASS' in proc.output
    with open(out / 'gpu_check.json') as f:
        report = json.load(f)
    assert report['ok'] and report['device'] == 'cpu'
    rows = report['rows']
    by = {}
    for r in rows:
        by.setdefault(r['check'], []).append(r)
    # 2 families x 2 sizes x 3 precisions, every attention call through SDPA
    attn = by['attention']
    assert len(attn) == 12
    assert {r['model'] for r in attn} == {'ScopeViT-xtiny', 'ScalableViT-small'}
    assert {r['dtype'] for r in attn} == {'fp32', 'bf16', 'fp16'}
    for r in attn:
        assert r['sdpa_calls'] == r['attention_calls'] > 0, r
        assert r['out_rel_err'] <= r['tol'] and r['grad_rel_err'] <= 2 * r['tol'], r
        if r['dtype'] == 'fp32':
            assert r['out_rel_err'] < 1e-5 and r['grad_rel_err'] < 1e-4, r
    train = by['train_step']
    assert {(r['config'], r['dtype'])
            for r in train} == {('mask-rcnn_scopevit-xt_fpn_shapes.py', 'fp32'),
                                ('upernet_scalablevit-xs_shapes.py', 'bf16')}
    for r in train:
        assert len(r['losses']) == 2 and all(v == v and abs(v) < 1e4 for v in r['losses'])
    (comp, ) = by['compile']
    assert comp['graph_breaks'] == 0 and comp['out_rel_err'] < 1e-5
    (thr, ) = by['throughput']
    assert thr['images_per_s'] > 0 and thr['gmacs_per_image'] > 0
    assert thr['mfu'] is None  # no known peak for a CPU
    # fp32 vs bf16 autocast, inference and a training step, with the output difference
    prec = by['precision']
    assert {(r['model'], r['mode'])
            for r in prec} == {('scopevit-xt', 'infer'), ('scopevit-xt', 'train')}
    for r in prec:
        assert r['bf16_speedup'] > 0 and r['fp32_images_per_s'] > 0
        assert 1e-5 < r['rel_err'] < 0.1, r  # bf16 really ran, and ran right


def test_gpu_check_refuses_cuda_without_a_gpu(tmp_path):
    import os
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')  # no GPU visible, even on a GPU machine
    proc = subprocess.run([
        sys.executable, 'tools/analysis_tools/gpu_check.py', '--device', 'cuda', '--out-dir',
        str(tmp_path)
    ],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert 'no CUDA device is visible' in proc.stderr and '--device cpu' in proc.stderr


def test_gpu_check_shell_script_parses():
    script = osp.join(ROOT, 'tools', 'analysis_tools', 'gpu_check.sh')
    subprocess.run(['bash', '-n', script], check=True)
    with open(script) as f:
        text = f.read()
    assert 'gpu_check.py --device cuda' in text
