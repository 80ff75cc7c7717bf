# UperNet, ScopeViT-S, ADE20K 512x512, 160k iterations
# (recipe: upernet_scopevit-t_8xb2-160k_ade20k-512x512.py; drop path 0.1).
# The auxiliary head reads stage 3, 256 channels wide; the official small config sets
# in_channels=320, which does not match the backbone.
_base_ = './upernet_scopevit-t_8xb2-160k_ade20k-512x512.py'

pretrained = 'work_dirs/scopevit-s_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.1, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
