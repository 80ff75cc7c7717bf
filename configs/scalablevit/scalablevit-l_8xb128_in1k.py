# ScalableViT-L on ImageNet-1K (recipe of scalablevit-s_8xb128_in1k.py; drop path 0.5 as in
# the official README command).
_base_ = './scalablevit-s_8xb128_in1k.py'

model = dict(backbone=dict(arch='large', drop_path_rate=0.5), head=dict(in_channels=1024))
