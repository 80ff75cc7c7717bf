# Quick variant of ../mask-rcnn_scopevit-xt_fpn_shapes.py for tests/CI
# (projects/shapes_demo/demo.py --quick): the same model and recipe, 120 iterations on the small
# data set.
_base_ = ['../mask-rcnn_scopevit-xt_fpn_shapes.py']

pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo-quick/cls/epoch_4.pth}}'
max_iters = 120
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[90], gamma=0.1),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval=40))
log_processor = dict(window_size=2)
