# What every demo classifier changes in its real ImageNet config: the synthetic "shapes"
# classification set (4 classes, 64x64, one object per image), its pipelines and runtime.
# mmengine refuses a key that two bases both define, so the settings are named
# ``shapes_*`` here and a leaf config (its family's real ImageNet config first, this
# fragment second) assigns them: ``train_dataloader = {{_base_.shapes_train_dataloader}}``
# (merged into the real config's dict, as a dict written in the leaf would be).
data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/cls'
classes = ('circle', 'square', 'star', 'triangle')
img_size = 64
batch_size = 32

# ----------------------------------------------------------------------------- model
# 4 classes (a leaf also sets its head's num_classes and drops the real config's
# Mixup/CutMix with ``train_cfg=dict(_delete_=True)``: they are augmentations tuned for
# 300 ImageNet epochs and only slow down a run of a few hundred iterations)
shapes_data_preprocessor = dict(num_classes=len(classes))

# ----------------------------------------------------------------------------- data
# the generator already places, sizes, rotates and colours every object at random; crops
# would cut corners off the shapes, so training only adds flips
shapes_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge', scale=img_size, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
shapes_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge', scale=img_size, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
shapes_train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        split='train',
        metainfo=dict(classes=classes),
        pipeline=shapes_train_pipeline))
shapes_val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        split='val',
        metainfo=dict(classes=classes),
        pipeline=shapes_test_pipeline))
shapes_val_evaluator = dict(type='Accuracy', topk=(1, ))
shapes_auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
shapes_default_hooks = dict(
    logger=dict(interval=10),
    # a checkpoint with every validation (every other epoch) and at the end, the last two
    # kept for --resume; no extra best-top-1 copy (the dense models start from the last
    # one; the ImageNet recipes' save_best is switched off): a save costs 0.6 s, a tenth of
    # an epoch
    checkpoint=dict(interval=2, max_keep_ckpts=2, save_best=None))
shapes_log_processor = dict(window_size=10)
shapes_randomness = dict(seed=0)
