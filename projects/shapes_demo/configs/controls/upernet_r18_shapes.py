# Control for the demo segmentor (issue 33): UperNet with mmseg's own ResNet-18 on the same
# shapes scenes, pipelines, batch, iterations and heads (UperNet and FCN at 128 channels) as
# ../upernet_scalablevit-xs_shapes.py (./_base_/shapes-seg.py), with ResNet's own recipe
# (SGD, lr 0.01 for 16 images, scaled to 4), the backbone starting from the control
# classifier (resnet18_shapes-cls.py; MMSCOPE_CONTROL_CLS_CKPT). mmseg's ADE20K config uses
# ResNetV1c (a deep stem); the control classifier is mmpretrain's ResNet-18, whose plain
# stem is mmseg's ResNet with the same parameter names.
_base_ = ['mmseg::upernet/upernet_r18_4xb4-160k_ade20k-512x512.py', '../_base_/shapes-seg.py']

data_root = {{_base_.shapes_data_root}}
pretrained = '{{$MMSCOPE_CONTROL_CLS_CKPT:work_dirs/controls/cls/epoch_10.pth}}'
crop_size = {{_base_.shapes_crop_size}}

data_preprocessor = {{_base_.shapes_data_preprocessor}}
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet', init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(channels=128, num_classes={{_base_.shapes_num_classes}}),
    auxiliary_head=dict(channels=128, num_classes={{_base_.shapes_num_classes}}))

train_pipeline = {{_base_.shapes_train_pipeline}}
test_pipeline = {{_base_.shapes_test_pipeline}}
train_dataloader = {{_base_.shapes_train_dataloader}}
val_dataloader = {{_base_.shapes_val_dataloader}}
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.01 * 4 / 16))
param_scheduler = {{_base_.shapes_param_scheduler}}
train_cfg = {{_base_.shapes_train_cfg}}
auto_scale_lr = {{_base_.shapes_auto_scale_lr}}
default_hooks = {{_base_.shapes_default_hooks}}
log_processor = {{_base_.shapes_log_processor}}
randomness = {{_base_.shapes_randomness}}
