"""Tests of the ScalableViT backbone (CPU, small custom archs where size does not matter)."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import check_bf16_training_step

from mmscope.benchmark.attention_profile import record_attention_calls
from mmscope.models.backbones.scalablevit import IWSA, SSA, ScalableViT
from mmscope.models.layers import attention_impl, cpu_dispatch_rules
from mmscope.models.utils.key_tables import SCALABLEVIT_KEY_RULES as KEY_RULES

official_to_mmscope_key = KEY_RULES.official_to_mmscope_key
mmscope_to_official_key = KEY_RULES.mmscope_to_official_key
convert_official_state_dict = KEY_RULES.convert_official_state_dict

TINY = dict(
    embed_dims=[16, 32, 48, 64],
    depths=[2, 2, 2, 2],
    num_heads=[1, 2, 3, 4],
    mlp_ratios=[2, 2, 2, 2],
    sr_ratios=[8, 4, 2, 1],
    c_ratios=[1.25, 1.25, 1.25, 1],
    window_sizes=[7, 7, 7, 7])
ALL = (0, 1, 2, 3)
RELEASED = {  # arch: (final channels, params of the 1000-class classifier, released keys)
    'small': (512, 32_000_472, 492),
    'base': (768, 81_881_624, 440),
    'large': (1024, 109_288_840, 448),
}


def tiny(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('out_indices', ALL)
    model = ScalableViT(arch=copy.deepcopy(TINY), **kwargs)
    model.init_weights()
    # non-trivial norms and biases, so that a leak of padding would show
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('bias'):
                p.normal_(0, 0.1)
    return model


def classifier_cfg(arch='small', num_classes=1000, in_channels=512, **backbone):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='mmscope.ScalableViT', arch=arch, **backbone),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='StackedLinearClsHead',
            num_classes=num_classes,
            in_channels=in_channels,
            mid_channels=[4096] if num_classes == 1000 else [32],
            norm_cfg=dict(type='LN', eps=1e-6),
            act_cfg=dict(type='GELU'),
            loss=dict(type='CrossEntropyLoss')))


@pytest.fixture(scope='module')
def released_classifiers():
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    # whatever scope an earlier test left as the default, these are mmpretrain models
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return {
            a: MODELS.build(classifier_cfg(a, in_channels=c))
            for a, (c, _, _) in RELEASED.items()
        }


def test_large_input_shape():
    model = tiny(out_indices=(0, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 800, 1344))
    assert [o.shape for o in outs] == [(1, 16, 200, 336), (1, 64, 25, 42)]


def test_one_output_norm_per_out_index():
    model = ScalableViT(arch=TINY, out_indices=-1)
    assert model.out_indices == (3, ) and hasattr(model, 'norm3') and not hasattr(model, 'norm0')
    model = ScalableViT(arch=TINY, out_indices=(2, 0))
    assert model.out_indices == (0, 2) and hasattr(model, 'norm0') and hasattr(model, 'norm2')


def test_arch_stage_rules():
    """ScalableViT's own per-stage rules (the shared ones: tests/test_backbone_contract)."""
    with pytest.raises(ValueError, match='stage 0: embed_dims 16 not divisible by num_heads'):
        ScalableViT(dict(TINY, num_heads=[3, 2, 3, 4]))
    with pytest.raises(ValueError, match='multiple of num_heads'):
        ScalableViT(dict(TINY, c_ratios=[1.25, 1.1, 1.25, 1]))
    with pytest.raises(ValueError, match='window_sizes'):
        ScalableViT(dict(TINY, window_sizes=[7, 1, 7, 7]))
    with pytest.raises(ValueError, match='sr_ratios'):
        ScalableViT(dict(TINY, sr_ratios=[8, 4, 0, 1]))


def test_released_param_counts(released_classifiers):
    for arch, (_, count, _) in RELEASED.items():
        model = released_classifiers[arch]
        assert sum(p.numel() for p in model.parameters()) == count, arch
        head = model.head.layers
        assert head[0].norm.eps == 1e-6 and isinstance(head[0].act, nn.GELU)
        assert model.backbone.norm3.eps == 1e-6


def test_key_renaming_bijection(released_classifiers):
    for arch, (_, _, n_keys) in RELEASED.items():
        keys = list(released_classifiers[arch].state_dict())
        official = [mmscope_to_official_key(k) for k in keys]
        assert len(set(official)) == len(keys) == n_keys
        assert [official_to_mmscope_key(k) for k in official] == keys
        sd = convert_official_state_dict(dict.fromkeys(official, 0))
        assert list(sd) == keys
        backbone = convert_official_state_dict(dict.fromkeys(official, 0), backbone_only=True)
        assert list(backbone) == [k[len('backbone.'):] for k in keys if k.startswith('backbone.')]
    assert official_to_mmscope_key('stages.2.5.attn.reduction.0.weight') == \
        'backbone.stages.2.blocks.5.attn.reduce_dw.weight'
    assert official_to_mmscope_key('pos_block.1.proj.0.bias') == \
        'backbone.stages.1.pos_conv.proj.bias'
    assert official_to_mmscope_key('norm.weight') == 'backbone.norm3.weight'
    assert official_to_mmscope_key('head.1.weight') == 'head.layers.0.norm.weight'
    with pytest.raises(KeyError):
        official_to_mmscope_key('stages.0.0.attn.foo.weight')
    with pytest.raises(KeyError):
        mmscope_to_official_key('backbone.norm0.weight')
    # ``{last}`` follows ``num_stages``
    assert official_to_mmscope_key('norm.bias', num_stages=3) == 'backbone.norm2.bias'
    assert mmscope_to_official_key('backbone.norm2.bias', num_stages=3) == 'norm.bias'
    with pytest.raises(KeyError):
        mmscope_to_official_key('backbone.norm2.bias')


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _fwd_bwd(model, x):
    model.zero_grad()
    outs = model(x)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
    return [o.detach() for o in outs], _grads(model)


def _assert_close(a, b, atol=1e-5, rtol=1e-4):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        a, b = list(a.values()), list(b.values())
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol)


def test_fused_vs_reference():
    model = tiny().train()
    x = torch.randn(2, 3, 64, 90)
    with attention_impl('reference'):
        o1, g1 = _fwd_bwd(model, x)
    # CPU size rules off: every fused call really goes through SDPA (as on a GPU),
    # the padded IWSA windows with their boolean key mask included
    with attention_impl('fused'), cpu_dispatch_rules(False), record_attention_calls() as c:
        o2, g2 = _fwd_bwd(model, x)
    assert c and all(r['path'] == 'sdpa' for r in c)
    assert any(r['bias'] is not None and r['bias'].dtype == torch.bool for r in c)
    _assert_close(o1, o2)
    _assert_close(g1, g2)
    # the constructor argument overrides the process default
    fixed = tiny(attn_impl='reference').train()
    with attention_impl('fused'):
        o3, g3 = _fwd_bwd(fixed, x)
    _assert_close(o1, o3, atol=1e-6, rtol=1e-6)
    _assert_close(g1, g3, atol=1e-6, rtol=1e-6)


def _iwsa_bruteforce(m, x, hw):
    """Attention over the real tokens of each window only; LIM on the unpadded V map."""
    B, N, C = x.shape
    H, W = hw
    ws, nh = m.window_size, m.num_heads
    q, k, v = m.qkv(x).view(B, H, W, 3, nh, C // nh).unbind(3)
    out = torch.zeros(B, H, W, nh, C // nh, dtype=x.dtype)
    for i in range(0, H, ws):
        for j in range(0, W, ws):
            qw, kw, vw = (t[:, i:i + ws, j:j + ws].flatten(1, 2).transpose(1, 2) for t in (q, k, v))
            a = (qw @ kw.transpose(-2, -1) * m.scale).softmax(-1) @ vw
            out[:, i:i + ws, j:j + ws] = a.transpose(1, 2).view(B, min(ws, H - i), min(ws, W - j),
                                                                nh, C // nh)
    vmap = v.reshape(B, H, W, C).permute(0, 3, 1, 2)
    lim = F.conv2d(vmap, m.lim.weight, m.lim.bias, padding=1, groups=C)
    return m.proj(out.reshape(B, H, W, C) + lim.permute(0, 2, 3, 1)).reshape(B, N, C)


@pytest.mark.parametrize('impl', ['fused', 'reference'])
@pytest.mark.parametrize('hw', [(14, 21), (10, 14), (14, 9), (9, 12), (1, 1)])
def test_iwsa_padding_is_masked(hw, impl):
    """Fails if padded tokens received attention weight (a zero key still scores 0), if a
    zero pad masked a whole axis (Twins' ``[-0:]`` bug), or if LIM saw non-zero padding."""
    torch.manual_seed(0)
    m = IWSA(12, 3, window_size=7, attn_impl=impl).eval()
    nn.init.normal_(m.qkv.bias, 0, 1.0)  # padded qkv rows would not be zero before proj
    x = torch.randn(2, hw[0] * hw[1], 12)
    with torch.no_grad(), cpu_dispatch_rules(False), record_attention_calls() as calls:
        out = m(x, hw)
    assert [c['path'] for c in calls] == ['sdpa' if impl == 'fused' else 'matmul']
    with torch.no_grad():
        torch.testing.assert_close(out, _iwsa_bruteforce(m, x, hw), atol=1e-5, rtol=1e-5)


def test_padding_content_does_not_leak():
    """Real-position outputs stay the same whatever the padding holds."""
    torch.manual_seed(0)
    m = IWSA(8, 2).eval()
    x = torch.randn(1, 10 * 11, 8)
    with torch.no_grad():
        ref = m(x, (10, 11))
        orig_pad = F.pad

        def noisy_pad(t, pad, *args, **kwargs):
            out = orig_pad(t, pad, *args, **kwargs)
            if len(pad) <= 2:  # a head-size extension of the attention kernel, not a map
                return out
            mask = orig_pad(torch.zeros_like(t), pad, value=1.).bool()
            return out.masked_fill(mask, 1e4)

        import mmscope.models.layers.padding as padding  # where the maps are padded
        padding.F.pad = noisy_pad
        try:
            noisy = m(x, (10, 11))
        finally:
            padding.F.pad = orig_pad
    torch.testing.assert_close(ref, noisy)


def test_ssa_reduction_ceil_mode():
    """Non-multiple maps: the reduction sees a bottom/right zero-padded map (ceil mode)."""
    torch.manual_seed(0)
    m = SSA(16, 2, sr_ratio=4, c_ratio=1.25).eval()
    H, W = 9, 6
    x = torch.randn(2, H * W, 16)
    with torch.no_grad():
        feat = F.pad(x.transpose(1, 2).reshape(2, 16, H, W), (0, 2, 0, 3))
        red = m.reduce_pw(m.reduce_dw(feat)).flatten(2).transpose(1, 2)
        assert red.shape[1] == 3 * 2
        red = m.reduce_act(m.reduce_norm(red))
        q = m.q(x).view(2, -1, 2, 10).transpose(1, 2)
        k = m.k(red).view(2, -1, 2, 10).transpose(1, 2)
        v = m.v(red).view(2, -1, 2, 8).transpose(1, 2)
        a = ((q @ k.transpose(-2, -1)) * (8 * 1.25)**-0.5).softmax(-1) @ v
        expected = m.proj(a.transpose(1, 2).reshape(2, H * W, 16))
        torch.testing.assert_close(m(x, (H, W)), expected, atol=1e-5, rtol=1e-5)


def test_fitting_input_is_unpadded():
    """224x224 fits every window / reduction: no map is padded (the attention kernel's
    head-size extension, a pad of the last dim only, is not spatial padding)."""
    model = tiny().eval()
    import mmscope.models.layers.padding as padding  # where the maps are padded
    calls = []
    orig = padding.F.pad
    padding.F.pad = lambda t, pad, *a, **k: calls.append(pad) or orig(t, pad, *a, **k)
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 224, 224))
    finally:
        padding.F.pad = orig
    assert [p for p in calls if len(p) > 2] == []


def test_what_frozen_stages_freeze():
    """Stage ``i < k`` with its output norm; 0: the first patch embedding only. Every norm
    is a LayerNorm, which ``norm_eval`` keeps in eval mode."""
    model = ScalableViT(TINY, out_indices=ALL, frozen_stages=2, norm_eval=True)
    model.train()
    for i, stage in enumerate(model.stages):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules() if not isinstance(m, nn.LayerNorm))
        assert all(p.requires_grad != frozen for p in getattr(model, f'norm{i}').parameters())
    assert not any(m.training for m in model.modules() if isinstance(m, nn.LayerNorm))
    assert model.stages[2].blocks[0].attn.training
    stem = ScalableViT(TINY, frozen_stages=0).train()
    assert not any(p.requires_grad for p in stem.stages[0].patch_embed.parameters())
    assert all(p.requires_grad for p in stem.stages[0].blocks.parameters())
    assert all(m.training for m in ScalableViT(TINY).train().modules())


def test_classifier_train_step():
    from mmengine.optim import OptimWrapper
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    cfg = classifier_cfg(copy.deepcopy(TINY), num_classes=5, in_channels=64, drop_path_rate=0.1)
    cfg['data_preprocessor'] = dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # whatever scope is current
        model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    data = dict(
        inputs=[torch.randint(0, 256, (3, 60, 70), dtype=torch.uint8) for _ in range(2)],
        data_samples=[DataSample().set_gt_label(i) for i in (1, 3)])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = model.train_step(data, optim)
    assert torch.isfinite(log['loss'])
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith('backbone.stages.0.') for n in changed)
    assert any(n.startswith('head.') for n in changed)
    model.eval()
    preds = model.val_step(data)
    assert preds[0].pred_score.shape == (5, )


def test_bf16_training_step_reduces_keys_in_fp32():
    """Under CPU bf16 autocast a training step runs the strided reductions of SSA in fp32
    (oneDNN's bf16 backward of them is slow); outputs and gradients stay within bf16's
    tolerance (relative errors here: outputs 0.7 %, gradients up to 5 %, as with bf16 convs)."""
    model = tiny()
    reductions = [
        m.attn.reduce_dw for s in model.stages for m in s.blocks
        if isinstance(m.attn, SSA) and m.attn.sr_ratio > 1
    ]
    check_bf16_training_step(model, torch.randn(2, 3, 64, 64), reductions, max_rel_err=0.08)
