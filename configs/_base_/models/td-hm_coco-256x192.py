# Top-down heatmap pose estimation on COCO keypoints at 256x192 (H x W): the recipe of the
# released ScopeViT pose configs (xuesongnie/ScopeViT pose_estimation/configs/body/
# 2d_kpt_sview_rgb_img/topdown_heatmap/coco/scopevit_*_coco_256x192.py, mmpose 0.x) in
# mmpose 1.x form, for any mmscope backbone. Everything but the backbone is here:
# schedule, codec, head, data and evaluation; a pose config lists this file and the
# family's dense fragment (../_base_/models/<family>_dense.py) and writes
#     model = dict(backbone=dict(_base_.<family>_backbone, out_indices=(3, )),
#                  head=dict(in_channels=<last stage width>))
# The 384x288 recipe (td-hm_coco-384x288.py) changes only the codec and the inputs.
#
# * Adam lr 1e-3, no weight decay, no gradient clipping; linear warm-up over 500
#   iterations from 0.001 x lr, then x0.1 at epochs 170 and 200; 210 epochs, validation and
#   checkpoints every 10 epochs (the best by COCO AP kept). 8 GPUs x 32 images.
# * MSRA heatmaps, sigma 2, heatmap = input / 4; HeatmapHead: three 4x4 deconvolutions
#   (256 channels each, x2 each: stride 32 -> 4) and a 1x1 conv to the 17 keypoints;
#   MSE loss weighted by keypoint visibility.
# * Test: flip test, the flipped heatmaps shifted one pixel; person boxes of a detector
#   (AP 56 on COCO val2017 persons), OKS NMS at 0.9, keypoint score threshold 0.2 (the
#   CocoMetric defaults, as the released oks_thr / vis_thr).
# * Augmentation: horizontal flip, half body (prob 0.3, more than 8 visible keypoints),
#   random shift (0.16, prob 0.3), scale (0.5-1.5) and rotation (up to 80 degrees, prob
#   0.6): mmpose 1.x's defaults of RandomHalfBody / RandomBBoxTransform are the 1.x form
#   of the released TopDownHalfBodyTransform / TopDownRandomShiftBboxCenter /
#   TopDownGetRandomScaleRotation settings. Boxes padded by 1.25.
_base_ = ['mmpose::_base_/default_runtime.py']

# runtime and schedule
train_cfg = dict(max_epochs=210, val_interval=10)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),  # warm-up
    dict(type='MultiStepLR', begin=0, end=210, milestones=[170, 200], gamma=0.1, by_epoch=True),
]
# the lr above is for 8 GPUs x 32 images (tools/train.py --auto-scale-lr scales it)
auto_scale_lr = dict(base_batch_size=256)
default_hooks = dict(checkpoint=dict(save_best='coco/AP', rule='greater'))

# input (W, H) = (192, 256), heatmaps (48, 64)
codec = dict(type='MSRAHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2)

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    # set by the pose config (``_base_.<family>_backbone``, whose ``_delete_`` needs a
    # key to replace)
    backbone=dict(),
    head=dict(
        type='HeatmapHead',
        in_channels=256,  # the backbone's last stage width: set by each pose config
        out_channels=17,
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))

dataset_type = 'CocoDataset'
data_mode = 'topdown'
data_root = 'data/coco/'

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

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_val2017.json',
        # detected person boxes; bbox_file=None evaluates on the ground-truth boxes
        bbox_file=data_root + 'person_detection_results/'
        'COCO_val2017_detections_AP_H_56_person.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric', ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator
