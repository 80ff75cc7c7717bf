# Quick variant of ../upernet_scalablevit-s_shapes.py for tests/CI (tools/demo.py --quick):
# the same model and recipe on the small data set (48 scenes), 30 iterations.
_base_ = ['../upernet_scalablevit-s_shapes.py']

max_iters = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=5, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=2),
                     checkpoint=dict(by_epoch=False, interval=10, max_keep_ckpts=2))
log_processor = dict(window_size=2)
