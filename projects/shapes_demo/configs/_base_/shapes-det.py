# What every demo detector changes in its real COCO config: the synthetic "shapes" scenes
# (COCO instances with polygon masks, 4 classes, 128x128), their pipelines, a schedule of
# a few hundred iterations and the runtime. mmengine refuses a key that two bases both
# define, so the settings are named ``shapes_*`` here and a leaf config (its real COCO
# config first, this fragment second) assigns them:
# ``train_dataloader = {{_base_.shapes_train_dataloader}}``.
shapes_data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/det/'
classes = ('circle', 'square', 'star', 'triangle')
img_scale = (128, 128)
shapes_num_classes = len(classes)
max_iters = 800
batch_size = 2
# The channels of the FPN and of every head after it (RPN, RoI box and mask heads): 64
# instead of COCO's 256. At 256 the heads cost many times the backbone on these small
# scenes (the mask head's four 3x3 convolutions alone run on every positive RoI); a
# training step (2 scenes, one thread) measured 1.63 s at 256, 0.77 s at 128 and 0.43 s at
# 64, and at 64 the detector learned more per step, not less (docs/demo.md).
shapes_fpn_width = 64

# ----------------------------------------------------------------------------- data
metainfo = dict(
    classes=classes, palette=[(220, 20, 60), (0, 130, 230), (0, 170, 80), (250, 170, 30)])
shapes_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
shapes_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
shapes_train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root=shapes_data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=shapes_train_pipeline))
shapes_val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=shapes_data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=shapes_test_pipeline))
shapes_val_evaluator = dict(ann_file=shapes_data_root + 'annotations/instances_val.json')

# ----------------------------------------------------------------------------- schedule
# the real config's optimizer with lr 1e-3, its linear warm-up and step decay, counted in
# iterations (four passes over the 400 scenes: at 200, Mask R-CNN reached bbox / mask mAP
# 10 / 14, at 800 35 / 39; docs/demo.md) so that a checkpoint every 100 iterations can
# be resumed exactly
shapes_optim_wrapper = dict(optimizer=dict(lr=1e-3))
shapes_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
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
shapes_default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
shapes_log_processor = dict(window_size=10, by_epoch=False)
shapes_randomness = dict(seed=0)
