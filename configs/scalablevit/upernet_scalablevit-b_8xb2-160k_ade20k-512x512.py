# UperNet, ScalableViT-B, ADE20K 512x512, 160k iterations
# (recipe: upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py).
_base_ = './upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py'

pretrained = 'work_dirs/scalablevit-b_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
