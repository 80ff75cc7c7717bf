# Demo: top-down heatmap pose estimation with a ScopeViT-XT backbone on the synthetic
# "shapes" scenes: 5 keypoints per object (centre; top-, bottom-, left- and rightmost
# vertex), trained on CPU in minutes. Inherits the real COCO pose config: same backbone,
# heatmap head, MSRA codec, MSE loss, Adam and flip test; the keypoints, the data, the input
# size (64x64 crops of the ground-truth boxes), the schedule and the runtime are those of
# every demo pose model (./_base_/shapes-kpt.py, shared with the ResNet-18 control).
#
# As the COCO config starts from the ImageNet classifier, this one starts from the demo
# classifier (projects/shapes_demo/configs/scopevit-xt_shapes-cls.py), which
# projects/shapes_demo/demo.py trains first.
# Standalone:
#   python projects/shapes_demo/generate_shapes.py --out data/shapes
#   python tools/train.py projects/shapes_demo/configs/scopevit-xt_shapes-cls.py \
#       --work-dir work_dirs/demo/cls
#   python tools/train.py projects/shapes_demo/configs/td-hm_scopevit-xt_shapes-kpt.py
# Environment: MMSCOPE_SHAPES_ROOT (data root, default data/shapes), MMSCOPE_DEMO_CLS_CKPT
# (classifier checkpoint); or --cfg-options model.backbone.init_cfg=None for from scratch.
_base_ = [
    'mmscope::scopevit/td-hm_scopevit-xt_8xb32-210e_coco-256x192.py', './_base_/shapes-kpt.py'
]

data_root = {{_base_.shapes_data_root}}
pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo/cls/epoch_10.pth}}'
codec = {{_base_.shapes_codec}}

model = dict(
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    head=dict(out_channels={{_base_.shapes_num_keypoints}}, decoder=codec))

# ----------------------------------------------------------------------------- data,
# schedule and runtime: the shapes keypoints (./_base_/shapes-kpt.py), with the real
# config's Adam at lr 1e-3 for batch 32
train_pipeline = {{_base_.shapes_train_pipeline}}
val_pipeline = {{_base_.shapes_val_pipeline}}
train_dataloader = {{_base_.shapes_train_dataloader}}
val_dataloader = {{_base_.shapes_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.shapes_val_evaluator}}
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = {{_base_.shapes_param_scheduler}}
train_cfg = {{_base_.shapes_train_cfg}}
auto_scale_lr = {{_base_.shapes_auto_scale_lr}}
default_hooks = {{_base_.shapes_default_hooks}}
log_processor = {{_base_.shapes_log_processor}}
randomness = {{_base_.shapes_randomness}}
