# Mask R-CNN + FPN with a ScalableViT-S backbone on COCO, 1x schedule (12 epochs, 8 GPUs x 2
# images). ScalableViT released no detection configs; this is the closest published recipe
# (see README), the PVT/Twins 1x setting: single-scale 1333x800 training, AdamW lr 1e-4,
# wd 1e-4, steps at epochs 8 and 11, drop path 0.2 (Twins dense-task value for S/B models).
# Backbone and checkpoint: ../_base_/models/scalablevit_dense.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/models/scalablevit_dense.py',
]

model = dict(backbone=_base_.scalablevit_backbone, neck=dict(in_channels=[64, 128, 256, 512]))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
