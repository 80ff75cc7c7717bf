# Mask R-CNN + FPN, ScalableViT-B, COCO 1x (recipe: mask-rcnn_scalablevit-s_fpn_1x_coco.py).
_base_ = './mask-rcnn_scalablevit-s_fpn_1x_coco.py'

pretrained = 'work_dirs/scalablevit-b_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
