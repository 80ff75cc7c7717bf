# Quick variant of ../scalablevit-xs_shapes-cls.py for tests/CI (projects/shapes_demo/demo.py
# --quick):
# the same model, data size and recipe, 4 epochs instead of 20.
_base_ = ['../scalablevit-xs_shapes-cls.py']

max_epochs = 4
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
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=4))
