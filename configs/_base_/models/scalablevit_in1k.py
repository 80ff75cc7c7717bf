# ImageNet-1K classifier around mmscope's ScalableViT (mmpretrain).
# The official head (Yangr116/ScalableViT, models/scalablevit.py) runs after the backbone's
# final LayerNorm and token mean-pooling:
#     Linear(C, 4096) -> LayerNorm(4096, eps=1e-6) -> GELU -> Linear(4096, 1000)
# This file is the ONE place that head is described; the variant configs only change
# ``head.in_channels`` (C = 512 / 768 / 1024 for S / B / L).

# importing mmscope registers the backbone (type='mmscope.ScalableViT')
custom_imports = dict(imports=['mmscope'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmscope.ScalableViT', arch='small', drop_path_rate=0.2, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='StackedLinearClsHead',
        num_classes=1000,
        in_channels=512,
        mid_channels=[4096],
        norm_cfg=dict(type='LN', eps=1e-6),
        act_cfg=dict(type='GELU'),
        # official: trunc-normal(0.02) Linear weights, zero biases, LN weight 1 / bias 0
        init_cfg=[
            dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
            dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
        ],
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
