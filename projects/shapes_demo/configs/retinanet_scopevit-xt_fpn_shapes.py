# Demo: RetinaNet + FPN with a ScopeViT-XT backbone on the synthetic "shapes" scenes
# (4 classes, 128x128), trained on CPU in minutes. Not one of projects/shapes_demo/demo.py's tasks:
# the
# single-stage detector of the deployment checks (docs/deployment.md; exported through
# mmdeploy and compared with PyTorch). Inherits the real COCO config: same backbone,
# neck, head, focal loss, assigner and optimizer; the data, the input size and the
# schedule are the demo Mask R-CNN's (./_base_/shapes-det.py).
#   python tools/train.py projects/shapes_demo/configs/scopevit-xt_shapes-cls.py \
#       --work-dir work_dirs/demo/cls
#   python tools/train.py projects/shapes_demo/configs/retinanet_scopevit-xt_fpn_shapes.py
# Environment: MMSCOPE_SHAPES_ROOT (data root, default data/shapes), MMSCOPE_DEMO_CLS_CKPT
# (classifier checkpoint); or --cfg-options model.backbone.init_cfg=None for from scratch.
_base_ = ['mmscope::scopevit/retinanet_scopevit-xt_fpn_1x_coco.py', './_base_/shapes-det.py']

data_root = {{_base_.shapes_data_root}}
pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo/cls/epoch_10.pth}}'

# ----------------------------------------------------------------------------- model
# 4 classes; at most 10 detections kept per image (scenes have at most 5 objects), as in
# the demo Mask R-CNN. Anchors half the COCO size (octave base scale 4 -> 2: 16..25 pixels
# on the stride-8 level instead of 32..50), for objects of 20..56 pixels; with the COCO
# anchors the smallest objects match no anchor, and 400 iterations gave bbox mAP 0.0.
model = dict(
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    bbox_head=dict(
        num_classes={{_base_.shapes_num_classes}}, anchor_generator=dict(octave_base_scale=2)),
    test_cfg=dict(max_per_img=10))

# ----------------------------------------------------------------------------- data,
# schedule and runtime: the shapes scenes (./_base_/shapes-det.py)
train_pipeline = {{_base_.shapes_train_pipeline}}
test_pipeline = {{_base_.shapes_test_pipeline}}
train_dataloader = {{_base_.shapes_train_dataloader}}
val_dataloader = {{_base_.shapes_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.shapes_val_evaluator}}
test_evaluator = val_evaluator
# the shapes schedule at the real config's learning rate ratio: RetinaNet's COCO lr is
# half Mask R-CNN's (1e-4 against 2e-4), so 2e-4 here where the Mask R-CNN demo has 1e-3
# (at 1e-3 the focal loss spiked to 4.5 and stayed near its initial value)
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = {{_base_.shapes_param_scheduler}}
train_cfg = {{_base_.shapes_train_cfg}}
auto_scale_lr = {{_base_.shapes_auto_scale_lr}}
default_hooks = {{_base_.shapes_default_hooks}}
log_processor = {{_base_.shapes_log_processor}}
randomness = {{_base_.shapes_randomness}}
