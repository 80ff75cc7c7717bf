# Quick variant of ../scopevit-xt_shapes-cls.py for tests/CI (tools/demo.py --quick):
# the same model and recipe on the small data set (320 training images), 3 epochs.
_base_ = ['../scopevit-xt_shapes-cls.py']

max_epochs = 3
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval=1, max_keep_ckpts=3))
log_processor = dict(window_size=2)
