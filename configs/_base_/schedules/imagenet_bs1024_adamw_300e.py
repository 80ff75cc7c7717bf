# 300-epoch AdamW + cosine schedule with 5 linear warm-up epochs, total batch 1024
# (the DeiT/timm recipe that ScopeViT and ScalableViT both train with).
# Inherits mmpretrain's AdamW base (lr 1e-3 = 5e-4 * 1024 / 512, wd 0.05, no decay on
# norms, biases and other 1-D parameters) and replaces its 20-epoch warm-up with 5.
# The family configs set the warm-up start / cosine floor of their official scripts and
# the custom no-decay keys of their backbones.
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py'

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        _delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))

warmup_epochs = 5
max_epochs = 300
param_scheduler = [
    # linear warm-up, updated every iteration
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    # cosine decay over the remaining epochs
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)
