"""The default (``fused``) attention path computes what the ``reference`` path computes.

Correctness only (no timings): outputs and gradients of every ScopeViT and ScalableViT
variant agree between the two modes, on inputs whose stage maps need padding and on inputs
whose maps need none, in fp32 and under CPU bf16 autocast; the kernel-level cases that the
backbones rely on (5-D grouped inputs, per-head / per-group biases with ``-inf`` keys,
boolean masks, q/k and v of different head sizes); the fused path really reaches PyTorch's
flash kernel on CPU (no silent math fallback); and the CPU dispatch rules (small calls,
mixed head sizes) pick the faster implementation. The benchmark tool is tested in
``test_benchmark.py``.
"""
import contextlib

import pytest
import torch

from mmscope.benchmark.attention_profile import record_attention_calls
from mmscope.models.backbones import ScalableViT, ScopeViT
from mmscope.models.layers import attention_impl, cpu_dispatch_rules, scaled_dot_attention


@contextlib.contextmanager
def run_path(impl):
    """Run ``impl`` on the path it names: ``'fused'`` with the CPU size rules off, so
    every call goes through ``F.scaled_dot_product_attention`` (as on a GPU), checked
    on exit; ``'reference'``: every call through the plain matmuls."""
    with attention_impl(impl), cpu_dispatch_rules(False), record_attention_calls() as calls:
        yield calls
    want = 'sdpa' if impl == 'fused' else 'matmul'
    assert calls, 'no attention call was made'
    assert [c['path'] for c in calls] == [want] * len(calls), \
        f'{impl}: paths {[c["path"] for c in calls]}'


#: Per tensor, in the L2 norm: ``|a - b| <= rtol * |b| + atol * scale * sqrt(numel)``, where
#: ``scale`` is the tensor's max ``|b|`` for outputs and the RMS of all gradients of the
#: model for gradients (some gradients are exactly zero in theory, e.g. that of a bias added
#: to every logit of a softmax row, and only rounding noise is left to compare).
TOL = {'fp32': dict(rtol=1e-4, atol=1e-5), 'bf16': dict(rtol=6e-2, atol=1e-2)}
#: fp32 gradients: a weight gradient is a sum over every position of the map, and where the
#: terms nearly cancel (measured: ScopeViT-S, the 1x1 conv and BN bias of the first MSSA
#: CPE of stage 2 at 256x256, their gradients 3.0e-4 / 1.9e-4 apart between the two paths
#: relative to their norm, while every output agrees to 6e-7 and every other gradient to
#: 3e-5) the summation order of the two kernels shows at a few 1e-4. A wrong attention
#: gives relative errors of order 1.
GRAD_RTOL_FP32 = 1e-3

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _norm(t):
    return t.detach().float().norm().item()


def assert_close(actual, expected, dtype, what, scale=None, rtol=None):
    tol = dict(TOL[dtype], **({} if rtol is None else {'rtol': rtol}))
    assert actual.shape == expected.shape, what
    assert torch.isfinite(actual).all(), f'{what}: non-finite values'
    err = _norm(actual.float() - expected.float())
    scale = expected.detach().abs().max().item() if scale is None else scale
    bound = tol['rtol'] * _norm(expected) + tol['atol'] * scale * expected.numel()**0.5
    assert err <= bound + 1e-12, f'{what}: |diff| {err:.3g} > {bound:.3g} ({dtype})'


def run(model, x, impl, dtype, grad=True):
    """Outputs and gradients (input first, then every parameter) under ``impl``."""
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(grad)
    autocast = torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'bf16')
    with run_path(impl), autocast, torch.set_grad_enabled(grad):
        outs = model(x)
        if grad:
            sum((o.float() * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
                for o in outs).backward()
    grads = [x.grad] + [p.grad for p in model.parameters()] if grad else []
    model.zero_grad(set_to_none=True)
    return [o.detach() for o in outs], grads


def compare_modes(model, size, dtype, grad=True):
    torch.manual_seed(0)
    x = torch.randn(1, 3, *size)
    fused_out, fused_grads = run(model, x, 'fused', dtype, grad)
    ref_out, ref_grads = run(model, x, 'reference', dtype, grad)
    for i, (a, b) in enumerate(zip(fused_out, ref_out)):
        assert_close(a, b, dtype, f'output {i}')
    names = ['input'] + [n for n, _ in model.named_parameters()]
    assert [g is None for g in fused_grads] == [g is None for g in ref_grads]
    pairs = [(n, a, b) for n, a, b in zip(names, fused_grads, ref_grads) if a is not None]
    if not pairs:
        return
    if dtype == 'bf16':
        # bf16 rounding noise is too large to judge each small tensor on its own: compare
        # the input gradient, then the gradients of all parameters as one vector.
        assert_close(pairs[0][1], pairs[0][2], dtype, 'grad of the input')
        diff2 = sum(_norm(a - b)**2 for _, a, b in pairs[1:])
        ref2 = sum(_norm(b)**2 for _, _, b in pairs[1:])
        assert diff2**0.5 <= TOL[dtype]['rtol'] * ref2**0.5, 'grads of all parameters'
        return
    rms = (sum(_norm(b)**2 for _, _, b in pairs) / sum(b.numel() for _, _, b in pairs))**0.5
    for name, a, b in pairs:
        assert_close(a, b, dtype, f'grad of {name}', scale=rms, rtol=GRAD_RTOL_FP32)


def scopevit(arch):
    # LayerScale 1 instead of 1e-6, so the attention branches really shape the outputs.
    torch.manual_seed(0)
    return ScopeViT(arch=arch, out_indices=(0, 1, 2, 3), layer_scale_init_value=1.).eval()


def scalablevit(arch):
    torch.manual_seed(0)
    return ScalableViT(arch=arch, out_indices=(0, 1, 2, 3)).eval()


# Stage maps are ceil(H / 4) .. ceil(H / 32). ScopeViT pads GSDA to multiples of its
# 8x8 grid: 256x256 gives 64, 32, 16, 8 (no padding); 72x100 gives 18x25, 9x13, ...
# (padding everywhere). ScalableViT pads IWSA to multiples of the 7x7 window and SSA to
# multiples of sr_ratio (8, 4, 2): 224x224 gives 56, 28, 14, 7 (no padding), 72x100 pads.
NO_PAD = {'scopevit': (256, 256), 'scalablevit': (224, 224)}
PAD = (72, 100)
VARIANTS = [('scopevit', 'xt'), ('scopevit', 't'), ('scopevit', 's'), ('scalablevit', 's'),
            ('scalablevit', 'b'), ('scalablevit', 'l')]
BUILD = {'scopevit': scopevit, 'scalablevit': scalablevit}


@pytest.mark.parametrize('family,arch', VARIANTS, ids=[f'{f}-{a}' for f, a in VARIANTS])
def test_backbone_modes_agree(family, arch):
    """fp32 and bf16, padded and unpadded inputs: outputs and all gradients agree."""
    model = BUILD[family](arch)
    compare_modes(model, PAD, 'fp32')
    compare_modes(model, NO_PAD[family], 'fp32')
    compare_modes(model, PAD, 'bf16')
    compare_modes(model, NO_PAD[family], 'bf16')


def test_scopevit_fused_gsda_backward_with_frozen_bias():
    """With a frozen relative-position MLP the GSDA bias needs no gradient, so training
    runs the fused kernel's backward on the grouped (5-D) inputs; it must still agree
    (``compare_modes`` runs it with the CPU size rules off, so every call takes it)."""
    model = scopevit('xt')
    for name, p in model.named_parameters():
        if '.rel_pos.' in name:
            p.requires_grad_(False)
    compare_modes(model, PAD, 'fp32')
    compare_modes(model, NO_PAD['scopevit'], 'fp32')


def _key_mask_bias(shape, keys):
    """A float bias with -inf on the last third of the keys (every row keeps real keys)."""
    bias = torch.randn(shape)
    bias[..., 2 * keys // 3:] = float('-inf')
    return bias


KERNEL_CASES = {
    '4d': ((2, 3, 20, 8), (2, 3, 12, 8), (2, 3, 12, 8), None),
    '4d-bool-mask': ((4, 2, 16, 8), (4, 2, 16, 8), (4, 2, 16, 8), 'bool'),
    '5d-head-bias': ((2, 5, 3, 16, 8), (2, 5, 3, 16, 8), (2, 5, 3, 16, 8), (3, 16, 16)),
    '5d-group-bias-inf': ((2, 5, 3, 16, 8), (2, 5, 3, 16, 8), (2, 5, 3, 16, 8), (5, 3, 16, 16)),
    '5d-no-bias': ((2, 5, 3, 16, 8), (2, 5, 3, 16, 8), (2, 5, 3, 16, 8), None),
    '3d': ((6, 20, 8), (6, 12, 8), (6, 12, 8), (20, 12)),
    'qk-wider-than-v': ((2, 2, 40, 10), (2, 2, 9, 10), (2, 2, 9, 8), None),
    'qk-narrower-than-v': ((2, 4, 40, 2), (2, 4, 9, 2), (2, 4, 9, 8), None),
}

KERNEL_PARAMS = [(case, grad) for case, spec in KERNEL_CASES.items()
                 for grad in ([False, True] if isinstance(spec[3], tuple) else [False])]


@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
@pytest.mark.parametrize(
    'case,bias_grad',
    KERNEL_PARAMS,
    ids=[c + ('-bias-grad' if g else '') for c, g in KERNEL_PARAMS])
def test_kernel_modes_agree(case, bias_grad, dtype):
    q_shape, k_shape, v_shape, bias_spec = KERNEL_CASES[case]
    torch.manual_seed(0)
    q, k, v = (torch.randn(s) for s in (q_shape, k_shape, v_shape))
    bias = None
    if bias_spec == 'bool':
        bias = torch.rand(q_shape[0], 1, 1, k_shape[-2]) > 0.4
        bias[..., 0] = True
    elif bias_spec is not None:
        bias = (_key_mask_bias(bias_spec, k_shape[-2]) if 'inf' in case else torch.randn(bias_spec))
    results = {}
    for impl in ('fused', 'reference'):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        b = bias
        if bias is not None and bias.dtype != torch.bool:
            b = bias.clone().requires_grad_(bias_grad)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            qq, kk, vv = leaves
            bb = b
            if dtype == 'bf16':
                qq, kk, vv = (t.bfloat16() for t in leaves)
                bb = b.bfloat16() if b is not None and b.dtype != torch.bool else b
            with run_path(impl):
                out = scaled_dot_attention(qq, kk, vv, bias=bb, scale=0.3, impl=impl)
        weight = torch.linspace(-1, 1, out.numel()).view_as(out)
        (out.float() * weight).sum().backward()
        grads = [t.grad for t in leaves]
        if bias_grad:
            grads.append(b.grad)
        results[impl] = (out, grads)
    out_f, grads_f = results['fused']
    out_r, grads_r = results['reference']
    assert out_f.shape == q_shape[:-1] + v_shape[-1:]
    assert_close(out_f.float(), out_r.float(), dtype, 'output')
    for name, a, b in zip('qkvb', grads_f, grads_r):
        assert_close(a, b, dtype, f'grad of {name}')


def _attention_kernels(model, size):
    """``({kernel: calls}, number of scaled_dot_attention calls)`` of one forward."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with torch.no_grad(), attention_impl('fused'), record_attention_calls() as calls:
            model(torch.randn(1, 3, *size))
    kernels = {e.key: e.count for e in prof.key_averages() if 'scaled_dot_product' in e.key}
    return kernels, len(calls)


@pytest.mark.parametrize('family,arch', [('scopevit', 'xt'), ('scalablevit', 's'),
                                         ('scalablevit', 'l')])
def test_fused_reaches_cpu_flash_kernel(family, arch):
    """Where the default path calls SDPA, SDPA runs its CPU flash kernel, never its math
    fallback (slower than the reference code and holding the whole attention matrix):
    ScopeViT's 5-D GSDA groups and ScalableViT's SSA (q/k wider or narrower than v) are
    laid out for it. The CPU size rules are switched off here, so that every call of this
    small input goes to SDPA."""
    with cpu_dispatch_rules(False):
        kernels, calls = _attention_kernels(BUILD[family](arch), PAD)
    assert kernels.get('aten::_scaled_dot_product_flash_attention_for_cpu') == calls > 0
    assert 'aten::_scaled_dot_product_attention_math' not in kernels


def _flash_used(q, k, v, grad):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with torch.set_grad_enabled(grad):
            out = scaled_dot_attention(q, k, v, impl='fused')
    kernels = {e.key for e in prof.key_averages() if 'scaled_dot_product' in e.key}
    assert 'aten::_scaled_dot_product_attention_math' not in kernels
    return 'aten::_scaled_dot_product_flash_attention_for_cpu' in kernels, out


def _assert_matches_reference(q, k, v, out, grad):
    ref = scaled_dot_attention(q, k, v, impl='reference')
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    if grad:
        g_out = torch.autograd.grad(out.sum(), (q, k, v))
        g_ref = torch.autograd.grad(ref.sum(), (q, k, v))
        for a, b in zip(g_out, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('batch,expect_flash', [(2, False), (8, True)])
def test_cpu_dispatch_for_small_calls(batch, expect_flash, grad):
    """Calls under ``CPU_SMALL_ATTENTION_MACS`` multiply-adds run plain matmuls on CPU
    (the flash kernel's fixed cost dominates there), larger ones the flash kernel; both
    give the reference result and gradients. Shapes: ScalableViT's IWSA windows at
    224, head 32: 2 x 8 heads = 4.9M multiply-adds, 8 x 8 heads = 19.7M."""
    from mmscope.models.layers.dispatch import CPU_SMALL_ATTENTION_MACS
    assert 2 * 8 * 49 * 49 * 64 < CPU_SMALL_ATTENTION_MACS <= 8 * 8 * 49 * 49 * 64
    torch.manual_seed(0)
    q, k, v = (torch.randn(batch, 8, 49, 32, requires_grad=grad) for _ in range(3))
    flash, out = _flash_used(q, k, v, grad)
    assert flash == expect_flash
    _assert_matches_reference(q, k, v, out, grad)


@pytest.mark.parametrize(
    'qk_head,num_keys,grad,expect_flash',
    [
        (64, 49, True, False),  # training, few keys, q/k wider than v: plain matmuls
        (64, 49, False, True),  # inference with wider q/k: the flash kernel at every size
        (64, 144, True, True),  # training with enough keys: flash kernel
        (8, 49, False, False),  # inference, few keys, q/k narrower (ScalableViT-L): matmuls
        (8, 144, False, True),  # ... with enough keys: flash kernel
    ])
def test_cpu_dispatch_for_mixed_head_sizes(qk_head, num_keys, grad, expect_flash):
    """The default path picks the faster CPU implementation for ScalableViT's SSA shapes
    (q/k head 64 or 8, v head 32), and both give the reference result and gradients."""
    from mmscope.models.layers.dispatch import CPU_MIXED_HEAD_MIN_KEYS, CPU_SMALL_ATTENTION_MACS
    assert 49 < CPU_MIXED_HEAD_MIN_KEYS <= 144
    torch.manual_seed(0)
    q = torch.randn(8, 3, 4 * num_keys, qk_head, requires_grad=grad)
    k = torch.randn(8, 3, num_keys, qk_head, requires_grad=grad)
    v = torch.randn(8, 3, num_keys, 32, requires_grad=grad)
    assert q.shape[:-1].numel() * num_keys * (qk_head + 32) >= CPU_SMALL_ATTENTION_MACS
    flash, out = _flash_used(q, k, v, grad)
    assert flash == expect_flash
    _assert_matches_reference(q, k, v, out, grad)
