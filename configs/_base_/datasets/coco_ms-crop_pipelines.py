# Multi-scale + random-crop COCO training pipelines of the "3x" recipe (Swin / Twins /
# PVTv2 Mask R-CNN and RetinaNet 3x, originally DETR's augmentation), for mmdet 3.x.
# A 3x config lists this file next to its 1x config in ``_base_`` and then picks a pipeline:
#     train_pipeline = {{_base_.ms_crop_ins_pipeline}}    # boxes + masks (Mask R-CNN)
#     train_pipeline = {{_base_.ms_crop_det_pipeline}}    # boxes only (RetinaNet)
# Only new names are defined here, so the file never clashes with the other bases.

# short side 480..800 in steps of 32, long side at most 1333
ms_crop_scales = [(480 + 32 * i, 1333) for i in range(11)]

ms_crop_augment = dict(
    type='RandomChoice',
    transforms=[
        # either a plain multi-scale resize ...
        [dict(type='RandomChoiceResize', scales=ms_crop_scales, keep_ratio=True)],
        # ... or resize, crop a random 384..600 box, then multi-scale resize
        [
            dict(
                type='RandomChoiceResize',
                scales=[(400, 1333), (500, 1333), (600, 1333)],
                keep_ratio=True),
            dict(
                type='RandomCrop',
                crop_type='absolute_range',
                crop_size=(384, 600),
                allow_negative_crop=True),
            dict(type='RandomChoiceResize', scales=ms_crop_scales, keep_ratio=True),
        ],
    ])

ms_crop_ins_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    ms_crop_augment,
    dict(type='PackDetInputs'),
]

ms_crop_det_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    ms_crop_augment,
    dict(type='PackDetInputs'),
]
