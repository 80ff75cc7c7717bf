# Demo: ScopeViT-XT image classifier on the synthetic "shapes" set (4 classes, 64x64),
# trained from scratch on CPU in about five minutes. Inherits the real ImageNet config:
# same model (backbone, neck, head, loss), AdamW and warm-up + cosine; what changes: the
# data and input size (./_base_/shapes-cls.py), no Mixup/CutMix, a schedule of 10 short
# epochs with lr 2e-3 for batch 32. projects/shapes_demo/demo.py trains it first: the demo detector
# and
# pose estimator start from it, as the real COCO recipes start from the ImageNet one.
#   python projects/shapes_demo/generate_shapes.py --out data/shapes
#   python tools/train.py projects/shapes_demo/configs/scopevit-xt_shapes-cls.py
# The data root can be moved with the environment variable MMSCOPE_SHAPES_ROOT.
_base_ = ['mmscope::scopevit/scopevit-xt_8xb128_in1k.py', './_base_/shapes-cls.py']

max_epochs = 10
warmup_epochs = 1

# ----------------------------------------------------------------------------- model
# 4 classes; no Mixup/CutMix (see ./_base_/shapes-cls.py)
model = dict(head=dict(num_classes=4), train_cfg=dict(_delete_=True))

# ----------------------------------------------------------------------------- schedule
# the same AdamW + linear warm-up + cosine, over 10 short epochs (63 iterations each)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-2,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
# validation every other epoch (about 5 s per pass over the 400 images) draws the metric
# curve
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
