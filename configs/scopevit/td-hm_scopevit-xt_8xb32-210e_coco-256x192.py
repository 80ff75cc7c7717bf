# Top-down heatmap pose, ScopeViT-XT, COCO 256x192 (recipe and decisions:
# td-hm_scopevit-t_8xb32-210e_coco-256x192.py; drop path 0.1 as released).
_base_ = './td-hm_scopevit-t_8xb32-210e_coco-256x192.py'

pretrained = 'work_dirs/scopevit-xt_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='xtiny', drop_path_rate=0.1, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=256))
