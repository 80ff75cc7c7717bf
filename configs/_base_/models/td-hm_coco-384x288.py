# Top-down heatmap pose estimation on COCO keypoints at 384x288 (H x W): the 256x192 recipe
# (td-hm_coco-256x192.py, as the released scopevit_*_coco_384x288.py configs) with a larger
# input and heatmap (stride 4 still); the pipelines and the head's decoder read the codec,
# so they are given again with this one.
_base_ = ['./td-hm_coco-256x192.py']

# input (W, H) = (288, 384), heatmaps (72, 96)
codec = dict(_base_.codec, input_size=(288, 384), heatmap_size=(72, 96))

model = dict(head=dict(decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
