# RetinaNet + FPN with a ScopeViT-T backbone on COCO, 1x schedule (12 epochs, 8 GPUs x 2
# images), single-scale 1333x800 training. Settings of the official config
# (xuesongnie/ScopeViT detection/configs/scopevit/retinanet_scopevit_tiny_fpn_1x_coco.py):
# AdamW lr 1e-4, betas (0.9, 0.999), wd 0.05, no gradient clipping, drop path 0.1, plain BN
# in the backbone, FPN on strides 8-32 with P6/P7 from the last input; steps at epochs 8
# and 11. No decay on norms, LayerScales and the GSDA relative-position MLP. Backbone,
# checkpoint and no-decay keys: ../_base_/models/scopevit_dense.py.
# The official config outputs all four stages and starts the FPN at level 1; outputting
# stages 1-3 and starting at level 0 builds the same network without computing an unused
# output.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/models/scopevit_dense.py',
]

model = dict(
    backbone=dict(_base_.scopevit_backbone, out_indices=(1, 2, 3)),
    neck=dict(in_channels=[64, 128, 256], start_level=0, add_extra_convs='on_input', num_outs=5))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmscope.BackboneOptimWrapperConstructor',
    paramwise_cfg=_base_.scopevit_paramwise_cfg,
    clip_grad=None)
