"""The released-checkpoint key tables of the built-in backbone families.

Each table is a list of ``(official template, mmscope template)`` pairs, a one-to-one
renaming between the state dict of a family's released classifier and the keys of the
mmpretrain ``ImageClassifier`` built with its mmscope backbone; a
:class:`~mmscope.models.utils.key_rules.KeyRules` applies it in both directions
(``official_to_mmscope_key``, ``mmscope_to_official_key``,
``convert_official_state_dict``). Each family's descriptor (:mod:`mmscope.models.family`)
holds its rules; the converters (:mod:`mmscope.converters`) read them from there.
"""
from .key_rules import KeyRules

__all__ = [
    'SCALABLEVIT_OFFICIAL_TO_MMSCOPE', 'SCALABLEVIT_KEY_RULES', 'SCOPEVIT_OFFICIAL_TO_MMSCOPE',
    'SCOPEVIT_KEY_RULES'
]

# ---------------------------------------------------------------------------------------
# ScalableViT (github.com/Yangr116/ScalableViT)
# ---------------------------------------------------------------------------------------
#: ``(official template, mmscope template)`` pairs, a one-to-one renaming between the
#: released model's state dict and the keys of an mmpretrain ``ImageClassifier`` built
#: with this backbone, ``out_indices=(last,)``, GlobalAveragePooling neck and
#: ``StackedLinearClsHead(mid_channels=[4096])``. Placeholders: ``{s}`` stage index,
#: ``{b}`` block index, ``{p}`` parameter (weight|bias), ``{m}`` block sub-module kept as
#: is, ``{last}`` index of the last stage (``num_stages - 1``).
SCALABLEVIT_OFFICIAL_TO_MMSCOPE = (
    ('patch_embeds.{s}.proj.{p}', 'backbone.stages.{s}.patch_embed.projection.{p}'),
    ('patch_embeds.{s}.norm.{p}', 'backbone.stages.{s}.patch_embed.norm.{p}'),
    ('pos_block.{s}.proj.0.{p}', 'backbone.stages.{s}.pos_conv.proj.{p}'),
    ('stages.{s}.{b}.attn.lim_func.{p}', 'backbone.stages.{s}.blocks.{b}.attn.lim.{p}'),
    ('stages.{s}.{b}.attn.reduction.0.{p}', 'backbone.stages.{s}.blocks.{b}.attn.reduce_dw.{p}'),
    ('stages.{s}.{b}.attn.reduction.1.{p}', 'backbone.stages.{s}.blocks.{b}.attn.reduce_pw.{p}'),
    ('stages.{s}.{b}.attn.norm_act.0.{p}', 'backbone.stages.{s}.blocks.{b}.attn.reduce_norm.{p}'),
    ('stages.{s}.{b}.{m}.{p}', 'backbone.stages.{s}.blocks.{b}.{m}.{p}'),
    ('norm.{p}', 'backbone.norm{last}.{p}'),
    ('head.0.{p}', 'head.layers.0.fc.{p}'),
    ('head.1.{p}', 'head.layers.0.norm.{p}'),
    ('head.3.{p}', 'head.layers.1.fc.{p}'),
)

SCALABLEVIT_KEY_RULES = KeyRules(
    SCALABLEVIT_OFFICIAL_TO_MMSCOPE,
    placeholders={
        's': r'\d+',
        'b': r'\d+',
        'p': r'weight|bias',
        'm': r'norm1|norm2|mlp\.fc1|mlp\.fc2|attn\.qkv|attn\.q|attn\.kv|attn\.k|attn\.v|'
        r'attn\.proj',
    },
    constants={'last': lambda num_stages: num_stages - 1},
    family='ScalableViT')
# Examples of the ScalableViT renaming:
# ``'stages.2.5.attn.reduction.0.weight'`` <->
# ``'backbone.stages.2.blocks.5.attn.reduce_dw.weight'``, ``'norm.weight'`` <->
# ``'backbone.norm3.weight'``, ``'head.3.bias'`` <-> ``'head.layers.1.fc.bias'``; keys
# without a counterpart (e.g. the extra ``backbone.norm{i}`` of dense outputs) raise KeyError.

# ---------------------------------------------------------------------------------------
# ScopeViT (github.com/xuesongnie/ScopeViT)
# ---------------------------------------------------------------------------------------
#: ``(official template, mmscope template)`` pairs, a one-to-one renaming of every weight
#: and buffer of the released ``ScopeViT`` classifier into the keys of an mmpretrain
#: ``ImageClassifier`` (``backbone.*``, ``LinearClsHead`` ``head.fc.*``). Placeholders:
#: ``{S}`` the released 1-based stage, ``{s}`` our 0-based stage (``S - 1``), ``{b}`` block
#: index, ``{x}`` the layer (``mssa`` or ``gsda``), ``{p}`` the tensor name (``weight``,
#: ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``, ``gamma``).
SCOPEVIT_OFFICIAL_TO_MMSCOPE = (
    ('patch_embed1.projection.0.{p}', 'backbone.stem.conv1.{p}'),
    ('patch_embed1.projection.1.{p}', 'backbone.stem.bn1.{p}'),
    ('patch_embed1.projection.3.{p}', 'backbone.stem.conv2.{p}'),
    ('patch_embed1.projection.4.{p}', 'backbone.stem.bn2.{p}'),
    ('patch_embed{S}.projection.{p}', 'backbone.stages.{s}.downsample.conv.{p}'),
    ('patch_embed{S}.norm.{p}', 'backbone.stages.{s}.downsample.norm.{p}'),
    ('norm{S}.{p}', 'backbone.stages.{s}.norm.{p}'),
    ('blocks{S}.{b}.{x}.norm1.{p}', 'backbone.stages.{s}.blocks.{b}.{x}.norm1.{p}'),
    ('blocks{S}.{b}.{x}.norm2.{p}', 'backbone.stages.{s}.blocks.{b}.{x}.norm2.{p}'),
    ('blocks{S}.{b}.{x}.ls1.{p}', 'backbone.stages.{s}.blocks.{b}.{x}.ls1.{p}'),
    ('blocks{S}.{b}.{x}.ls2.{p}', 'backbone.stages.{s}.blocks.{b}.{x}.ls2.{p}'),
    ('blocks{S}.{b}.{x}.mlp.fc1.{p}', 'backbone.stages.{s}.blocks.{b}.{x}.mlp.fc1.{p}'),
    ('blocks{S}.{b}.{x}.mlp.fc2.{p}', 'backbone.stages.{s}.blocks.{b}.{x}.mlp.fc2.{p}'),
    ('blocks{S}.{b}.{x}.attn.proj.{p}', 'backbone.stages.{s}.blocks.{b}.{x}.attn.proj.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.cpe.conv_pw.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.cpe.conv_pw.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.cpe.bn1.0.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.cpe.bn1.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.cpe.conv_dw.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.cpe.conv_dw.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.cpe.bn2.0.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.cpe.bn2.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.cpe.conv_pwl.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.cpe.conv_pwl.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.cpe.bn3.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.cpe.bn3.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.large_embed.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.kv_convs.0.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.medium_embed.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.kv_convs.1.{p}'),
    ('blocks{S}.{b}.mssa.attn.mspe.small_embed.{p}',
     'backbone.stages.{s}.blocks.{b}.mssa.attn.kv_convs.2.{p}'),
    ('blocks{S}.{b}.mssa.attn.query.{p}', 'backbone.stages.{s}.blocks.{b}.mssa.attn.q.{p}'),
    ('blocks{S}.{b}.mssa.attn.key_value.{p}', 'backbone.stages.{s}.blocks.{b}.mssa.attn.kv.{p}'),
    ('blocks{S}.{b}.gsda.attn.qkv.{p}', 'backbone.stages.{s}.blocks.{b}.gsda.attn.qkv.{p}'),
    ('blocks{S}.{b}.gsda.attn.rel_pos.mlp.fc1.{p}',
     'backbone.stages.{s}.blocks.{b}.gsda.attn.rel_pos.fc1.{p}'),
    ('blocks{S}.{b}.gsda.attn.rel_pos.mlp.fc2.{p}',
     'backbone.stages.{s}.blocks.{b}.gsda.attn.rel_pos.fc2.{p}'),
    ('head.weight', 'head.fc.weight'),
    ('head.bias', 'head.fc.bias'),
)

SCOPEVIT_KEY_RULES = KeyRules(
    SCOPEVIT_OFFICIAL_TO_MMSCOPE,
    placeholders={
        'S': r'[1-9]\d*',
        's': r'\d+',
        'b': r'\d+',
        'x': r'mssa|gsda',
        'p': r'weight|bias|running_mean|running_var|num_batches_tracked|gamma',
    },
    derived={
        'S': lambda v: int(v['s']) + 1,
        's': lambda v: int(v['S']) - 1
    },
    family='ScopeViT')
# (the ScopeViT rules do not depend on ``num_stages``)
