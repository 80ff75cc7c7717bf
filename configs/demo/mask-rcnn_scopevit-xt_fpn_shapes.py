# Demo: Mask R-CNN + FPN with a ScopeViT-XT backbone on the synthetic "shapes" scenes
# (COCO instances, polygon masks, 4 classes, 128x128), trained from scratch on CPU.
# Inherits the real COCO config: same backbone, neck, RPN/RoI heads, losses, assigners
# and optimizer type; only the data, the input size and the schedule length change.
#   python tools/dataset_converters/generate_shapes.py --out data/shapes
#   python tools/train.py configs/demo/mask-rcnn_scopevit-xt_fpn_shapes.py
# The data root can be moved with the environment variable MMSCOPE_SHAPES_ROOT.
_base_ = ['../scopevit/mask-rcnn_scopevit-xt_fpn_1x_coco.py']

data_root = '{{$MMSCOPE_SHAPES_ROOT:data/shapes}}/det/'
classes = ('circle', 'square', 'star', 'triangle')
img_scale = (128, 128)
max_epochs = 4
batch_size = 2

# ----------------------------------------------------------------------------- model
# From scratch (no ImageNet checkpoint for a newcomer); 4 classes. The modules are those of
# the COCO config; only the per-image sampling budgets, sized for COCO's crowded 1333x800
# images, are cut to scenes with at most 5 objects (they set how many proposals and RoIs
# are computed, not what is computed): 300/100 RPN proposals in training/testing instead
# of 1000, 64 sampled RoIs per image instead of 512, 20 detections instead of 100.
model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(
        bbox_head=dict(num_classes=len(classes)), mask_head=dict(num_classes=len(classes))),
    train_cfg=dict(rpn_proposal=dict(max_per_img=300), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(max_per_img=100), rcnn=dict(max_per_img=20)))

# ----------------------------------------------------------------------------- data
metainfo = dict(classes=classes,
                palette=[(220, 20, 60), (0, 130, 230), (250, 170, 30), (0, 170, 80)])
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
# the same AdamW with linear warm-up and step decay, over 4 short epochs (200 iterations)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[3],
         gamma=0.1),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
auto_scale_lr = dict(base_batch_size=batch_size)

# ----------------------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
