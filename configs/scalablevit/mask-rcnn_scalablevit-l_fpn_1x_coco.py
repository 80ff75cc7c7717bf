# Mask R-CNN + FPN, ScalableViT-L, COCO 1x (recipe: mask-rcnn_scalablevit-s_fpn_1x_coco.py;
# drop path 0.3 as Twins uses for its large model).
_base_ = './mask-rcnn_scalablevit-s_fpn_1x_coco.py'

pretrained = 'work_dirs/scalablevit-l_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
