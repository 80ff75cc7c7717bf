"""tools/train.py and tools/test.py end to end on CPU, on data this test generates."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(ROOT, 'tools')

CONFIG = """
_base_ = 'mmpretrain::_base_/default_runtime.py'
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmscope'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmscope.ScopeViT', arch='xtiny', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=256,
              loss=dict(type='CrossEntropyLoss'), topk=(1, )))
data_preprocessor = dict(num_classes=2, mean=[127.5] * 3, std=[64.] * 3, to_rgb=True)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={root!r}, data_prefix='train',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={root!r}, data_prefix='val',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=False, T_max=6)
train_cfg = dict(by_epoch=False, max_iters=6, val_interval=6)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
"""


def _write_images(root, split, n):
    """Two classes: dark left half vs dark right half, with noise."""
    rng = np.random.default_rng(0 if split == 'train' else 1)
    for cls in ('left', 'right'):
        os.makedirs(osp.join(root, split, cls), exist_ok=True)
        for i in range(n):
            img = rng.integers(100, 255, (48, 48, 3), dtype=np.uint8)
            if cls == 'left':
                img[:, :24] //= 4
            else:
                img[:, 24:] //= 4
            Image.fromarray(img).save(osp.join(root, split, cls, f'{i}.png'))


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tools'))
    data = osp.join(root, 'data')
    _write_images(data, 'train', 8)
    _write_images(data, 'val', 4)
    cfg = osp.join(root, 'cls_cfg.py')
    with open(cfg, 'w') as f:
        f.write(CONFIG.format(root=data))
    return root, cfg


def _run(*args):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_train_resume_and_test(workspace):
    root, cfg = workspace
    work_dir = osp.join(root, 'work')
    # stop after 3 iterations, then resume to 6: the iteration count continues
    code, log = _run(osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir,
                     '--cfg-options', 'train_cfg.max_iters=3', 'val_cfg=None',
                     'val_dataloader=None', 'val_evaluator=None')
    assert code == 0, log[-4000:]
    assert osp.isfile(osp.join(work_dir, 'iter_3.pth'))
    code, log = _run(osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir, '--resume')
    assert code == 0, log[-4000:]
    assert 'resumed epoch: 0, iter: 3' in log.replace('Iter', 'iter'), log[-4000:]
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
    assert 'accuracy/top1' in log

    out_pkl = osp.join(root, 'preds.pkl')
    code, log = _run(osp.join(TOOLS, 'test.py'), cfg, osp.join(work_dir, 'iter_6.pth'),
                     '--work-dir', osp.join(root, 'test'), '--out', out_pkl)
    assert code == 0, log[-4000:]
    assert 'accuracy/top1' in log
    import pickle
    with open(out_pkl, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 8 and 'pred_score' in preds[0]


def test_wrong_scope_is_refused(tmp_path):
    cfg = tmp_path / 'bad.py'
    cfg.write_text("default_scope = 'mmocr'\n")
    code, log = _run(osp.join(TOOLS, 'train.py'), str(cfg))
    assert code != 0
    assert "default_scope='mmocr'" in log and "['mmdet', 'mmpretrain', 'mmseg']" in log


def test_missing_config_and_checkpoint_are_clear(tmp_path, workspace):
    _, cfg = workspace
    code, log = _run(osp.join(TOOLS, 'train.py'), str(tmp_path / 'nope.py'))
    assert code != 0 and 'config file not found' in log
    code, log = _run(osp.join(TOOLS, 'test.py'), cfg, str(tmp_path / 'nope.pth'))
    assert code != 0 and 'checkpoint not found' in log


def test_dist_scripts_usage():
    for script, nargs in (('dist_train.sh', 2), ('dist_test.sh', 3), ('slurm_train.sh', 4),
                          ('slurm_test.sh', 4)):
        proc = subprocess.run(['bash', osp.join(TOOLS, script)], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and 'usage:' in proc.stderr, script
