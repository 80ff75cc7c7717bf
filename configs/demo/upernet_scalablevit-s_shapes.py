# Demo: UperNet with a ScalableViT-S backbone on the synthetic "shapes" scenes (ADE20K
# layout, 4 shape classes + background, 128x128), trained from scratch on CPU in about
# five minutes. In that time it learns to separate the shapes from the background and to
# segment circles and squares (mIoU ~29% against 17% for background everywhere); telling the
# other shapes apart takes the ImageNet-pretrained backbone of the real recipe, or longer.
# Inherits the real ADE20K config: same backbone, UperNet decode head, auxiliary FCN head,
# losses and optimizer type; only the data, the input size and the schedule length change.
#   python tools/dataset_converters/generate_shapes.py --out data/shapes
#   python tools/train.py configs/demo/upernet_scalablevit-s_shapes.py
# The data root can be moved with the environment variable MMSCOPE_SHAPES_ROOT.
#
# Labels follow ADE20K's reduce_zero_label convention, like the real config: annotation PNG
# value 0 = unlabelled (ignored; the generator writes none), 1 = background, 2..5 = the
# shapes. After the reduction the 5 classes are SEG_CLASSES below. ADE20KDataset pins the
# 150 ADE classes, so the same layout is read with BaseSegDataset and its ADE settings.
_base_ = ['../scalablevit/upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py']

data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/seg'
classes = ('background', 'circle', 'square', 'star', 'triangle')
palette = [(0, 0, 0), (220, 20, 60), (0, 130, 230), (250, 170, 30), (0, 170, 80)]
img_scale = (64, 64)
crop_size = (64, 64)
max_iters = 300
warmup_iters = 20
batch_size = 4

# ----------------------------------------------------------------------------- model
# from scratch (no ImageNet checkpoint for a newcomer); 5 classes
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=None),
    decode_head=dict(num_classes=len(classes)),
    auxiliary_head=dict(num_classes=len(classes)))

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
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# ----------------------------------------------------------------------------- schedule
# the same AdamW with linear warm-up and poly decay, over 300 iterations
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=50, max_keep_ckpts=2))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
