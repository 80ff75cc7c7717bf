# What every demo segmentor changes in its real ADE20K config: the synthetic "shapes"
# scenes in the ADE20K layout (4 shape classes + background, 128x128), their pipelines, a
# schedule of some hundred iterations and the runtime. As in ./shapes-det.py the settings
# are named ``shapes_*``, because mmengine refuses a key that two bases both define; a
# leaf config (its real ADE20K config first, this fragment second) assigns them:
# ``train_dataloader = {{_base_.shapes_train_dataloader}}``. Used by
# ../upernet_scalablevit-xs_shapes.py and its control ../controls/upernet_r18_shapes.py.
#
# Labels follow ADE20K's reduce_zero_label convention, like the real configs: annotation
# PNG value 0 = unlabelled (ignored; the generator writes none), 1 = background, 2..5 = the
# shapes. After the reduction the 5 classes are ``classes`` below. ADE20KDataset pins the
# 150 ADE classes, so the same layout is read with BaseSegDataset and its ADE settings.
shapes_data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/seg'
classes = ('background', 'circle', 'square', 'star', 'triangle')
palette = [(0, 0, 0), (220, 20, 60), (0, 130, 230), (250, 170, 30), (0, 170, 80)]
shapes_num_classes = len(classes)
img_scale = (64, 64)
shapes_crop_size = (64, 64)
max_iters = 2400
warmup_iters = 50
batch_size = 4

# ----------------------------------------------------------------------------- data
shapes_data_preprocessor = dict(size=shapes_crop_size)
dataset = dict(
    type='BaseSegDataset',
    data_root=shapes_data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
# the real pipeline (random resize, crops that are not mostly one class, flip), on the
# scenes read at half size (64x64): what tells the classes apart is the whole outline of
# a shape, which 64-pixel crops of the 128-pixel scenes cut apart, while full 128-pixel
# crops would take four times as long. Testing on the whole image at the same scale; the
# predictions are scored at the annotations' full 128x128 resolution.
shapes_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=shapes_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
shapes_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
shapes_train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=shapes_train_pipeline))
shapes_val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=shapes_test_pipeline))

# ----------------------------------------------------------------------------- schedule
# the real configs' linear warm-up and poly decay over 2400 iterations of 4 scenes (24
# passes over the 400 scenes), with their own optimizers and learning rates scaled to batch
# 4; validation every 600 iterations (5 s per pass) draws the metric curve. The number of
# scenes seen was the limit (docs/demo.md): 1200 iterations reached mIoU 37 with star and
# triangle IoU 9 and 21, 2400 reached 57 with every class at 32 or more.
shapes_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
shapes_train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=600)
shapes_auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
shapes_default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
shapes_log_processor = dict(window_size=10)
shapes_randomness = dict(seed=0)
