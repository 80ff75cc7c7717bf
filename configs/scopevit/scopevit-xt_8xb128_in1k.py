# ScopeViT-XT on ImageNet-1K (same recipe as ScopeViT-T; see scopevit-t_8xb128_in1k.py).
_base_ = './scopevit-t_8xb128_in1k.py'

model = dict(backbone=dict(arch='xtiny', drop_path_rate=0.05), head=dict(in_channels=256))
