# RetinaNet + FPN with a ScopeViT-T backbone on COCO, 1x schedule (12 epochs, 8 GPUs x 2
# images), single-scale 1333x800 training. Settings of the official config
# (xuesongnie/ScopeViT detection/configs/scopevit/retinanet_scopevit_tiny_fpn_1x_coco.py):
# AdamW lr 1e-4, betas (0.9, 0.999), wd 0.05, no gradient clipping, drop path 0.1, plain BN
# in the backbone, FPN on strides 8-32 with P6/P7 from the last input; steps at epochs 8
# and 11. No decay on norms, LayerScales and the GSDA relative-position MLP.
# The official config outputs all four stages and starts the FPN at level 1; outputting
# stages 1-3 and starting at level 0 builds the same network without computing an unused
# output.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
default_scope = 'mmdet'
custom_imports = dict(imports=['mmscope'], allow_failed_imports=False)

# ImageNet-1K classifier checkpoint (mmpretrain format, keys 'backbone.*'); see
# configs/scopevit/README.md. Change it with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
pretrained = 'work_dirs/scopevit-t_8xb128_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmscope.ScopeViT',
        arch='tiny',
        drop_path_rate=0.1,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        with_cp=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256], start_level=0, add_extra_convs='on_input',
              num_outs=5))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            '.gamma': dict(decay_mult=0.0),
            '.rel_pos.': dict(decay_mult=0.0),
        }),
    clip_grad=None)
