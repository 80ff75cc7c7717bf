# Top-down heatmap pose, ScopeViT-S, COCO 384x288 (recipe: td-hm_scopevit-t_8xb32-210e_
# coco-384x288.py; drop path 0.2 as released). The released S 384x288 config alone trained
# in mixed precision (fp16, dynamic loss scale): AmpOptimWrapper here too (CUDA only; on a
# CPU: --cfg-options optim_wrapper.type=OptimWrapper).
_base_ = './td-hm_scopevit-t_8xb32-210e_coco-384x288.py'

pretrained = 'work_dirs/scopevit-s_8xb128_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=512))
optim_wrapper = dict(type='AmpOptimWrapper')  # dynamic loss scale by default
