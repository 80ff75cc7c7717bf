# Top-down heatmap pose estimation, ScalableViT-S backbone, COCO keypoints 256x192, 210
# epochs on 8 GPUs x 32 images. ScalableViT was released without pose configs: this is the
# ScopeViT pose recipe (../_base_/models/td-hm_coco-256x192.py: Adam 1e-3, steps at 170 /
# 200, MSRA heatmaps sigma 2, 3-deconv head on the last stage, flip test) with a
# ScalableViT backbone (../_base_/models/scalablevit_dense.py); the head reads the last
# stage only (out_indices=(3, )). No BN to synchronise (ScalableViT uses LayerNorms only).
# Drop path: ScalableViT's dense-task rates, as its detection / segmentation configs (0.2
# for S / B, 0.3 for L, the Twins values): no pose rate was published, and ScopeViT's
# released pose rates (0.1-0.2) sit at or just above its own dense-task ones; 0.2 is also
# mmpose's rate for the Swin-T pose backbone of about ScalableViT-S's size.
_base_ = [
    '../_base_/models/td-hm_coco-256x192.py',
    '../_base_/models/scalablevit_dense.py',
]

model = dict(
    backbone=dict(_base_.scalablevit_backbone, out_indices=(3, )), head=dict(in_channels=512))
