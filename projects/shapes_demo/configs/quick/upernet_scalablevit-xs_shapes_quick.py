# Quick variant of ../upernet_scalablevit-xs_shapes.py for tests/CI (projects/shapes_demo/demo.py
# --quick):
# the same model and recipe on the small data set (48 scenes), 300 iterations.
_base_ = ['../upernet_scalablevit-xs_shapes.py']

pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo-quick/cls-scalable/epoch_4.pth}}'
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))

max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=10, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=150)
default_hooks = dict(
    logger=dict(interval=2), checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(window_size=2)
