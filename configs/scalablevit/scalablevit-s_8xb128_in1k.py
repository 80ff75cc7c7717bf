# ScalableViT-S on ImageNet-1K: 300 epochs, 8 GPUs x 128 images, 224x224.
# Recipe: the official DeiT-style script (Yangr116/ScalableViT image_classification/main.py
# defaults + README command): AdamW, lr 5e-4 * batch / 512 = 1e-3 for batch 1024, wd 0.05,
# cosine with 5 warm-up epochs from 1e-6, floor 1e-5, gradient clipping at norm 5.0,
# RandAugment rand-m9-mstd0.5-inc1, Mixup 0.8 / CutMix 1.0, label smoothing 0.1,
# RandomErasing 0.25, drop path 0.2 (S) / 0.5 (B, L), mixed precision; test: resize 256,
# centre crop 224, bicubic. Model (ScalableViT-S): ../_base_/models/scalablevit_in1k.py.
_base_ = [
    '../_base_/models/scalablevit_in1k.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_300e.py',
    'mmpretrain::_base_/default_runtime.py',
]

# 8 GPUs x 128 images
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    # the official script always trains under torch.cuda.amp (autocast + dynamic loss
    # scaling); on a CPU use --cfg-options optim_wrapper.type=OptimWrapper
    type='AmpOptimWrapper',
    optimizer=dict(lr=5e-4 * 1024 / 512),
    # no weight decay on norms, biases, every 1-D parameter (the schedule's paramwise_cfg)
    # nor on the backbone's no-decay keys, the positional-encoding convolutions (the
    # official ``no_weight_decay()`` lists ``pos_block``, which is ``stages.{i}.pos_conv``
    # in mmscope), which this constructor takes from the backbone
    # (ScalableViT.no_decay_keys)
    constructor='mmscope.BackboneOptimWrapperConstructor',
    clip_grad=dict(max_norm=5.0))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / 1e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=295, eta_min=1e-5, by_epoch=True, begin=5, end=300),
]

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='auto'))
