# Demo: a small ScalableViT image classifier on the synthetic "shapes" set (4 classes,
# 64x64), trained from scratch on CPU in minutes. Inherits the real ImageNet config
# (../scalablevit/scalablevit-s_8xb128_in1k.py): the same backbone type, SSA/IWSA blocks,
# head (Linear-LN-GELU-Linear), loss, AdamW with gradient clipping and warm-up + cosine;
# what changes is listed below with its reason. projects/shapes_demo/demo.py trains it first: the
# demo
# segmentor (upernet_scalablevit-xs_shapes.py) starts from it, as the real ADE20K recipe
# starts from the ImageNet classifier.
#   python projects/shapes_demo/generate_shapes.py --out data/shapes
#   python tools/train.py projects/shapes_demo/configs/scalablevit-xs_shapes-cls.py
_base_ = [
    'mmscope::scalablevit/scalablevit-s_8xb128_in1k.py', './_base_/scalablevit-xs.py',
    './_base_/shapes-cls.py'
]

# ----------------------------------------------------------------------------- model
# the custom arch "XS" (./_base_/scalablevit-xs.py: ScalableViT-S's attention settings at
# half the width, 8 blocks; 2.6 M parameters); drop path 0.2 -> 0: stochastic depth
# regularises 300 ImageNet epochs, not a few hundred iterations. The head: one Linear on
# the pooled features (the real one, Linear(C, 4096)-LN-GELU-Linear, is sized for 1000
# classes; on these 4 classes it did not train in minutes: top-1 at chance, 25.5% after 5
# epochs at lr 2e-3 and 26% after 3 at 5e-4, against 31.5% after 3 and 36% after 5 with
# one Linear at 1e-3; same loss and initialisation, on the background-dominated images of
# the generator's version 3)
model = dict(
    backbone=dict(arch=_base_.scalablevit_xs, drop_path_rate=0.),
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=4,
        in_channels=256,
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(_delete_=True))

# ----------------------------------------------------------------------------- schedule
# a plain OptimWrapper: the real config trains under CUDA AMP, the demo picks its precision
# (projects/shapes_demo/demo.py --precision); the same AdamW, clipping, linear warm-up and cosine,
# over
# 20 short epochs (63 iterations each) with lr 1e-3 for batch 32; validation every other
# epoch (a second per pass) draws the metric curve
max_epochs = 20
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-2,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=2)

# ----------------------------------------------------------------------------- data
# the shapes set and runtime (./_base_/shapes-cls.py)
data_preprocessor = {{_base_.shapes_data_preprocessor}}
train_pipeline = {{_base_.shapes_train_pipeline}}
test_pipeline = {{_base_.shapes_test_pipeline}}
train_dataloader = {{_base_.shapes_train_dataloader}}
val_dataloader = {{_base_.shapes_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.shapes_val_evaluator}}
test_evaluator = val_evaluator
auto_scale_lr = {{_base_.shapes_auto_scale_lr}}
default_hooks = {{_base_.shapes_default_hooks}}
log_processor = {{_base_.shapes_log_processor}}
randomness = {{_base_.shapes_randomness}}
