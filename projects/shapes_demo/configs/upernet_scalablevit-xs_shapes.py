# Demo: UperNet with a ScalableViT-XS backbone on the synthetic "shapes" scenes (ADE20K
# layout, 4 shape classes + background, 128x128), trained on CPU in minutes.
# Inherits the real ADE20K config: same backbone type, UperNet decode head, auxiliary FCN
# head, losses, AdamW and poly schedule; the data, input size, schedule and runtime are
# those of every demo segmentor (./_base_/shapes-seg.py, shared with the ResNet-18 control);
# what changes in the model is listed below with its reason.
#
# As the ADE20K config starts from the ImageNet classifier, this one starts from the demo's
# ScalableViT-XS classifier (projects/shapes_demo/configs/scalablevit-xs_shapes-cls.py), which
# projects/shapes_demo/demo.py trains first. Standalone:
#   python projects/shapes_demo/generate_shapes.py --out data/shapes
#   python tools/train.py projects/shapes_demo/configs/scalablevit-xs_shapes-cls.py \
#       --work-dir work_dirs/demo/cls-scalable
#   python tools/train.py projects/shapes_demo/configs/upernet_scalablevit-xs_shapes.py
# Environment: MMSCOPE_SHAPES_ROOT (data root, default data/shapes), MMSCOPE_DEMO_CLS_CKPT
# (classifier checkpoint); or --cfg-options model.backbone.init_cfg=None for from scratch.
_base_ = [
    'mmscope::scalablevit/upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py',
    './_base_/scalablevit-xs.py', './_base_/shapes-seg.py'
]

data_root = {{_base_.shapes_data_root}}
pretrained = '{{$MMSCOPE_DEMO_CLS_CKPT:work_dirs/demo/cls-scalable/epoch_20.pth}}'
crop_size = {{_base_.shapes_crop_size}}

# ----------------------------------------------------------------------------- model
# 5 classes; the custom arch "XS" (./_base_/scalablevit-xs.py) of the demo classifier it
# starts from; drop path 0.2 -> 0 (it regularises 160k iterations, not a few hundred); the
# UperNet and FCN heads at 128 channels instead of 512 / 256, in proportion to the
# half-width backbone (at 512 channels the heads cost 10x the backbone's time)
data_preprocessor = {{_base_.shapes_data_preprocessor}}
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=_base_.scalablevit_xs, drop_path_rate=0., init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(
        in_channels=[32, 64, 128, 256], channels=128, num_classes={{_base_.shapes_num_classes}}),
    auxiliary_head=dict(in_channels=128, channels=128, num_classes={{_base_.shapes_num_classes}}))

# ----------------------------------------------------------------------------- data,
# schedule and runtime: the shapes scenes (./_base_/shapes-seg.py), with the real config's
# AdamW at lr 4e-3 for batch 4 (1e-3, 2e-3 and 4e-3 reached mIoU 29.5, 35.2 and 37.3 after
# 1200 iterations; docs/demo.md)
train_pipeline = {{_base_.shapes_train_pipeline}}
test_pipeline = {{_base_.shapes_test_pipeline}}
train_dataloader = {{_base_.shapes_train_dataloader}}
val_dataloader = {{_base_.shapes_val_dataloader}}
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=4e-3))
param_scheduler = {{_base_.shapes_param_scheduler}}
train_cfg = {{_base_.shapes_train_cfg}}
auto_scale_lr = {{_base_.shapes_auto_scale_lr}}
default_hooks = {{_base_.shapes_default_hooks}}
log_processor = {{_base_.shapes_log_processor}}
randomness = {{_base_.shapes_randomness}}
