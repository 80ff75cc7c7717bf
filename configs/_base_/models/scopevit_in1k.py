# ImageNet-1K classifier around mmscope's ScopeViT (mmpretrain).
# ScopeViT's official head: global average pooling of the last stage, then one Linear.
# Variants override ``backbone.arch``, ``backbone.drop_path_rate`` and ``head.in_channels``.

# importing mmscope registers the backbone (type='mmscope.ScopeViT')
custom_imports = dict(imports=['mmscope'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmscope.ScopeViT', arch='tiny', drop_path_rate=0.1, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=256,
        # the official classifier is trunc-normal(0.02) initialised, bias 0
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    # timm Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5): one of the
    # two per batch, picked with equal probability
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
