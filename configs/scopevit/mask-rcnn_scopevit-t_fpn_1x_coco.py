# Mask R-CNN + FPN with a ScopeViT-T backbone on COCO, 1x schedule (12 epochs, 8 GPUs x 2
# images), single-scale 1333x800 training. Settings of the official config
# (xuesongnie/ScopeViT detection/configs/scopevit/mask_rcnn_scopevit_tiny_fpn_1x_coco.py):
# AdamW lr 2e-4, betas (0.9, 0.999), wd 0.05, no gradient clipping, drop path 0.1, plain BN
# in the backbone; steps at epochs 8 and 11. No decay on norms, LayerScales and the GSDA
# relative-position MLP. Backbone, checkpoint and no-decay keys:
# ../_base_/models/scopevit_dense.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/models/scopevit_dense.py',
]

model = dict(backbone=_base_.scopevit_backbone, neck=dict(in_channels=[32, 64, 128, 256]))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmscope.BackboneOptimWrapperConstructor',
    paramwise_cfg=_base_.scopevit_paramwise_cfg,
    clip_grad=None)
