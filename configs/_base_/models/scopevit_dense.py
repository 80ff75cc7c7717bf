# ScopeViT as the backbone of the detection (mmdet) and segmentation (mmseg) configs, and
# the weight-decay exemptions of their optimizers, written here once.
# The file defines only names that no library base defines, so it is listed after the
# library bases in ``_base_`` without clashing with their ``model`` and ``optim_wrapper``;
# a task config then writes
#     model = dict(backbone=_base_.scopevit_backbone, ...)
#     optim_wrapper = dict(..., constructor='mmscope.BackboneOptimWrapperConstructor',
#                          paramwise_cfg=_base_.scopevit_paramwise_cfg)
# and changes single keys with ``backbone=dict(_base_.scopevit_backbone, key=value)``.
# ``scopevit_backbone`` and ``scopevit_paramwise_cfg`` stay in the merged config as plain
# top-level values (nothing builds them). The values are ScopeViT-T's (the XT / S configs
# change arch, drop path and checkpoint); keys left out keep the backbone's defaults (plain
# BN, nothing frozen, norm_eval and with_cp off).

# importing mmscope registers the backbone (type='mmscope.ScopeViT')
custom_imports = dict(imports=['mmscope'], allow_failed_imports=False)

# ImageNet-1K classifier checkpoint (mmpretrain format, keys 'backbone.*'): the one
# scopevit-t_8xb128_in1k.py writes, or the released weights converted with mmscope's
# converter (see configs/scopevit/README.md). Change it with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
pretrained = 'work_dirs/scopevit-t_8xb128_in1k/epoch_300.pth'

scopevit_backbone = dict(
    _delete_=True,  # replaces the library base's ResNet-50 as a whole
    type='mmscope.ScopeViT',
    arch='tiny',
    drop_path_rate=0.1,
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.'))

# No decay on norms, LayerScales and the GSDA relative-position MLP: the intent of the
# official ``paramwise_cfg``, whose key names did not match ScopeViT's parameter names
# (see configs/scopevit/README.md). The last two are the backbone's ``no_decay_keys``
# (ScopeViT.no_decay_keys, their one list), which mmscope.BackboneOptimWrapperConstructor
# adds; add
# ``layer_decay_rate`` here for layer-wise learning-rate decay.
scopevit_paramwise_cfg = dict(norm_decay_mult=0.0)
