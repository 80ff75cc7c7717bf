# Demo: Mask R-CNN + FPN with a ScopeViT-XT backbone on the synthetic "shapes" scenes
# (COCO instances with polygon masks, 4 classes, 128x128), trained on CPU in minutes.
# Inherits the real COCO config: same backbone, neck, RPN/RoI heads, losses, assigners and
# optimizer; only the data, the input size and the schedule change.
#
# As the COCO config starts from the ImageNet classifier, this one starts from the demo
# classifier (configs/demo/scopevit-xt_shapes-cls.py), which tools/demo.py trains first.
# Standalone:
#   python tools/dataset_converters/generate_shapes.py --out data/shapes
#   python tools/train.py configs/demo/scopevit-xt_shapes-cls.py --work-dir work_dirs/demo/cls
#   python tools/train.py configs/demo/mask-rcnn_scopevit-xt_fpn_shapes.py
# Environment: MMSCOPE_SHAPES_ROOT (data root, default data/shapes), MMSCOPE_DEMO_CLS_CKPT
# (classifier checkpoint); or --cfg-options model.backbone.init_cfg=None for from scratch.
_base_ = ['../scopevit/mask-rcnn_scopevit-xt_fpn_1x_coco.py']

data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/det/'
pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo/cls/epoch_10.pth}}'
classes = ('circle', 'square', 'star', 'triangle')
img_scale = (128, 128)
max_iters = 200
batch_size = 2

# ----------------------------------------------------------------------------- model
# 4 classes. The modules are those of the COCO config; only the per-image sampling
# budgets, sized for crowded 1333x800 COCO images, shrink for scenes of at most 5 objects
# (they set how many proposals and RoIs go through the heads, not what the heads are):
# RPN proposals 1000 -> 300 (training) / 100 (testing), sampled RoIs 512 -> 32 per image,
# detections kept 100 -> 10 per image.
model = dict(
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    roi_head=dict(
        bbox_head=dict(num_classes=len(classes)), mask_head=dict(num_classes=len(classes))),
    train_cfg=dict(rpn_proposal=dict(max_per_img=300), rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(max_per_img=100), rcnn=dict(max_per_img=10)))

# ----------------------------------------------------------------------------- data
metainfo = dict(classes=classes,
                palette=[(220, 20, 60), (0, 130, 230), (0, 170, 80), (250, 170, 30)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=8), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ----------------------------------------------------------------------------- schedule
# the same AdamW, linear warm-up and step decay, counted in iterations (one pass over the
# 400 scenes) so that a checkpoint every 50 iterations can be resumed exactly
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[int(0.75 * max_iters)], gamma=0.1),
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=50, max_keep_ckpts=2))
log_processor = dict(window_size=10, by_epoch=False)
randomness = dict(seed=0)
