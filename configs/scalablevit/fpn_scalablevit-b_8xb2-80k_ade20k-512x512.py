# Semantic FPN, ScalableViT-B, ADE20K 512x512, 80k iterations
# (recipe: fpn_scalablevit-s_8xb2-80k_ade20k-512x512.py).
_base_ = './fpn_scalablevit-s_8xb2-80k_ade20k-512x512.py'

pretrained = 'work_dirs/scalablevit-b_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
