# Quick variant of ../mask-rcnn_scopevit-xt_fpn_shapes.py for tests/CI
# (tools/demo.py --quick): the same model and recipe on the small data set (48 scenes).
_base_ = ['../mask-rcnn_scopevit-xt_fpn_shapes.py']

max_epochs = 2
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[max_epochs],
         gamma=0.1),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=2)
