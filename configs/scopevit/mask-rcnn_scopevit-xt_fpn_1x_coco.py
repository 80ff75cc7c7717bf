# Mask R-CNN + FPN, ScopeViT-XT, COCO 1x (recipe: mask-rcnn_scopevit-t_fpn_1x_coco.py;
# drop path 0.05 as in the official xtiny config).
_base_ = './mask-rcnn_scopevit-t_fpn_1x_coco.py'

pretrained = 'work_dirs/scopevit-xt_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='xtiny', drop_path_rate=0.05, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[32, 64, 128, 256]))
