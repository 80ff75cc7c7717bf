# Mask R-CNN + FPN, ScopeViT-S, COCO 3x multi-scale + crop
# (recipe: mask-rcnn_scopevit-t_fpn_ms-crop-3x_coco.py; drop path 0.1).
_base_ = './mask-rcnn_scopevit-t_fpn_ms-crop-3x_coco.py'

pretrained = 'work_dirs/scopevit-s_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.1, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
