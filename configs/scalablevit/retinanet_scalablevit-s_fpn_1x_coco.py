# RetinaNet + FPN with a ScalableViT-S backbone on COCO, 1x schedule (12 epochs, 8 GPUs x 2
# images). ScalableViT released no detection configs; this is the closest published recipe
# (see README), the PVT/Twins RetinaNet 1x setting: single-scale 1333x800 training, AdamW
# lr 1e-4, wd 1e-4, steps at epochs 8 and 11, drop path 0.2. Backbone and checkpoint:
# ../_base_/models/scalablevit_dense.py.
# Only stages 1-3 (strides 8/16/32) feed the FPN (P3-P7, P6 from the last input), so the
# backbone outputs just those: an unused stage-0 output norm would break DDP.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/models/scalablevit_dense.py',
]

model = dict(
    backbone=dict(_base_.scalablevit_backbone, out_indices=(1, 2, 3)),
    neck=dict(in_channels=[128, 256, 512], start_level=0, add_extra_convs='on_input', num_outs=5))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
