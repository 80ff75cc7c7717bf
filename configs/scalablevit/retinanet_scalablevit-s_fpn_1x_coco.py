# RetinaNet + FPN with a ScalableViT-S backbone on COCO, 1x schedule (12 epochs, 8 GPUs x 2
# images). ScalableViT released no detection configs; this is the closest published recipe
# (see README), the PVT/Twins RetinaNet 1x setting: single-scale 1333x800 training, AdamW
# lr 1e-4, wd 1e-4, steps at epochs 8 and 11, drop path 0.2.
# Only stages 1-3 (strides 8/16/32) feed the FPN (P3-P7, P6 from the last input), so the
# backbone outputs just those: an unused stage-0 output norm would break DDP.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
default_scope = 'mmdet'
custom_imports = dict(imports=['mmscope'], allow_failed_imports=False)

# ImageNet-1K classifier checkpoint (mmpretrain format, keys 'backbone.*'); see
# configs/scalablevit/README.md. Change it with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
pretrained = 'work_dirs/scalablevit-s_8xb128_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmscope.ScalableViT',
        arch='small',
        drop_path_rate=0.2,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[128, 256, 512], start_level=0, add_extra_convs='on_input',
              num_outs=5))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=1e-4))
