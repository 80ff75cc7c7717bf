# Top-down heatmap pose, ScalableViT-B, COCO 256x192 (recipe and drop path choice:
# td-hm_scalablevit-s_8xb32-210e_coco-256x192.py; drop path 0.2).
_base_ = './td-hm_scalablevit-s_8xb32-210e_coco-256x192.py'

pretrained = 'work_dirs/scalablevit-b_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=768))
