# Mask R-CNN + FPN, ScalableViT-S, COCO 3x (36 epochs, 8 GPUs x 2 images) with multi-scale +
# random-crop training: the Swin/Twins 3x setting (AdamW lr 1e-4, wd 0.05, no decay on
# norms and positional convs, 1000 warm-up iterations, steps at epochs 27 and 33).
_base_ = [
    './mask-rcnn_scalablevit-s_fpn_1x_coco.py',
    '../_base_/datasets/coco_ms-crop_pipelines.py',
]

train_pipeline = {{_base_.ms_crop_ins_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={'.pos_conv.': dict(decay_mult=0.0)}))
