# RetinaNet + FPN, ScalableViT-L, COCO 3x multi-scale + crop
# (recipe: retinanet_scalablevit-s_fpn_ms-crop-3x_coco.py; drop path 0.3).
_base_ = './retinanet_scalablevit-s_fpn_ms-crop-3x_coco.py'

pretrained = 'work_dirs/scalablevit-l_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[256, 512, 1024]))
