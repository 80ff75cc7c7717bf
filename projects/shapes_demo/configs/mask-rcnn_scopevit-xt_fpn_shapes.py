# Demo: Mask R-CNN + FPN with a ScopeViT-XT backbone on the synthetic "shapes" scenes
# (COCO instances with polygon masks, 4 classes, 128x128), trained on CPU in minutes.
# Inherits the real COCO config: same backbone, neck, RPN/RoI heads, losses, assigners and
# optimizer; the data, the input size and the schedule change (./_base_/shapes-det.py,
# shared with the demo RetinaNet and the ResNet-18 control), and the neck and heads are
# narrower and sample less (below).
#
# As the COCO config starts from the ImageNet classifier, this one starts from the demo
# classifier (projects/shapes_demo/configs/scopevit-xt_shapes-cls.py), which
# projects/shapes_demo/demo.py trains first.
# Standalone:
#   python projects/shapes_demo/generate_shapes.py --out data/shapes
#   python tools/train.py projects/shapes_demo/configs/scopevit-xt_shapes-cls.py \
#       --work-dir work_dirs/demo/cls
#   python tools/train.py projects/shapes_demo/configs/mask-rcnn_scopevit-xt_fpn_shapes.py
# Environment: MMSCOPE_SHAPES_ROOT (data root, default data/shapes), MMSCOPE_DEMO_CLS_CKPT
# (classifier checkpoint); or --cfg-options model.backbone.init_cfg=None for from scratch.
_base_ = ['mmscope::scopevit/mask-rcnn_scopevit-xt_fpn_1x_coco.py', './_base_/shapes-det.py']

data_root = {{_base_.shapes_data_root}}
pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo/cls/epoch_10.pth}}'
fpn_width = {{_base_.shapes_fpn_width}}

# ----------------------------------------------------------------------------- model
# 4 classes. The modules are those of the COCO config; what shrinks for scenes of at most 5
# objects of 20-56 pixels is their size: the FPN and head channels 256 -> 64
# (./_base_/shapes-det.py: the heads cost many times the backbone at 256), and the
# per-image sampling budgets, sized for crowded 1333x800 COCO images (how many proposals
# and RoIs go through the heads): RPN proposals 1000 -> 300 (training) / 100 (testing),
# sampled RoIs 512 -> 32 per image, detections kept 100 -> 10 per image.
model = dict(
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    neck=dict(out_channels=fpn_width),
    rpn_head=dict(in_channels=fpn_width, feat_channels=fpn_width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_width),
        bbox_head=dict(in_channels=fpn_width, num_classes={{_base_.shapes_num_classes}}),
        mask_roi_extractor=dict(out_channels=fpn_width),
        mask_head=dict(
            in_channels=fpn_width,
            conv_out_channels=fpn_width,
            num_classes={{_base_.shapes_num_classes}})),
    train_cfg=dict(rpn_proposal=dict(max_per_img=300), rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(max_per_img=100), rcnn=dict(max_per_img=10)))

# ----------------------------------------------------------------------------- data,
# schedule and runtime: the shapes scenes (./_base_/shapes-det.py)
train_pipeline = {{_base_.shapes_train_pipeline}}
test_pipeline = {{_base_.shapes_test_pipeline}}
train_dataloader = {{_base_.shapes_train_dataloader}}
val_dataloader = {{_base_.shapes_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.shapes_val_evaluator}}
test_evaluator = val_evaluator
optim_wrapper = {{_base_.shapes_optim_wrapper}}
param_scheduler = {{_base_.shapes_param_scheduler}}
train_cfg = {{_base_.shapes_train_cfg}}
auto_scale_lr = {{_base_.shapes_auto_scale_lr}}
default_hooks = {{_base_.shapes_default_hooks}}
log_processor = {{_base_.shapes_log_processor}}
randomness = {{_base_.shapes_randomness}}
