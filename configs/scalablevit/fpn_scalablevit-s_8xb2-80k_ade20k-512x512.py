# Semantic FPN with a ScalableViT-S backbone on ADE20K, 512x512 crops, 80k iterations, total
# batch 16 (8 GPUs x 2 here; the authors ran 4 GPUs x 4, the same batch). ScalableViT
# released no segmentation configs; this is the PVT/Twins Semantic FPN setting: AdamW
# lr 1e-4, wd 1e-4, poly decay (power 0.9) to 0, drop path 0.2. Backbone and checkpoint:
# ../_base_/models/scalablevit_dense.py.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/models/scalablevit_dense.py',
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=_base_.scalablevit_backbone,
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(num_classes=150))

train_dataloader = dict(batch_size=2)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=None)

param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0, end=80000),
]

auto_scale_lr = dict(enable=False, base_batch_size=16)
