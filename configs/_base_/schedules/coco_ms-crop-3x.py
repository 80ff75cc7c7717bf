# The "3x" COCO recipe of Swin / Twins (Mask R-CNN and RetinaNet 3x) on top of a 1x config:
# 36 epochs, 1000 linear warm-up iterations, steps at epochs 27 and 33, trained with the
# multi-scale + random-crop pipelines of ../datasets/coco_ms-crop_pipelines.py.
# A 3x config lists its 1x config and this file in ``_base_`` and then writes
#     train_pipeline = _base_.ms_crop_ins_pipeline  # boxes + masks (Mask R-CNN), or
#                                                   # _base_.ms_crop_det_pipeline (RetinaNet)
#     train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
#     train_cfg = dict(max_epochs=_base_.max_epochs)
#     param_scheduler = _base_.ms_crop_3x_param_scheduler
# Only new names are defined here, so the file never clashes with the 1x config.
_base_ = '../datasets/coco_ms-crop_pipelines.py'

max_epochs = 36
ms_crop_3x_param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
