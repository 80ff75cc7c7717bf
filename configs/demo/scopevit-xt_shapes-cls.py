# Demo: ScopeViT-XT image classifier on the synthetic "shapes" set (4 classes, 64x64),
# trained from scratch on CPU in about four minutes. Inherits the real ImageNet config:
# same model (backbone, neck, head, loss), optimizer and schedule types; only the data,
# the input size and the length of the schedule change.
#   python tools/dataset_converters/generate_shapes.py --out data/shapes
#   python tools/train.py configs/demo/scopevit-xt_shapes-cls.py
# The data root can be moved with the environment variable MMSCOPE_SHAPES_ROOT.
_base_ = ['../scopevit/scopevit-xt_8xb128_in1k.py']

data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/cls'
classes = ('circle', 'square', 'star', 'triangle')
img_size = 64
max_epochs = 10
warmup_epochs = 1
batch_size = 32

# ----------------------------------------------------------------------------- model
# 4 classes; no Mixup/CutMix (they are training-data augmentation, tuned for 300 ImageNet
# epochs, and only slow down a two-minute run)
data_preprocessor = dict(num_classes=len(classes))
model = dict(head=dict(num_classes=len(classes)), train_cfg=dict(_delete_=True))

# ----------------------------------------------------------------------------- data
# the generator already places, sizes, rotates and colours every object at random; crops
# would cut corners off the shapes, so training only adds flips
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, split='train', metainfo=dict(classes=classes),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, split='val', metainfo=dict(classes=classes),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# ----------------------------------------------------------------------------- schedule
# the same AdamW + linear warm-up + cosine, over 10 short epochs (63 iterations each)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-5,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
# validation at the middle and at the end only: each pass over the 400 images costs seconds
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(interval=10),
    # a checkpoint every epoch (the last one kept for --resume), plus the best top-1
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='auto'))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
