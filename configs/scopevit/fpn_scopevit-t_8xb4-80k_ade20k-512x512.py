# Semantic FPN with a ScopeViT-T backbone on ADE20K, 512x512 crops, 80k iterations, 8 GPUs x
# 4 images. Settings of the official config (xuesongnie/ScopeViT segmentation/configs/
# sem_fpn/scopevit/fpn_scopevit_tiny_80k_ade20k.py, the PVT recipe on 8 GPUs): AdamW
# lr 2e-4, wd 1e-4 on every parameter, poly decay (power 0.9) to 0; drop path 0.1; SyncBN
# in backbone and head. Backbone and checkpoint: ../_base_/models/scopevit_dense.py.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/models/scopevit_dense.py',
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(_base_.scopevit_backbone, norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(in_channels=[32, 64, 128, 256]),
    decode_head=dict(num_classes=150))

train_dataloader = dict(batch_size=4)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=None)

param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=80000),
]

auto_scale_lr = dict(enable=False, base_batch_size=32)
