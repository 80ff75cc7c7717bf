# Demo: UperNet with a ScalableViT-XS backbone on the synthetic "shapes" scenes (ADE20K
# layout, 4 shape classes + background, 128x128), trained on CPU in minutes.
# Inherits the real ADE20K config: same backbone type, UperNet decode head, auxiliary FCN
# head, losses, AdamW and poly schedule; what changes is listed below with its reason.
#
# As the ADE20K config starts from the ImageNet classifier, this one starts from the demo's
# ScalableViT-XS classifier (projects/shapes_demo/configs/scalablevit-xs_shapes-cls.py), which
# projects/shapes_demo/demo.py trains first. Standalone:
#   python projects/shapes_demo/generate_shapes.py --out data/shapes
#   python tools/train.py projects/shapes_demo/configs/scalablevit-xs_shapes-cls.py \
#       --work-dir work_dirs/demo/cls-scalable
#   python tools/train.py projects/shapes_demo/configs/upernet_scalablevit-xs_shapes.py
# Environment: MMSCOPE_SHAPES_ROOT (data root, default data/shapes), MMSCOPE_DEMO_CLS_CKPT
# (classifier checkpoint); or --cfg-options model.backbone.init_cfg=None for from scratch.
#
# Labels follow ADE20K's reduce_zero_label convention, like the real config: annotation PNG
# value 0 = unlabelled (ignored; the generator writes none), 1 = background, 2..5 = the
# shapes. After the reduction the 5 classes are SEG_CLASSES below. ADE20KDataset pins the
# 150 ADE classes, so the same layout is read with BaseSegDataset and its ADE settings.
_base_ = [
    'mmscope::scalablevit/upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py',
    './_base_/scalablevit-xs.py'
]

data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/seg'
pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo/cls-scalable/epoch_20.pth}}'
classes = ('background', 'circle', 'square', 'star', 'triangle')
palette = [(0, 0, 0), (220, 20, 60), (0, 130, 230), (250, 170, 30), (0, 170, 80)]
img_scale = (64, 64)
crop_size = (64, 64)
max_iters = 1200
warmup_iters = 50
batch_size = 4

# ----------------------------------------------------------------------------- model
# 5 classes; the custom arch "XS" (./_base_/scalablevit-xs.py) of the demo classifier it
# starts from; drop path 0.2 -> 0 (it regularises 160k iterations, not a few hundred); the
# UperNet and FCN heads at 128 channels instead of 512 / 256, in proportion to the
# half-width backbone (at 512 channels the heads cost 10x the backbone's time)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=_base_.scalablevit_xs, drop_path_rate=0., init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=128, num_classes=len(classes)),
    auxiliary_head=dict(in_channels=128, channels=128, num_classes=len(classes)))

# ----------------------------------------------------------------------------- data
dataset_type = 'BaseSegDataset'
dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
# the real pipeline (random resize, crops that are not mostly one class, flip), on the
# scenes read at half size (64x64): what tells the classes apart is the whole outline of
# a shape, which 64-pixel crops of the 128-pixel scenes cut apart, while full 128-pixel
# crops would take four times as long. Testing on the whole image at the same scale; the
# predictions are scored at the annotations' full 128x128 resolution.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# ----------------------------------------------------------------------------- schedule
# the same AdamW with linear warm-up and poly decay, over 1200 iterations (12 passes over
# the 400 scenes) with lr 1e-3 for batch 4; validation every 300 iterations (5 s per pass)
# draws the metric curve
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=300)
auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
