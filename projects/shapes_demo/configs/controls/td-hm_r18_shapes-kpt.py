# Control for the demo pose model (issue 33): top-down heatmaps with mmpose's own ResNet-18
# on the same shapes keypoints, crops, pipelines, batch and iterations as
# ../td-hm_scopevit-xt_shapes-kpt.py (./_base_/shapes-kpt.py), with the real config's head
# (three deconvolutions of 256 channels) and Adam at lr 1e-3 as ours, the backbone starting
# from the control classifier (resnet18_shapes-cls.py; MMSCOPE_CONTROL_CLS_CKPT).
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py',
    '../_base_/shapes-kpt.py'
]

data_root = {{_base_.shapes_data_root}}
pretrained = '{{$MMSCOPE_CONTROL_CLS_CKPT:work_dirs/controls/cls/epoch_10.pth}}'
codec = {{_base_.shapes_codec}}

model = dict(
    backbone=dict(
        depth=18, init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=512, out_channels={{_base_.shapes_num_keypoints}}, decoder=codec))

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
