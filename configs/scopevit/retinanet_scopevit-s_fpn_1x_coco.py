# RetinaNet + FPN, ScopeViT-S, COCO 1x (recipe: retinanet_scopevit-t_fpn_1x_coco.py;
# drop path 0.1 as in the official small config).
_base_ = './retinanet_scopevit-t_fpn_1x_coco.py'

pretrained = 'work_dirs/scopevit-s_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.1, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512]))
