"""ScalableViT backbone: Scalable Self-Attention (SSA) + Interactive Window-based
Self-Attention (IWSA) + positional convolution, for classification and dense prediction.

Reference: Yang et al., "ScalableViT: Rethinking the Context-oriented Generalization of
Vision Transformer" (ECCV 2022). The released code is classification-only and needs every
stage map to be a multiple of the window size; this implementation accepts any input of at
least 32x32 (see :class:`ScalableViT` for how padding is handled) and keeps a one-to-one
mapping with the released weights
(:data:`mmscope.models.utils.key_tables.SCALABLEVIT_OFFICIAL_TO_MMSCOPE`; the family
descriptor, :data:`mmscope.models.family.SCALABLEVIT`, names it and the released code).
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import PatchEmbed
from torch.nn.modules.batchnorm import _BatchNorm

from mmscope.registry import MODELS
from ..layers import (Mlp, conv_fp32_in_cpu_training, crop_to, export_layout, flat_view,
                      group_valid_mask, make_contiguous, map_to_tokens, pad_amount, pad_to_multiple,
                      scaled_dot_attention, store_channels_last, symbolic_shapes)
from .base import MMScopeBackbone, checkpointed

__all__ = ['ScalableViT', 'SSA', 'IWSA', 'ScalableViTBlock']

# LayerNorm eps of the released model: 1e-6 everywhere except the LayerNorm inside SSA's
# spatial reduction, which uses PyTorch's default 1e-5 in the released code.
_LN_EPS = 1e-6
_SSA_LN_EPS = 1e-5


def _tokens_to_map(x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """``(B, H*W, C)`` contiguous tokens -> ``(B, C, H, W)`` view (channels-last memory)."""
    return flat_view(x, x.shape[0], *hw_shape, x.shape[2]).permute(0, 3, 1, 2)


class _HeadAttention(nn.Module):
    """What :class:`IWSA` and :class:`SSA` share: the head checks, the attention call
    (with attention-weight dropout in training) and the output projection + dropout.

    Subclasses call :meth:`_build_proj` after their own layers (state-dict order).
    """

    def __init__(self, embed_dims: int, num_heads: int, head_dims: float, attn_drop: float,
                 attn_impl: Optional[str]):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = head_dims**-0.5
        self.attn_drop = attn_drop
        self.attn_impl = attn_impl

    def _build_proj(self, embed_dims: int, proj_drop: float):
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def _attend(self, q, k, v, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        return scaled_dot_attention(
            q,
            k,
            v,
            bias=bias,
            scale=self.scale,
            dropout_p=self.attn_drop if self.training else 0.,
            impl=self.attn_impl)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(self.proj(x))


def window_key_mask(height, width, window: int, batch, device=None) -> Optional[torch.Tensor]:
    """Which keys of each IWSA window are real tokens of a ``height x width`` map padded
    at the bottom/right to whole windows: bool ``(batch * windows, 1, 1, window**2)``,
    True = real; None when the map fits (eager mode; under symbolic sizes always a mask)."""
    ph, pw = pad_amount(height, window), pad_amount(width, window)
    if not symbolic_shapes() and not (ph or pw):
        return None
    mask = group_valid_mask(height, width, (window, window), dilated=False, device=device)
    return mask[:, None, None, :].repeat(batch, 1, 1, 1)


# FX tracing: the size decisions run as single graph nodes (mmscope.models.layers.padding)
for _fn in ('scaled_dot_attention', 'pad_to_multiple', 'crop_to', 'window_key_mask'):
    torch.fx.wrap(_fn)


class IWSA(_HeadAttention):
    """Interactive Window-based Self-Attention.

    Multi-head self-attention inside non-overlapping ``window_size`` windows, plus the Local
    Interactive Module (LIM): a depthwise 3x3 conv on the value map added to the attention
    output, which lets neighbouring windows exchange information.

    Maps that are not multiples of ``window_size`` are zero-padded at the bottom/right
    *after* the qkv projection; padded keys are masked out, so padded tokens never receive
    attention weight from real ones, and padded query rows are cropped away. The LIM conv
    runs on the unpadded value map, so it sees exactly the zeros of its own conv padding,
    as in an unpadded computation.

    Args:
        embed_dims (int): Number of channels.
        num_heads (int): Number of attention heads.
        window_size (int): Window side. Defaults to 7.
        qkv_bias (bool): Bias of the qkv projection. Defaults to True.
        attn_drop (float): Attention-weight dropout. Defaults to 0.
        proj_drop (float): Dropout after the output projection. Defaults to 0.
        attn_impl (str, optional): ``'fused'``, ``'reference'`` or None (process default),
            see :func:`mmscope.models.layers.scaled_dot_attention`. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 7,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 attn_impl: Optional[str] = None):
        super().__init__(embed_dims, num_heads, embed_dims // num_heads, attn_drop, attn_impl)
        self.embed_dims = embed_dims
        self.window_size = window_size
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.lim = nn.Conv2d(embed_dims, embed_dims, kernel_size=3, padding=1, groups=embed_dims)
        store_channels_last(self.lim)  # runs on a channels-last view of the values
        self._build_proj(embed_dims, proj_drop)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw_shape
        ws, nh = self.window_size, self.num_heads
        qkv = flat_view(self.qkv(x), B, H, W, 3 * C)
        # LIM on the unpadded value map (a channels-last view, no copy).
        lim = self.lim(export_layout(qkv[..., 2 * C:].permute(0, 3, 1, 2)))

        # padded (by 0 where it fits under symbolic sizes) to whole windows; the mask of
        # the padded keys is None when nothing is padded
        mask = window_key_mask(H, W, ws, B, x.device)
        qkv = pad_to_multiple(qkv, (ws, ws), channels_last=True)
        Hp, Wp = H + pad_amount(H, ws), W + pad_amount(W, ws)
        gh, gw = Hp // ws, Wp // ws
        # One copy: (B, Hp, Wp, 3C) -> (3, B*nW, heads, ws*ws, head_dim).
        qkv = qkv.view(B, gh, ws, gw, ws, 3, nh, C // nh).permute(5, 0, 1, 3, 6, 2, 4, 7)
        q, k, v = qkv.reshape(3, B * gh * gw, nh, ws * ws, C // nh).unbind(0)
        out = self._attend(q, k, v, bias=mask)
        out = out.view(B, gh, gw, nh, ws, ws, C // nh).permute(0, 1, 4, 2, 5, 3, 6)
        out = crop_to(out.reshape(B, Hp, Wp, C), H, W)
        out = (out + lim.permute(0, 2, 3, 1)).reshape(B, N, C)
        return self._project(out)


class SSA(_HeadAttention):
    """Scalable Self-Attention.

    Keys/values come from a spatially reduced map: a ``sr_ratio x sr_ratio`` depthwise conv
    with stride ``sr_ratio``, a pointwise conv to ``int(embed_dims * c_ratio)`` channels,
    LayerNorm (eps 1e-5, as released) and GELU. Queries and keys live in the scaled channel
    width, values in ``embed_dims``. With ``sr_ratio == 1`` it is plain multi-head attention.
    The logit scale is ``(head_dim * c_ratio) ** -0.5`` as released.

    When the map is not a multiple of ``sr_ratio`` the reduction input is zero-padded at
    the bottom/right (ceil mode, as a conv with bottom/right zero padding would do): every
    reduced key covers at least one real token, so no key is built from padding only and
    no mask is needed. Maps that are multiples are not padded.

    Args:
        embed_dims (int): Number of channels.
        num_heads (int): Number of attention heads.
        sr_ratio (int): Spatial reduction ratio. Defaults to 1.
        c_ratio (float): Channel ratio of queries/keys. Defaults to 1.25.
        qkv_bias (bool): Bias of the q/k/v projections. Defaults to True.
        attn_drop (float): Attention-weight dropout. Defaults to 0.
        proj_drop (float): Dropout after the output projection. Defaults to 0.
        attn_impl (str, optional): ``'fused'``, ``'reference'`` or None (process default).
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 sr_ratio: int = 1,
                 c_ratio: float = 1.25,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 attn_impl: Optional[str] = None):
        super().__init__(embed_dims, num_heads, embed_dims // num_heads * c_ratio, attn_drop,
                         attn_impl)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.c_new = int(embed_dims * c_ratio)
            if self.c_new <= 0 or self.c_new % num_heads:
                raise ValueError(f'int(embed_dims * c_ratio) = {self.c_new} must be a positive '
                                 f'multiple of num_heads {num_heads}')
            self.q = nn.Linear(embed_dims, self.c_new, bias=qkv_bias)
            self.reduce_dw = nn.Conv2d(
                embed_dims, embed_dims, sr_ratio, stride=sr_ratio, groups=embed_dims)
            self.reduce_pw = nn.Conv2d(embed_dims, self.c_new, 1)
            store_channels_last(self.reduce_dw, self.reduce_pw)  # on the token map view
            self.reduce_norm = nn.LayerNorm(self.c_new, eps=_SSA_LN_EPS)
            self.reduce_act = nn.GELU()
            self.k = nn.Linear(self.c_new, self.c_new, bias=qkv_bias)
            self.v = nn.Linear(self.c_new, embed_dims, bias=qkv_bias)
        else:
            self.c_new = embed_dims
            self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self._build_proj(embed_dims, proj_drop)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        nh = self.num_heads
        q = self.q(x).view(B, N, nh, self.c_new // nh).transpose(1, 2)
        if self.sr_ratio > 1:
            sr = self.sr_ratio
            feat = _tokens_to_map(x, hw_shape)
            feat = pad_to_multiple(feat, (sr, sr), channels_last=False)
            red = conv_fp32_in_cpu_training(self.reduce_dw, export_layout(feat))
            red = map_to_tokens(self.reduce_pw(export_layout(red)))
            red = self.reduce_act(self.reduce_norm(red))
            k = self.k(red).view(B, red.shape[1], nh, self.c_new // nh).permute(0, 2, 1, 3)
            v = self.v(red).view(B, red.shape[1], nh, C // nh).permute(0, 2, 1, 3)
        else:
            k, v = self.kv(x).view(B, N, 2, nh, C // nh).permute(2, 0, 3, 1, 4).unbind(0)
        out = self._attend(q, k, v).transpose(1, 2).reshape(B, N, C)
        return self._project(out)


class ScalableViTBlock(nn.Module):
    """Pre-norm transformer block with IWSA (``window_size`` given) or SSA attention.

    Args:
        embed_dims (int): Number of channels.
        num_heads (int): Number of attention heads.
        mlp_ratio (float): MLP hidden width ratio. Defaults to 4.
        window_size (int, optional): Use IWSA with this window; None uses SSA.
        sr_ratio (int): SSA spatial reduction ratio. Defaults to 1.
        c_ratio (float): SSA channel ratio. Defaults to 1.25.
        qkv_bias (bool): Bias of the q/k/v projections. Defaults to True.
        drop_rate (float): Dropout after projections / in the MLP. Defaults to 0.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        attn_impl (str, optional): Attention implementation. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 window_size: Optional[int] = None,
                 sr_ratio: int = 1,
                 c_ratio: float = 1.25,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 attn_impl: Optional[str] = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=_LN_EPS)
        if window_size is not None:
            self.attn = IWSA(embed_dims, num_heads, window_size, qkv_bias, attn_drop_rate,
                             drop_rate, attn_impl)
        else:
            self.attn = SSA(embed_dims, num_heads, sr_ratio, c_ratio, qkv_bias, attn_drop_rate,
                            drop_rate, attn_impl)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=_LN_EPS)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop_rate)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PositionalConv(nn.Module):
    """Conditional positional encoding (PEG): ``x + DWConv3x3(x)`` on the token map."""

    def __init__(self, embed_dims: int):
        super().__init__()
        self.proj = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        store_channels_last(self.proj)  # on the token map view

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        feat = _tokens_to_map(x, hw_shape)
        return map_to_tokens(self.proj(export_layout(feat)) + feat)


class ScalableViTStage(nn.Module):
    """Overlapping conv patch embedding, blocks (IWSA at even, SSA at odd positions) and a
    positional conv after the first block."""

    def __init__(self, in_channels: int, embed_dims: int, depth: int, num_heads: int,
                 mlp_ratio: float, sr_ratio: int, c_ratio: float, window_size: int, first: bool,
                 qkv_bias: bool, drop_rate: float, attn_drop_rate: float,
                 drop_path_rates: Sequence[float], attn_impl: Optional[str]):
        super().__init__()
        # Stage 0: 7x7 conv, stride 4, pad 3; later stages: 3x3 conv, stride 2, pad 1. Both
        # give ceil(size / stride) outputs for any size.
        k, s, p = (7, 4, 3) if first else (3, 2, 1)
        self.patch_embed = PatchEmbed(
            in_channels,
            embed_dims,
            kernel_size=k,
            stride=s,
            padding=p,
            norm_cfg=dict(type='LN', eps=_LN_EPS))
        if not first:  # later stages embed the previous stage's token map view
            store_channels_last(self.patch_embed.projection)
        self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.blocks = nn.ModuleList([
            ScalableViTBlock(embed_dims, num_heads, mlp_ratio, window_size if j % 2 == 0 else None,
                             sr_ratio, c_ratio, qkv_bias, drop_rate, attn_drop_rate,
                             drop_path_rates[j], attn_impl) for j in range(depth)
        ])
        self.pos_conv = PositionalConv(embed_dims)
        self.with_cp = False

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """``self.patch_embed(x)`` (mmcv's ``PatchEmbed``: conv, flatten, LayerNorm), with
        the conv input and the flatten written for ``torch.export`` at every size."""
        embed = self.patch_embed
        x = embed.projection(export_layout(x))
        hw_shape = (x.shape[2], x.shape[3])
        return embed.norm(map_to_tokens(x)), hw_shape

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x, hw_shape = self._embed(x)
        x = self.pos_drop(x)
        for j, blk in enumerate(self.blocks):
            x = checkpointed(blk, x, hw_shape, enabled=self.with_cp)
            if j == 0:
                x = self.pos_conv(x, hw_shape)
        return x, hw_shape


@MODELS.register_module()
class ScalableViT(MMScopeBackbone):
    """ScalableViT backbone (`ScalableViT <https://arxiv.org/abs/2203.10790>`_).

    Each stage: overlapping conv patch embedding (+LayerNorm), then blocks alternating
    IWSA (even positions) and SSA (odd positions), with a depthwise positional conv after
    the first block. Outputs are NCHW maps of ``ceil(H/4), ceil(H/8), ceil(H/16),
    ceil(H/32)`` (and likewise for W), each passed through its own LayerNorm ``norm{i}``;
    ``norm3`` is the released model's final ``norm``.

    Any input with ``H, W >= 32`` works. Patch embeddings, positional convs and LIM convs
    use their own zero padding; IWSA pads windows at the bottom/right and masks padded
    keys; SSA zero-pads its strided reduction (ceil mode). Inputs whose stage maps are
    already multiples of the window size (7) and of ``sr_ratio`` (e.g. 224x224) are never
    padded, so they compute exactly what the released model computes.

    For ImageNet classification, the released head is ``Linear(C, 4096) -> LayerNorm(eps
    1e-6) -> GELU -> Linear(4096, classes)`` after mean pooling; use
    ``neck=dict(type='GlobalAveragePooling')`` and mmpretrain's ``StackedLinearClsHead``
    with ``mid_channels=[4096]``, ``norm_cfg=dict(type='LN', eps=1e-6)``,
    ``act_cfg=dict(type='GELU')``.

    Args:
        arch (str | dict): ``'small'``/``'s'``, ``'base'``/``'b'``, ``'large'``/``'l'``,
            or a dict with exactly the keys ``embed_dims, depths, num_heads, mlp_ratios,
            sr_ratios, c_ratios, window_sizes`` (one list entry per stage). Defaults to
            ``'small'``.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages to output (negative indices allowed).
            Defaults to ``(3,)`` (the classification feature).
        qkv_bias (bool): Bias of the q/k/v projections (released: True). Defaults to True.
        drop_rate (float): Dropout after patch embeddings, projections and in MLPs.
            Defaults to 0.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate, increasing linearly over all blocks
            from 0. Defaults to 0.
        frozen_stages (int): Stages to freeze (eval mode, ``requires_grad=False``). -1
            freezes nothing; 0 freezes the stem (stage 0's patch embedding); ``k >= 1``
            freezes stages ``0 .. k-1`` entirely (patch embedding, blocks, positional conv)
            and their output norms. Defaults to -1.
        norm_eval (bool): Keep normalization layers in eval mode during training. All norms
            of ScalableViT are LayerNorms (no running statistics), so this only changes
            their ``training`` flag; kept for interface compatibility. Defaults to False.
        with_cp (bool): Gradient checkpointing of every block in training
            (``torch.utils.checkpoint``, ``use_reentrant=False``). Defaults to False.
        attn_impl (str, optional): Attention implementation for every attention:
            ``'auto'``, ``'fused'``, ``'reference'`` or None (process default, see
            :func:`mmscope.models.layers.attention_impl`). Defaults to None.
        pretrained (str, optional): Deprecated, use ``init_cfg=dict(type='Pretrained',
            checkpoint=...)``. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config, e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``. Without a
            ``Pretrained`` config, weights get the released initialization (trunc-normal
            0.02 linears, fan-out normal convs, unit LayerNorms). Defaults to None.
    """
    arch_zoo = {
        'small': {
            'embed_dims': [64, 128, 256, 512],
            'depths': [2, 2, 20, 2],
            'num_heads': [2, 4, 8, 16],
            'mlp_ratios': [4, 4, 4, 4],
            'sr_ratios': [8, 4, 2, 1],
            'c_ratios': [1.25, 1.25, 1.25, 1],
            'window_sizes': [7, 7, 7, 7],
        },
        'base': {
            'embed_dims': [96, 192, 384, 768],
            'depths': [2, 2, 14, 6],
            'num_heads': [3, 6, 12, 24],
            'mlp_ratios': [4, 4, 4, 4],
            'sr_ratios': [8, 4, 2, 1],
            'c_ratios': [2, 1.25, 1.25, 1],
            'window_sizes': [7, 7, 7, 7],
        },
        'large': {
            'embed_dims': [128, 256, 512, 1024],
            'depths': [2, 6, 12, 4],
            'num_heads': [4, 8, 16, 32],
            'mlp_ratios': [4, 4, 4, 4],
            'sr_ratios': [8, 4, 2, 1],
            'c_ratios': [0.25, 0.5, 1, 1],
            'window_sizes': [7, 7, 7, 7],
        },
    }
    arch_aliases = {'s': 'small', 'b': 'base', 'l': 'large'}
    arch_keys = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'sr_ratios', 'c_ratios',
                 'window_sizes')
    # every norm is a LayerNorm
    norm_eval_types = (_BatchNorm, nn.LayerNorm, nn.GroupNorm)
    # the positional convolutions train without weight decay (the released
    # ``no_weight_decay()`` lists ``pos_block``, which is ``stages.{i}.pos_conv`` here)
    no_decay_keys = ('.pos_conv.', )
    stage_map_module = 'stage_maps.{}'

    def __init__(self,
                 arch: Union[str, Dict] = 'small',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 attn_impl: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[Dict, Sequence[Dict]]] = None):
        super().__init__(init_cfg=init_cfg, pretrained=pretrained)
        a = self._init_backbone(arch, out_indices, frozen_stages, norm_eval, with_cp, attn_impl)
        dpr = self.drop_path_rates(drop_path_rate, a['depths'])
        self.stages = nn.ModuleList()
        cur = 0
        for i in range(self.num_stages):
            depth = a['depths'][i]
            stage = ScalableViTStage(in_channels if i == 0 else self.embed_dims[i - 1],
                                     self.embed_dims[i], depth, a['num_heads'][i],
                                     a['mlp_ratios'][i], a['sr_ratios'][i], a['c_ratios'][i],
                                     a['window_sizes'][i], i == 0, qkv_bias, drop_rate,
                                     attn_drop_rate, dpr[cur:cur + depth], attn_impl)
            stage.with_cp = self.with_cp
            self.stages.append(stage)
            cur += depth
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.embed_dims[i], eps=_LN_EPS))
        # no weights: the NCHW map of each stage passes through one, for hooks and FX
        self.stage_maps = nn.ModuleList(nn.Identity() for _ in range(self.num_stages))
        self._freeze_stages()

    @classmethod
    def _check_stage(cls, stage):
        d, h, ws, sr, cr = (
            stage[k] for k in ('embed_dims', 'num_heads', 'window_sizes', 'sr_ratios', 'c_ratios'))
        if h <= 0 or d % h:
            raise ValueError(f'embed_dims {d} not divisible by num_heads {h}')
        if int(ws) != ws or ws < 2:
            raise ValueError(f'window_sizes must be integers >= 2, got {ws}')
        if int(sr) != sr or sr < 1:
            raise ValueError(f'sr_ratios must be integers >= 1, got {sr}')
        if sr > 1 and (int(d * cr) <= 0 or int(d * cr) % h):
            raise ValueError(f'int(embed_dims * c_ratio) = {int(d * cr)} must be a positive '
                             f'multiple of num_heads {h}')
        return None

    def _frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        return [self.stages[0].patch_embed] + list(self.stages[:self.frozen_stages]) + [
            getattr(self, f'norm{i}') for i in self.out_indices if i < self.frozen_stages
        ]

    def _layer_order(self):
        order = []
        for i, stage in enumerate(self.stages):
            order.append((stage.patch_embed, False))
            for j, block in enumerate(stage.blocks):
                order.append((block, True))
                if j == 0:
                    order.append((stage.pos_conv, False))
            if i in self.out_indices:
                order.append((getattr(self, f'norm{i}'), False))
        return order

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self.forward_stages(x, self.out_indices)

    def forward_stages(self, x: torch.Tensor, indices: Sequence[int]) -> Tuple[torch.Tensor, ...]:
        """The NCHW maps of the stages ``indices`` (sorted, non-negative); only the stages
        up to the last of them run. A stage of ``out_indices`` passes through its output
        norm ``norm{i}``; another stage has none built and gives its raw output."""
        self._check_input(x)
        B = x.shape[0]
        outs = []
        for i, stage in enumerate(self.stages[:max(indices) + 1]):
            x, hw_shape = stage(x)
            if i in indices:
                out = getattr(self, f'norm{i}')(x) if i in self.out_indices else x
                out = make_contiguous(
                    flat_view(out, B, *hw_shape, out.shape[-1]).permute(0, 3, 1, 2))
                outs.append(self.stage_maps[i](out))
            if i < self.num_stages - 1:
                x = _tokens_to_map(x, hw_shape)
        return tuple(outs)
