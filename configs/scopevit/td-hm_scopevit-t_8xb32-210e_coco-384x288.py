# Top-down heatmap pose, ScopeViT-T, COCO 384x288 (the released scopevit_t_coco_384x288.py):
# the 256x192 config (td-hm_scopevit-t_8xb32-210e_coco-256x192.py, where the SyncBN and
# out_indices decisions are written) at the 384x288 input of
# ../_base_/models/td-hm_coco-384x288.py (heatmaps 96x72).
_base_ = [
    '../_base_/models/td-hm_coco-384x288.py',
    '../_base_/models/scopevit_dense.py',
]

model = dict(
    backbone=dict(_base_.scopevit_backbone, drop_path_rate=0.15, out_indices=(3, )),
    head=dict(in_channels=256))
