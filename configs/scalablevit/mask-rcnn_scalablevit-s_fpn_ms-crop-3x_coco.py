# Mask R-CNN + FPN, ScalableViT-S, COCO 3x (36 epochs, 8 GPUs x 2 images) with multi-scale +
# random-crop training: the Swin/Twins 3x setting (AdamW lr 1e-4, wd 0.05, no decay on
# norms and positional convs, 1000 warm-up iterations, steps at epochs 27 and 33).
_base_ = ['./mask-rcnn_scalablevit-s_fpn_1x_coco.py', '../_base_/schedules/coco_ms-crop-3x.py']

train_pipeline = _base_.ms_crop_ins_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=_base_.max_epochs)
param_scheduler = _base_.ms_crop_3x_param_scheduler

# the 1x optimizer with wd 0.05 and no decay on norms and positional convs
optim_wrapper = dict(
    optimizer=dict(weight_decay=0.05),
    constructor='mmscope.BackboneOptimWrapperConstructor',
    paramwise_cfg=_base_.scalablevit_paramwise_cfg)
