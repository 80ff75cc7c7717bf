# Semantic FPN, ScopeViT-S, ADE20K 512x512, 80k iterations
# (recipe: fpn_scopevit-t_8xb4-80k_ade20k-512x512.py; drop path 0.1).
_base_ = './fpn_scopevit-t_8xb4-80k_ade20k-512x512.py'

pretrained = 'work_dirs/scopevit-s_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.1, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
