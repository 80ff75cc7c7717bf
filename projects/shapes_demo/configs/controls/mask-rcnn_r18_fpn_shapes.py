# Control for the demo detector (issue 33): Mask R-CNN + FPN with mmdet's own ResNet-18 on
# the same shapes scenes, pipeline, batch, iterations, FPN and head widths and sampling
# budgets as ../mask-rcnn_scopevit-xt_fpn_shapes.py, with ResNet's own recipe (SGD, lr 0.02
# for 16 images, scaled to 2), the backbone starting from the control classifier
# (resnet18_shapes-cls.py; MMSCOPE_CONTROL_CLS_CKPT).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/shapes-det.py']

data_root = {{_base_.shapes_data_root}}
pretrained = '{{$MMSCOPE_CONTROL_CLS_CKPT:work_dirs/controls/cls/epoch_10.pth}}'
fpn_width = {{_base_.shapes_fpn_width}}

model = dict(
    backbone=dict(
        depth=18, init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=fpn_width),
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

train_pipeline = {{_base_.shapes_train_pipeline}}
test_pipeline = {{_base_.shapes_test_pipeline}}
train_dataloader = {{_base_.shapes_train_dataloader}}
val_dataloader = {{_base_.shapes_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.shapes_val_evaluator}}
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=0.02 * 2 / 16))
param_scheduler = {{_base_.shapes_param_scheduler}}
train_cfg = {{_base_.shapes_train_cfg}}
auto_scale_lr = {{_base_.shapes_auto_scale_lr}}
default_hooks = {{_base_.shapes_default_hooks}}
log_processor = {{_base_.shapes_log_processor}}
randomness = {{_base_.shapes_randomness}}
