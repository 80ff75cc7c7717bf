# Top-down heatmap pose estimation, ScopeViT-T backbone, COCO keypoints 256x192, 210 epochs
# on 8 GPUs x 32 images: the released scopevit_t_coco_256x192.py (xuesongnie/ScopeViT
# pose_estimation/, mmpose 0.x) in mmpose 1.x form. Recipe (Adam 1e-3, steps at 170 / 200,
# MSRA heatmaps sigma 2, 3-deconv head, flip test): ../_base_/models/td-hm_coco-256x192.py;
# backbone and checkpoint: ../_base_/models/scopevit_dense.py. Drop path 0.15 (released).
# Two released settings that its backbone ignored (ScopeViT_feat took them in **kwargs):
# * SyncBN (stem_norm_cfg / conv_norm_cfg): the released models trained with the backbone's
#   per-GPU BN, and so does this recipe (norm_cfg left at BN; 32 images per GPU give BN
#   enough statistics). --cfg-options model.backbone.norm_cfg.type=SyncBN for SyncBN.
# * out_indices=(0, 1, 2, 3): the released backbone returned all four stages and the head
#   read the last (in_index=3); here the backbone returns the last stage only
#   (out_indices=(3, ), the same features, no unused stage outputs).
_base_ = [
    '../_base_/models/td-hm_coco-256x192.py',
    '../_base_/models/scopevit_dense.py',
]

model = dict(
    backbone=dict(_base_.scopevit_backbone, drop_path_rate=0.15, out_indices=(3, )),
    head=dict(in_channels=256))
