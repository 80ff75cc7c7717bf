# ScalableViT as the backbone of the detection (mmdet) and segmentation (mmseg) configs, and
# the weight-decay exemptions of their optimizers, written here once.
# The file defines only names that no library base defines, so it is listed after the
# library bases in ``_base_`` without clashing with their ``model`` and ``optim_wrapper``;
# a task config then writes
#     model = dict(backbone=_base_.scalablevit_backbone, ...)
#     optim_wrapper = dict(..., constructor='mmscope.BackboneOptimWrapperConstructor',
#                          paramwise_cfg=_base_.scalablevit_paramwise_cfg)
# and changes single keys with ``backbone=dict(_base_.scalablevit_backbone, key=value)``.
# ``scalablevit_backbone`` and ``scalablevit_paramwise_cfg`` stay in the merged config as
# plain top-level values (nothing builds them). The values are ScalableViT-S's (the B / L
# configs change arch, drop path and checkpoint); keys left out keep the backbone's
# defaults (nothing frozen, norm_eval and with_cp off). ScalableViT normalises with
# LayerNorms only, so there is no BN to synchronise.

# importing mmscope registers the backbone (type='mmscope.ScalableViT')
custom_imports = dict(imports=['mmscope'], allow_failed_imports=False)

# ImageNet-1K classifier checkpoint (mmpretrain format, keys 'backbone.*'): the one
# scalablevit-s_8xb128_in1k.py writes, or the released weights converted with mmscope's
# converter (see configs/scalablevit/README.md). Change it with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
pretrained = 'work_dirs/scalablevit-s_8xb128_in1k/epoch_300.pth'

scalablevit_backbone = dict(
    _delete_=True,  # replaces the library base's ResNet-50 as a whole
    type='mmscope.ScalableViT',
    arch='small',
    drop_path_rate=0.2,  # the Twins dense-task value for S / B models
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.'))

# No decay on norms and on the positional-encoding convolutions (the official
# ``no_weight_decay()`` lists ``pos_block``, which is ``stages.{i}.pos_conv`` in mmscope;
# the backbone's ``no_decay_keys``, ScalableViT.no_decay_keys, their one list, which
# mmscope.BackboneOptimWrapperConstructor adds);
# used by the recipes that exempt them (3x detection, UperNet).
scalablevit_paramwise_cfg = dict(norm_decay_mult=0.0)
