# Semantic FPN, ScalableViT-L, ADE20K 512x512, 80k iterations
# (recipe: fpn_scalablevit-s_8xb2-80k_ade20k-512x512.py; drop path 0.3).
_base_ = './fpn_scalablevit-s_8xb2-80k_ade20k-512x512.py'

pretrained = 'work_dirs/scalablevit-l_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
