# ImageNet-1K at 256x256 with ScopeViT's evaluation transform (timm crop_pct=0.9, bicubic).
# Training augmentation is mmpretrain's 256px timm-style pipeline (RandomResizedCrop 256
# bicubic, flip, RandAugment rand-m9-mstd0.5-inc1, RandomErasing 0.25 per-pixel), which
# it inherits unchanged. Only the test resize differs from mmpretrain's base (which uses
# crop_pct 0.875): short side floor(256 / 0.9) = 284, then the 256x256 centre crop.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64_swin_256.py'

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=284,  # int(256 / 0.9)
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackInputs'),
]

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
