# Mask R-CNN + FPN, ScopeViT-T, COCO 3x (36 epochs, 8 GPUs x 2 images) with multi-scale +
# random-crop training. ScopeViT released only 1x configs: this keeps their optimizer
# (AdamW lr 2e-4, wd 0.05, same no-decay groups) and adds the Swin 3x schedule and
# augmentation (1000 warm-up iterations, steps at epochs 27 and 33).
_base_ = ['./mask-rcnn_scopevit-t_fpn_1x_coco.py', '../_base_/schedules/coco_ms-crop-3x.py']

train_pipeline = _base_.ms_crop_ins_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=_base_.max_epochs)
param_scheduler = _base_.ms_crop_3x_param_scheduler
