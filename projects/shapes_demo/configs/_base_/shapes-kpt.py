# What every demo pose model changes in its real COCO top-down config: the keypoints of the
# synthetic "shapes" scenes (5 per object: centre; top-, bottom-, left- and rightmost
# vertex; COCO keypoints layout, det/annotations/keypoints_*.json), 64x64 crops of the
# ground-truth boxes, a schedule of some hundred iterations and the runtime. As in
# ./shapes-det.py the settings are named ``shapes_*`` (mmengine refuses a key that two
# bases both define) and a leaf config (its real COCO config first, this fragment second)
# assigns them. Used by ../td-hm_scopevit-xt_shapes-kpt.py and its control
# ../controls/td-hm_r18_shapes-kpt.py.
shapes_data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/det/'
input_size = (64, 64)  # (W, H): the boxes are 20..56 pixels, 1.25x padded
max_iters = 160  # about 4 passes over the 1300 training objects
batch_size = 32

# ----------------------------------------------------------------------------- keypoints
# mmpose metainfo of the generator's keypoints (projects/shapes_demo/shapes_demo/shapes.py:
# KEYPOINTS, KEYPOINT_SKELETON, KEYPOINT_SIGMAS, KEYPOINT_SWAP; also in the data set's meta.json).
# A horizontal flip swaps left and right; top, bottom and the centre stay.
metainfo = dict(
    dataset_name='mmscope_shapes',
    keypoint_info={
        0: dict(name='centre', id=0, color=[255, 255, 255], type='', swap=''),
        1: dict(name='top', id=1, color=[220, 20, 60], type='upper', swap=''),
        2: dict(name='bottom', id=2, color=[0, 130, 230], type='lower', swap=''),
        3: dict(name='left', id=3, color=[0, 170, 80], type='', swap='right'),
        4: dict(name='right', id=4, color=[250, 170, 30], type='', swap='left'),
    },
    skeleton_info={
        0: dict(link=('centre', 'top'), id=0, color=[220, 20, 60]),
        1: dict(link=('centre', 'bottom'), id=1, color=[0, 130, 230]),
        2: dict(link=('centre', 'left'), id=2, color=[0, 170, 80]),
        3: dict(link=('centre', 'right'), id=3, color=[250, 170, 30]),
    },
    joint_weights=[1.0] * 5,
    sigmas=[0.05, 0.08, 0.08, 0.08, 0.08])
shapes_num_keypoints = len(metainfo['keypoint_info'])

# 5 heatmaps of 16x16 (input / 4, as on COCO); sigma 1 heatmap pixel = 4 input pixels
shapes_codec = dict(
    type='MSRAHeatmap',
    input_size=input_size,
    heatmap_size=(input_size[0] // 4, input_size[1] // 4),
    sigma=1)

# ----------------------------------------------------------------------------- data
# The COCO augmentation without the two that do not fit these keypoints: no rotation
# ("top" / "left" are image directions, which a rotated crop would not keep) and no half
# body (it needs more than 8 visible keypoints).
shapes_train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', rotate_factor=0.0, rotate_prob=0.0),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='GenerateTarget', encoder=shapes_codec),
    dict(type='PackPoseInputs'),
]
shapes_val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='PackPoseInputs'),
]
shapes_train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root=shapes_data_root,
        metainfo=metainfo,
        ann_file='annotations/keypoints_train.json',
        data_prefix=dict(img='train/'),
        pipeline=shapes_train_pipeline))
# top-down from the ground-truth boxes (bbox_file=None); 32 object crops per test batch
shapes_val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=shapes_data_root,
        metainfo=metainfo,
        bbox_file=None,
        ann_file='annotations/keypoints_val.json',
        data_prefix=dict(img='val/'),
        pipeline=shapes_val_pipeline))
shapes_val_evaluator = dict(ann_file=shapes_data_root + 'annotations/keypoints_val.json')

# ----------------------------------------------------------------------------- schedule
# the real configs' optimizers and linear warm-up, then x0.1 at 3/4 of the run, counted
# in iterations so that a checkpoint every 50 iterations can be resumed exactly
shapes_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[int(0.75 * max_iters)],
        gamma=0.1),
]
shapes_train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
shapes_auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
# test pictures (tools/test.py --show-dir) draw the keypoints scoring 0.1 or more: the
# peaks of a few minutes' training are lower than a COCO model's
shapes_default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=50, max_keep_ckpts=2, save_best=None),
    visualization=dict(kpt_thr=0.1))
shapes_log_processor = dict(window_size=10, by_epoch=False)
shapes_randomness = dict(seed=0)
