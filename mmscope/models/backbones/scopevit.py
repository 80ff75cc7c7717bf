"""ScopeViT: a scale-aware vision transformer with MSSA and GSDA.

Every stage is a patch embedding (a two-conv stem for the first stage, a stride-2 conv
after that), a stack of :class:`ScopeViTBlock` and a BatchNorm. A block is two
pre-norm transformer layers sharing one layout:

* **MSSA** (multi-scale self-attention): every token queries keys/values made by
  strided depth-wise convolutions with kernels 7/5/3, one kernel per group of heads,
  applied after an inverted-residual convolution (``cpe``) that also feeds the
  queries.
* **GSDA** (global-scale dilated attention): tokens are grouped on a dilated
  ``d x d`` grid spread over the whole map (group ``(i, j)`` holds
  ``x[i::H/d, j::W/d]``) and attend within their group, with a relative-position
  bias produced by a small MLP.

Layout and sizes: blocks exchange channels-last ``(B, H, W, C)`` maps; stages take and
return ``(B, C, H, W)``. Any input of at least 32x32 works: the stage maps are
``ceil(H / 4)``, ..., ``ceil(H / 32)``. GSDA is the only operator that needs
divisible maps, so only its attention sees padding: the normalised tokens are zero-padded
at the bottom/right to a multiple of the grid right before the ``qkv`` projection,
padded keys get ``-inf`` logits, and the result is cropped before ``proj``. Convolutions
therefore see exactly the zero borders of the unpadded map, padded tokens never change
a real token, and inputs whose maps already fit are computed without any padding. Where
every group would hold the same real tokens (:func:`gsda_real_grid`: all four maps of a
224 input), eager mode computes that same function among the real tokens only, with no
padding, mask or crop.

Checkpoint compatibility: the released code stores the same weights under other names;
:data:`mmscope.models.utils.key_tables.SCOPEVIT_OFFICIAL_TO_MMSCOPE` lists the one-to-one
renaming rules (official keys <-> mmpretrain ``ImageClassifier`` keys), which
``SCOPEVIT_KEY_RULES`` applies (:class:`mmscope.models.utils.KeyRules`); the family
descriptor (:data:`mmscope.models.family.SCOPEVIT`) names them and the released code.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath

from mmscope.registry import MODELS
from ..layers import (DerivedCache, LayerScale, Mlp, conv_bn, conv_fp32_in_cpu_training, crop,
                      crop_to, export_layout, fx_tracing, grid_partition, grid_reverse,
                      group_valid_mask, make_contiguous, map_to_tokens, pad_amount, pad_to_multiple,
                      scaled_dot_attention, store_channels_last, symbolic_shapes)
from .base import MMScopeBackbone, checkpointed

__all__ = ['ScopeViT', 'ScopeViTBlock', 'MultiScaleSelfAttention', 'GlobalDilatedAttention']

# FX tracing: the size decisions run as single graph nodes (mmscope.models.layers.padding)
for _fn in ('scaled_dot_attention', 'pad_to_multiple', 'crop_to', 'gsda_key_mask',
            'gsda_masked_bias'):
    torch.fx.wrap(_fn)

#: Kernel of the depth-wise key/value convolution for each of the three head groups.
MSSA_KERNELS = (7, 5, 3)
#: Hidden width and dropout (after the ReLU) of the GSDA relative-position MLP.
REL_POS_HIDDEN_DIMS = 512
REL_POS_DROP = 0.125


def _as_pair(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


# ---------------------------------------------------------------------------------------
# convolutional parts
# ---------------------------------------------------------------------------------------
class ConvStem(nn.Module):
    """Stride-4 stem: ``conv3x3/2 -> BN -> GELU -> conv3x3/2 -> BN``.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Output channels (the hidden conv has half of them).
        norm_cfg (dict): Norm layer config.
    """

    def __init__(self, in_channels: int, embed_dims: int, norm_cfg: dict):
        super().__init__()
        mid = embed_dims // 2
        self.conv1 = nn.Conv2d(in_channels, mid, 3, stride=2, padding=1)
        self.bn1 = build_norm_layer(norm_cfg, mid)[1]
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(mid, embed_dims, 3, stride=2, padding=1)
        self.bn2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self._folded = (DerivedCache(), DerivedCache())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(conv_bn(self.conv1, self.bn1, x, self._folded[0]))
        return conv_bn(self.conv2, self.bn2, x, self._folded[1])


class ConvDownsample(nn.Module):
    """Patch merging between stages: ``conv3x3/2 -> BN`` (``H -> ceil(H / 2)``).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_cfg (dict): Norm layer config.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        store_channels_last(self.conv)  # its input: the previous stage's channels-last map
        self.norm = build_norm_layer(norm_cfg, out_channels)[1]
        self._folded = DerivedCache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_bn(self.conv, self.norm, export_layout(x), self._folded)


class InvertedResidual(nn.Module):
    """Residual ``1x1 -> BN -> ReLU -> dw3x3 -> BN -> ReLU -> 1x1 -> BN`` on NCHW maps.

    Args:
        channels (int): Input and output channels.
        expand_ratio (float): Hidden channels / ``channels``. Defaults to 4.
        norm_cfg (dict): Norm layer config. Defaults to BN.
    """

    def __init__(self, channels: int, expand_ratio: float = 4., norm_cfg: dict = None):
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        hidden = int(channels * expand_ratio)
        self.conv_pw = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, hidden)[1]
        self.conv_dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, hidden)[1]
        self.conv_pwl = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, channels)[1]
        # its input is the NCHW view of a channels-last block map
        store_channels_last(self.conv_pw, self.conv_dw, self.conv_pwl)
        self._folded = (DerivedCache(), DerivedCache(), DerivedCache())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(conv_bn(self.conv_pw, self.bn1, x, self._folded[0]), inplace=True)
        y = F.relu(conv_bn(self.conv_dw, self.bn2, export_layout(y), self._folded[1]), inplace=True)
        return x + conv_bn(self.conv_pwl, self.bn3, export_layout(y), self._folded[2])


# ---------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------
class MultiScaleSelfAttention(nn.Module):
    """MSSA on channels-last maps: full-resolution queries, multi-scale strided keys.

    The normalised map goes through :class:`InvertedResidual` (``cpe``); its tokens are
    the queries. Its channels are split by head groups (``head_splits[i]`` heads each),
    group ``i`` is reduced by a depth-wise ``MSSA_KERNELS[i]`` conv of stride ``stride``,
    and the concatenated result is projected to keys and values. No mask is involved,
    so the fused kernel never materialises the (queries x keys) attention matrix.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        stride (int): Stride of the key/value convolutions.
        head_splits (Sequence[int]): Heads per kernel (7, 5, 3); zeros only at the end.
        expand_ratio (float): Hidden ratio of ``cpe``. Defaults to 4.
        norm_cfg (dict): Norm config of ``cpe``. Defaults to BN.
        attn_impl (str, optional): ``'fused'``, ``'reference'`` or None (process default).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 stride: int,
                 head_splits: Sequence[int],
                 expand_ratio: float = 4.,
                 norm_cfg: dict = None,
                 attn_impl: Optional[str] = None):
        super().__init__()
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.attn_impl = attn_impl
        self.cpe = InvertedResidual(embed_dims, expand_ratio, norm_cfg)
        self.split_channels = [n * self.head_dims for n in head_splits if n > 0]
        self.kv_convs = nn.ModuleList([
            nn.Conv2d(
                c, c, k, stride=stride, padding=(stride - 1 + k - 1) // 2, groups=c, bias=False)
            for c, k in zip(self.split_channels, MSSA_KERNELS)
        ])
        store_channels_last(*self.kv_convs)
        self.q = nn.Linear(embed_dims, embed_dims, bias=False)
        self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=False)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        # the CPE on the NCHW view of the channels-last map
        y = export_layout(self.cpe(export_layout(x.permute(0, 3, 1, 2))))
        q = self.q(export_layout(y.permute(0, 2, 3, 1)))
        q = q.view(b, h * w, self.num_heads, self.head_dims)
        if len(self.kv_convs) == 1:
            kv = conv_fp32_in_cpu_training(self.kv_convs[0], y)
        else:
            groups = torch.split(y, self.split_channels, dim=1)
            kv = [conv_fp32_in_cpu_training(c, groups[i]) for i, c in enumerate(self.kv_convs)]
            kv = torch.cat(kv, dim=1)
        n = kv.shape[2] * kv.shape[3]
        kv = self.kv(map_to_tokens(kv))
        k, v = kv.view(b, n, 2, self.num_heads, self.head_dims).permute(2, 0, 3, 1, 4).unbind(0)
        out = scaled_dot_attention(q.transpose(1, 2), k, v, scale=self.scale, impl=self.attn_impl)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class RelPosMlpBias(nn.Module):
    """Relative-position bias ``(num_heads, L, L)`` of a ``gh x gw`` grid from an MLP.

    The MLP ``fc1 -> ReLU -> dropout -> fc2`` maps the log-spaced offsets
    ``sign(d) * log(1 + |d|)`` of every ``(dy, dx)`` pair to one value per head.
    :meth:`get_bias` evaluates it once per call; in eval mode, where no gradient can flow
    into it, the result is kept (:class:`~mmscope.models.layers.DerivedCache`, keyed
    also on device, dtype, grid and autocast state) until a parameter of the MLP changes.

    Args:
        grid (tuple[int, int]): Grid (``gh``, ``gw``).
        num_heads (int): Heads.
        hidden_dims (int): Hidden width. Defaults to 512.
        drop (float): Dropout after the activation. Defaults to 0.125.
    """

    def __init__(self,
                 grid: Tuple[int, int],
                 num_heads: int,
                 hidden_dims: int = 512,
                 drop: float = 0.125):
        super().__init__()
        gh, gw = grid
        self.grid = (gh, gw)
        self.num_heads = num_heads
        self.fc1 = nn.Linear(2, hidden_dims)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dims, num_heads)
        dy = torch.arange(-(gh - 1), gh, dtype=torch.float32)
        dx = torch.arange(-(gw - 1), gw, dtype=torch.float32)
        table = torch.stack(torch.meshgrid(dy, dx, indexing='ij'), dim=-1)  # 2gh-1,2gw-1,2
        self.register_buffer(
            'rel_coords', torch.sign(table) * torch.log1p(table.abs()), persistent=False)
        ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing='ij')
        ys, xs = ys.flatten(), xs.flatten()
        index = (ys[:, None] - ys[None, :] + gh - 1) * (2 * gw - 1) + (
            xs[:, None] - xs[None, :] + gw - 1)
        self.register_buffer('rel_index', index, persistent=False)  # L, L
        self._cache = DerivedCache()

    def _compute(self, sub_grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        table = self.fc2(self.drop(self.act(self.fc1(self.rel_coords))))
        table = table.reshape(-1, self.num_heads)
        index = self.rel_index
        if sub_grid is not None and tuple(sub_grid) != self.grid:
            (gh, gw), (mh, mw) = self.grid, sub_grid
            index = index.view(gh, gw, gh, gw)[:mh, :mw, :mh, :mw].reshape(mh * mw, mh * mw)
        length = index.shape[0]
        return table[index.reshape(-1)].reshape(length, length, self.num_heads).permute(2, 0, 1)

    def get_bias(self,
                 dtype: torch.dtype,
                 device: torch.device,
                 sub_grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """The ``(num_heads, L, L)`` bias in ``dtype`` (computed in the graph, never from
        the cache, under an exporter, a compiler or an FX trace).

        ``sub_grid`` ``(mh, mw)`` (at most the grid): the bias among the grid positions
        ``(a, b)`` with ``a < mh`` and ``b < mw`` only, ``L = mh * mw`` (the real tokens of
        every group of a map that :func:`gsda_real_grid` accepts). The cached bias is
        stored contiguous (measured faster to add than the permuted view in inference; in
        a training step the copy gained nothing)."""
        if symbolic_shapes() or fx_tracing():
            return self._compute(sub_grid).to(dtype)
        if self.training:
            self._cache.clear()
            return self._compute(sub_grid).to(dtype)
        device = torch.device(device)
        key = (dtype, device, None if sub_grid is None else tuple(sub_grid),
               torch.is_autocast_enabled(device.type))
        params = (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        return self._cache.get(params, key, lambda: self._compute(sub_grid).to(dtype).contiguous())


def gsda_key_mask(height: int,
                  width: int,
                  grid: Tuple[int, int],
                  device=None) -> Optional[torch.Tensor]:
    """Which keys of each GSDA group are real tokens of an ``height x width`` map.

    Returns None when the map is a multiple of ``grid`` (no padding); otherwise a bool
    ``(G, L)`` tensor (G groups of ``L = gh * gw`` tokens, True = real) for the map
    zero-padded at the bottom/right to the next multiple of ``grid``. Position ``(0, 0)``
    of every group is always real, so no query sees only padded keys. Under symbolic sizes
    (:func:`~mmscope.models.layers.symbolic_shapes`) the mask is always returned (all
    True where the map fits), so the graph holds at every size.
    """
    ph, pw = pad_amount(height, grid[0]), pad_amount(width, grid[1])
    if not symbolic_shapes() and not (ph or pw):
        return None
    return group_valid_mask(height, width, grid, dilated=True, device=device)


def gsda_real_grid(height: int, width: int, grid: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """The grid ``(mh, mw)`` of real tokens shared by every GSDA group of an
    ``height x width`` map, or None where the groups differ.

    On the map padded to a multiple of ``grid``, group ``(p, q)`` holds the tokens
    ``(a * s + p, b * s' + q)`` (``s = ceil(height / gh)`` groups per column, ``a < gh``).
    Where ``s`` divides ``height`` (and ``s'`` divides ``width``), the real ones are those
    with ``a < mh = height / s`` (``b < mw``) in every group: the padded computation (padded
    keys masked, padded queries cropped) equals attention among those ``mh x mw`` tokens,
    grouped on the unpadded map by a ``(mh, mw)`` grid, with the bias of the first ``mh x
    mw`` grid positions. At 224 pixels every stage qualifies (maps 56, 28, 14, 7 with grid
    8: ``mh`` = 8, 7, 7, 7), so no padding, mask or crop is computed there. A map that is a
    multiple of the grid gives ``grid`` itself."""
    sh, sw = -(-height // grid[0]), -(-width // grid[1])
    if height % sh or width % sw:
        return None
    return height // sh, width // sw


def gsda_masked_bias(bias: torch.Tensor, key_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``bias`` with ``-inf`` at the padded keys of :func:`gsda_key_mask` (None: ``bias``)."""
    if key_mask is None:
        return bias
    return bias.masked_fill(~key_mask[:, None, None, :], float('-inf'))


class GlobalDilatedAttention(nn.Module):
    """GSDA on channels-last maps: attention inside dilated ``gh x gw`` grid groups.

    Maps that are not a multiple of the grid are zero-padded at the bottom/right for the
    attention only (see :func:`gsda_key_mask`); padded keys are masked with ``-inf`` and
    the output is cropped back before ``proj``. In eager mode, where every group's real
    tokens are the same grid positions (:func:`gsda_real_grid`), the tokens are grouped on
    the unpadded map by that smaller grid instead, with the bias of those positions: the
    same function without the padded tokens' projections, logits, mask and crop.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        dilation (int | tuple[int, int]): Grid size (tokens per group = product).
        attn_impl (str, optional): ``'fused'``, ``'reference'`` or None (process default).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 dilation: Union[int, Tuple[int, int]] = 8,
                 attn_impl: Optional[str] = None):
        super().__init__()
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.grid = _as_pair(dilation)
        self.attn_impl = attn_impl
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=False)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.rel_pos = RelPosMlpBias(self.grid, num_heads, REL_POS_HIDDEN_DIMS, REL_POS_DROP)

    def attend_padded(self,
                      x: torch.Tensor,
                      key_mask: Optional[torch.Tensor] = None,
                      sub_grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Grouped attention on a grid-divisible ``(B, Hp, Wp, C)`` map (before ``proj``).

        ``key_mask`` (bool ``(G, L)``, True = real) masks padded keys; None = no padding.
        ``sub_grid``: group an unpadded map by this grid of :func:`gsda_real_grid` instead,
        with the bias of those grid positions (no mask).
        """
        grid = self.grid if sub_grid is None else sub_grid
        b, hp, wp, c = x.shape
        groups = grid_partition(x, grid)  # B, sh, sw, L, C
        _, sh, sw, length, _ = groups.shape
        qkv = self.qkv(groups).reshape(b, sh * sw, length, 3, self.num_heads, self.head_dims)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # B, G, nh, L, hd
        bias = gsda_masked_bias(self.rel_pos.get_bias(q.dtype, q.device, sub_grid), key_mask)
        out = scaled_dot_attention(q, k, v, bias=bias, scale=self.scale, impl=self.attn_impl)
        out = out.transpose(2, 3).reshape(b, sh, sw, length, c)
        return grid_reverse(out, grid)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``(B, H, W, C)``; ``key_mask``: a precomputed :func:`gsda_key_mask`."""
        _, h, w, _ = x.shape
        if symbolic_shapes():
            # pad (by 0 where it fits), mask and crop unconditionally; the projection runs
            # before the crop, on a contiguous map (a Linear on a cropped view makes a
            # compiler guard on whether the crop is a no-op)
            ph, pw = pad_amount(h, self.grid[0]), pad_amount(w, self.grid[1])
            if key_mask is None:
                key_mask = gsda_key_mask(h, w, self.grid, x.device)
            x = self.proj(self.attend_padded(F.pad(x, (0, 0, 0, pw, 0, ph)), key_mask))
            return crop(crop(x, 1, h), 2, w)
        if not fx_tracing():
            sub_grid = gsda_real_grid(h, w, self.grid)
            if sub_grid is not None:  # the same real tokens in every group: only those
                return self.proj(self.attend_padded(x, sub_grid=sub_grid))
        if key_mask is None:
            key_mask = gsda_key_mask(h, w, self.grid, x.device)  # None: the map fits
        x = self.attend_padded(pad_to_multiple(x, self.grid, channels_last=True), key_mask)
        return self.proj(crop_to(x, h, w))


# ---------------------------------------------------------------------------------------
# blocks and stages
# ---------------------------------------------------------------------------------------
class ScopeTransformerLayer(nn.Module):
    """Pre-norm layer ``x + dp(ls1(attn(norm1(x))))``, ``x + dp(ls2(mlp(norm2(x))))``.

    Args:
        embed_dims (int): Channels.
        attn (nn.Module): The token mixer (channels-last in and out).
        mlp_ratio (float): MLP hidden ratio.
        drop_path (float): Stochastic depth rate.
        layer_scale_init_value (float): LayerScale initial value.
    """

    def __init__(self, embed_dims: int, attn: nn.Module, mlp_ratio: float, drop_path: float,
                 layer_scale_init_value: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = attn
        self.ls1 = LayerScale(embed_dims, layer_scale_init_value)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_layer=nn.GELU)
        self.ls2 = LayerScale(embed_dims, layer_scale_init_value)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, *attn_args) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), *attn_args)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class ScopeViTBlock(nn.Module):
    """An MSSA layer followed by a GSDA layer, on channels-last ``(B, H, W, C)`` maps.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads of both attentions.
        mssa_stride (int): Stride of the MSSA key/value convolutions.
        mssa_split (Sequence[int]): MSSA heads per kernel (7, 5, 3).
        gsda_dilation (int | tuple[int, int]): GSDA grid.
        mlp_ratio (float): MLP hidden ratio. Defaults to 4.
        drop_path (float): Stochastic depth rate of both layers. Defaults to 0.
        layer_scale_init_value (float): LayerScale init. Defaults to 1e-6.
        norm_cfg (dict): Norm config of the MSSA convolutions. Defaults to BN.
        attn_impl (str, optional): Attention implementation for both attentions.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mssa_stride: int,
                 mssa_split: Sequence[int],
                 gsda_dilation: Union[int, Tuple[int, int]],
                 mlp_ratio: float = 4.,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 norm_cfg: dict = None,
                 attn_impl: Optional[str] = None):
        super().__init__()
        self.mssa = ScopeTransformerLayer(
            embed_dims,
            MultiScaleSelfAttention(
                embed_dims,
                num_heads,
                mssa_stride,
                mssa_split,
                norm_cfg=norm_cfg,
                attn_impl=attn_impl), mlp_ratio, drop_path, layer_scale_init_value)
        self.gsda = ScopeTransformerLayer(
            embed_dims, GlobalDilatedAttention(embed_dims, num_heads, gsda_dilation, attn_impl),
            mlp_ratio, drop_path, layer_scale_init_value)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.gsda(self.mssa(x), key_mask)


class ScopeViTStage(nn.Module):
    """``downsample`` (None for the first stage) -> blocks -> ``norm``; NCHW in and out.

    Args:
        downsample (nn.Module, optional): Patch merging of this stage.
        blocks (list[ScopeViTBlock]): The blocks.
        embed_dims (int): Channels.
        gsda_dilation (int | tuple[int, int]): GSDA grid (to build the padding mask once).
        norm_cfg (dict): Config of the stage norm.
        with_cp (bool): Checkpoint every block.
    """

    def __init__(self,
                 downsample: Optional[nn.Module],
                 blocks: Sequence[nn.Module],
                 embed_dims: int,
                 gsda_dilation,
                 norm_cfg: dict,
                 with_cp: bool = False):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.grid = _as_pair(gsda_dilation)
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        # the blocks' tokens, stored (B, H, W, C): the downsamples write them so (channels-
        # last), the stem's NCHW map is copied here; left a permuted view, it would be copied
        # by every LayerNorm and its gradient, and strided through by every add
        x = make_contiguous(x.permute(0, 2, 3, 1))
        key_mask = gsda_key_mask(x.shape[1], x.shape[2], self.grid, x.device)
        for block in self.blocks:
            x = checkpointed(block, x, key_mask, enabled=self.with_cp)
        return self.norm(x.permute(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------
# backbone
# ---------------------------------------------------------------------------------------
@MODELS.register_module()
class ScopeViT(MMScopeBackbone):
    """ScopeViT backbone (`ScopeViT: Scale-aware Vision Transformer`).

    Stage ``i`` outputs ``embed_dims[i]`` channels at stride ``2 ** (i + 2)`` (size
    ``ceil(H / 2 ** (i + 2))``). Works for any input of at least 32x32 pixels; results on
    inputs whose maps are multiples of the GSDA grid (e.g. 256x256 for the default archs)
    equal the released model, other sizes use masked padding inside GSDA only.

    Args:
        arch (str | dict): ``'xtiny'``/``'xt'``/``'x-tiny'``, ``'tiny'``/``'t'`` or
            ``'small'``/``'s'``, or a dict with exactly the keys :attr:`arch_keys`, one
            entry per stage: ``embed_dims``, ``depths``, ``num_heads``, ``mssa_stride``
            (stride of the MSSA key/value convs), ``mssa_split`` (MSSA heads per kernel
            7/5/3, summing to ``num_heads``) and ``gsda_dilation`` (GSDA grid).
            Defaults to ``'tiny'``.
        in_channels (int): Input channels. Defaults to 3.
        mlp_ratio (float): MLP hidden ratio. Defaults to 4.
        layer_scale_init_value (float): LayerScale init. Defaults to 1e-6.
        drop_path_rate (float): Stochastic depth, linearly increasing over the blocks
            (both layers of a block share the rate). Defaults to 0.
        out_indices (Sequence[int] | int): Stages whose (stage-normed) maps are returned;
            negative values count from the end; returned in stage order. Defaults to
            ``(3, )``.
        frozen_stages (int): ``-1`` freezes nothing, ``0`` freezes the stem, ``k >= 1``
            freezes the stem and stages ``0 .. k-1`` (their downsample, blocks and stage
            norm): parameters stop requiring grad and the modules stay in eval mode.
            Defaults to -1.
        norm_eval (bool): Keep every BatchNorm in eval mode during training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing of each block (``use_reentrant=False``).
            Defaults to False.
        norm_cfg (dict): Config of every BatchNorm (stem, downsamples, stage norms, MSSA
            convolutions), e.g. ``dict(type='SyncBN')``. Defaults to ``dict(type='BN')``.
        attn_impl (str, optional): ``'auto'`` (the faster of SDPA and matmul + softmax,
            measured per call signature), ``'fused'`` (SDPA), ``'reference'`` (matmul +
            softmax) or None for the process default, used by every attention. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config, e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``, applied on top
            of the released model's initialization. Defaults to None.
        pretrained (str, optional): Deprecated, use ``init_cfg``. Defaults to None.
    """
    #: Attention settings shared by every released variant.
    _released_attention = {
        'num_heads': [2, 4, 8, 16],
        'mssa_stride': [4, 2, 1, 1],
        'mssa_split': [[1, 1, 0], [2, 1, 1], [4, 3, 1], [8, 6, 2]],
        'gsda_dilation': [8, 8, 8, 8]
    }
    arch_zoo = {
        'xtiny': dict(_released_attention, embed_dims=[32, 64, 128, 256], depths=[1, 2, 4, 1]),
        'tiny': dict(_released_attention, embed_dims=[32, 64, 128, 256], depths=[2, 2, 5, 2]),
        'small': dict(_released_attention, embed_dims=[64, 128, 256, 512], depths=[1, 2, 3, 1]),
    }
    arch_aliases = {'xt': 'xtiny', 'x-tiny': 'xtiny', 't': 'tiny', 's': 'small'}
    arch_keys = ('embed_dims', 'depths', 'num_heads', 'mssa_stride', 'mssa_split', 'gsda_dilation')
    # ScopeViT draws its Linear weights with torch's trunc_normal_ (seeded inits unchanged)
    trunc_normal_init = staticmethod(nn.init.trunc_normal_)
    # LayerScale factors and the GSDA position MLP train without weight decay
    no_decay_keys = ('.gamma', '.rel_pos.')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 mlp_ratio: float = 4.,
                 layer_scale_init_value: float = 1e-6,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 attn_impl: Optional[str] = None,
                 init_cfg: Optional[Union[dict, list]] = None,
                 pretrained: Optional[str] = None):
        super().__init__(init_cfg=init_cfg, pretrained=pretrained)
        settings = self._init_backbone(arch, out_indices, frozen_stages, norm_eval, with_cp,
                                       attn_impl)
        dpr = self.drop_path_rates(drop_path_rate, settings['depths'])
        self.stem = ConvStem(in_channels, self.embed_dims[0], norm_cfg)
        self.stages = nn.ModuleList()
        cur = 0
        for i, depth in enumerate(settings['depths']):
            dims = self.embed_dims[i]
            blocks = [
                ScopeViTBlock(
                    dims,
                    settings['num_heads'][i],
                    settings['mssa_stride'][i],
                    settings['mssa_split'][i],
                    settings['gsda_dilation'][i],
                    mlp_ratio=mlp_ratio,
                    drop_path=dpr[cur + j],
                    layer_scale_init_value=layer_scale_init_value,
                    norm_cfg=norm_cfg,
                    attn_impl=attn_impl) for j in range(depth)
            ]
            cur += depth
            downsample = None if i == 0 else ConvDownsample(self.embed_dims[i - 1], dims, norm_cfg)
            self.stages.append(
                ScopeViTStage(downsample, blocks, dims, settings['gsda_dilation'][i], norm_cfg,
                              self.with_cp))
        self._freeze_stages()

    @classmethod
    def _check_stage(cls, stage):
        dims, heads = stage['embed_dims'], stage['num_heads']
        split, grid = list(stage['mssa_split']), _as_pair(stage['gsda_dilation'])
        if heads < 1 or dims < 2 or dims % heads:
            raise ValueError(f'embed_dims ({dims}) must be divisible by num_heads ({heads})')
        if stage['mssa_stride'] < 1 or len(grid) != 2 or min(grid) < 1:
            raise ValueError('mssa_stride and gsda_dilation must be >= 1')
        nonzero = [n for n in split if n > 0]
        if (len(split) != len(MSSA_KERNELS) or min(split) < 0 or split[0] == 0
                or split[:len(nonzero)] != nonzero or sum(split) != heads):
            raise ValueError(
                f'mssa_split {split} must give the heads (summing to num_heads={heads}) of '
                f'the kernels {MSSA_KERNELS}, first one > 0, zeros only at the end')
        return {'mssa_split': split}

    def _frozen_modules(self):
        return ([self.stem] if self.frozen_stages >= 0 else []) + list(
            self.stages[:max(self.frozen_stages, 0)])

    def _layer_order(self):
        order = [(self.stem, False)]
        for stage in self.stages:
            if stage.downsample is not None:
                order.append((stage.downsample, False))
            order += [(block, True) for block in stage.blocks]
            order.append((stage.norm, False))
        return order

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(B, C, H, W)`` with ``H, W >= 32`` -> tuple of NCHW maps for ``out_indices``."""
        return self.forward_stages(x, self.out_indices)

    def forward_stages(self, x: torch.Tensor, indices: Sequence[int]) -> Tuple[torch.Tensor, ...]:
        """The NCHW maps of the stages ``indices`` (sorted, non-negative), each after its
        stage norm; only the stages up to the last of them run. Every stage of every
        ScopeViT has its norm, so any stage is available, whatever ``out_indices``."""
        self._check_input(x)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages[:max(indices) + 1]):
            x = stage(x)
            if i in indices:
                outs.append(make_contiguous(x))
        return tuple(outs)
