"""What the tool tests share: a two-class image-folder classifier config on data they
generate, the tools' ``main`` run in-process, and checkpoints of its model
(``tests/test_tools/test_*.py``)."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
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


def _run(*args):
    proc = subprocess.run([sys.executable, *args],
                          capture_output=True,
                          text=True,
                          cwd=ROOT,
                          timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _tool(name):
    """The ``main`` of ``tools/<name>.py``, run in this process (no interpreter start)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'mmscope_tool_{name}',
                                                  osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _checkpoint(cfg, path, other_family=False):
    """A checkpoint of the config's classifier (seeded initial weights, the classes in
    its meta), or of a ScalableViT classifier (``other_family``) with the same head."""
    from mmscope.apis import build_model, load_config
    from mmscope.models.backbones import ScalableViT
    torch.manual_seed(0)
    sd = build_model(load_config(cfg)).state_dict()
    if other_family:
        other = ScalableViT(arch='small', out_indices=(3, )).state_dict()
        sd = {
            **{
                'backbone.' + k: v
                for k, v in other.items()
            },
            **{
                k: v
                for k, v in sd.items() if not k.startswith('backbone.')
            }
        }
    torch.save({'state_dict': sd, 'meta': {'dataset_meta': {'classes': ['left', 'right']}}}, path)
    return path
