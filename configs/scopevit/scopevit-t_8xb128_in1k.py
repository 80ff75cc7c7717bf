# ScopeViT-T on ImageNet-1K: 300 epochs, 8 GPUs x 128 images, 256x256 train and test.
# Recipe: the official timm script (xuesongnie/ScopeViT train.py defaults): AdamW lr 1e-3
# (batch 1024), wd 0.05, cosine, 5 warm-up epochs from 1e-5, floor 1e-6, no gradient
# clipping, RandAugment rand-m9-mstd0.5-inc1, Mixup 0.8 / CutMix 1.0, label smoothing
# 0.1, RandomErasing 0.25; evaluation at 256 with crop_pct 0.9 (bicubic). Model (ScopeViT-T,
# drop path 0.1): ../_base_/models/scopevit_in1k.py.
_base_ = [
    '../_base_/models/scopevit_in1k.py',
    '../_base_/datasets/imagenet_bs128_scopevit_256.py',
    '../_base_/schedules/imagenet_bs1024_adamw_300e.py',
    'mmpretrain::_base_/default_runtime.py',
]

optim_wrapper = dict(
    optimizer=dict(lr=5e-4 * 1024 / 512),
    # no weight decay on norms, biases and every 1-D parameter (the schedule's
    # paramwise_cfg; this covers the LayerScale ``gamma``s, which timm's optimizer factory
    # also exempts), nor on the backbone's no-decay keys (LayerScales and the
    # relative-position MLP of the global attention), which this constructor takes from
    # the backbone (ScopeViT.no_decay_keys)
    constructor='mmscope.BackboneOptimWrapperConstructor',
    clip_grad=None)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-5 / 1e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=295, eta_min=1e-6, by_epoch=True, begin=5, end=300),
]

# keep the best (top-1) and the last checkpoint
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='auto'))
