# UperNet with a ScalableViT-S backbone on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2
# images. ScalableViT released no segmentation configs; this is the closest published
# recipe (see README), the Twins/Swin UperNet setting: AdamW lr 6e-5, betas (0.9, 0.999),
# wd 0.01, no decay on norms and positional convs, 1500 linear warm-up iterations, then
# poly decay (power 1.0) to 0; drop path 0.2; auxiliary FCN head on stage 3 (index 2,
# 256 channels). Backbone, checkpoint and no-decay keys:
# ../_base_/models/scalablevit_dense.py.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    '../_base_/models/scalablevit_dense.py',
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=_base_.scalablevit_backbone,
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    # the auxiliary head reads stage 3 (in_index=2): its width is embed_dims[2]
    auxiliary_head=dict(in_channels=256, in_index=2, num_classes=150))

train_dataloader = dict(batch_size=2)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    constructor='mmscope.BackboneOptimWrapperConstructor',
    paramwise_cfg=_base_.scalablevit_paramwise_cfg)

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]

auto_scale_lr = dict(enable=False, base_batch_size=16)
