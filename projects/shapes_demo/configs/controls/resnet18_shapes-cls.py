# Control for the demo classifiers (issue 33): mmpretrain's own ResNet-18 on the same shapes
# images, pipeline, batch and epochs as ../scopevit-xt_shapes-cls.py, with ResNet's own
# optimizer (SGD, momentum 0.9, weight decay 1e-4; lr 0.1 for 256 images, scaled to 32).
# The dense controls start from it, as the demo's dense models start from the demo
# classifiers.
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py', '../_base_/shapes-cls.py']

max_epochs = 10
warmup_epochs = 1

model = dict(head=dict(num_classes=4))

optim_wrapper = dict(optimizer=dict(lr=0.1 * 32 / 256))
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
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=2)

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
