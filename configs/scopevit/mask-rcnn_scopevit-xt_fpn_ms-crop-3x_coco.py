# Mask R-CNN + FPN, ScopeViT-XT, COCO 3x multi-scale + crop
# (recipe: mask-rcnn_scopevit-t_fpn_ms-crop-3x_coco.py; drop path 0.05).
_base_ = './mask-rcnn_scopevit-t_fpn_ms-crop-3x_coco.py'

pretrained = 'work_dirs/scopevit-xt_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='xtiny', drop_path_rate=0.05, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[32, 64, 128, 256]))
