# UperNet, ScopeViT-XT, ADE20K 512x512, 160k iterations
# (recipe: upernet_scopevit-t_8xb2-160k_ade20k-512x512.py; drop path 0.05).
# The auxiliary head reads stage 3, 128 channels wide; the official xtiny config sets
# in_channels=96, which does not match the backbone.
_base_ = './upernet_scopevit-t_8xb2-160k_ade20k-512x512.py'

pretrained = 'work_dirs/scopevit-xt_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='xtiny', drop_path_rate=0.05, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[32, 64, 128, 256]),
    auxiliary_head=dict(in_channels=128))
