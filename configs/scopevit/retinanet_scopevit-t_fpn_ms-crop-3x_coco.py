# RetinaNet + FPN, ScopeViT-T, COCO 3x (36 epochs, 8 GPUs x 2 images) with multi-scale +
# random-crop training. ScopeViT released only 1x configs: this keeps their optimizer
# (AdamW lr 1e-4, wd 0.05, same no-decay groups) and adds the Swin 3x schedule and
# augmentation (1000 warm-up iterations, steps at epochs 27 and 33).
_base_ = [
    './retinanet_scopevit-t_fpn_1x_coco.py',
    '../_base_/datasets/coco_ms-crop_pipelines.py',
]

train_pipeline = {{_base_.ms_crop_det_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]
