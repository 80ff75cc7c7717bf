# Top-down heatmap pose, ScalableViT-L, COCO 256x192 (recipe and drop path choice:
# td-hm_scalablevit-s_8xb32-210e_coco-256x192.py; drop path 0.3 as Twins uses for its
# large model).
_base_ = './td-hm_scalablevit-s_8xb32-210e_coco-256x192.py'

pretrained = 'work_dirs/scalablevit-l_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=1024))
