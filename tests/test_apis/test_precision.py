"""Mixed precision on the CPU and its choices (:mod:`mmscope.apis.precision`).

What ``--amp`` picks on each device, how a CPU's native bf16 is read from its flags (and the
one-time warning where it is emulated), the bf16 autocast of the feature extractor
(outputs, gradients and parameters in fp32, idempotent), bf16 training steps against fp32
for both families at padded and unpadded sizes, and the attention masks under autocast.
The tools' ``--amp`` is run end to end in ``test_tools.py``.
"""
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmscope.apis import precision
from mmscope.apis.precision import (autocast_feature_extractor, cpu_bf16_support, cpu_flags,
                                    resolve_amp_dtype, warn_if_emulated_bf16)
from mmscope.models.layers import attention_impl, cpu_dispatch_rules, scaled_dot_attention

pytestmark = pytest.mark.usefixtures('one_torch_thread')


# ----------------------------------------------------------------------------- choices
def test_amp_dtype_per_device():
    assert resolve_amp_dtype('cpu') == 'bf16'
    assert resolve_amp_dtype('cpu', 'bf16') == 'bf16'
    assert resolve_amp_dtype('cuda') == 'fp16'
    assert resolve_amp_dtype('cuda', 'bf16') == 'bf16'
    with pytest.raises(
            ValueError, match='fp16 mixed precision is not supported on the CPU.*'
            'use bf16'):
        resolve_amp_dtype('cpu', 'fp16')
    with pytest.raises(ValueError, match=r"--amp-dtype must be one of \['bf16', 'fp16'\]"):
        resolve_amp_dtype('cuda', 'float16')


@pytest.mark.parametrize(
    'flags, native',
    [
        ({'fpu', 'avx2', 'avx512f', 'avx512bw', 'avx512_bf16'}, True),
        ({'fpu', 'avx2', 'amx_bf16', 'amx_tile'}, True),
        # near misses: AVX-512 without its bf16 extension, AMX without bf16, a longer name
        ({'fpu', 'avx2', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_fp16'}, False),
        ({'amx_tile', 'amx_int8'}, False),
        ({'avx512_bf16x'}, False),
        (set(), False),
    ])
def test_native_bf16_is_read_from_the_flags(flags, native):
    got, why = cpu_bf16_support(frozenset(flags))
    assert got is native
    assert ('native bf16 (' in why) is native


def test_cpu_flags_parse_cpuinfo(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nmodel name\t: AMD EPYC (with avx512_bf16 in its name)\n'
                    'flags\t\t: fpu vme avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx512_bf16\n')
    flags = cpu_flags(str(info))
    assert flags == frozenset({'fpu', 'vme', 'avx2', 'fma'})  # the first CPU's flags only
    assert cpu_bf16_support(flags)[0] is False  # the model name is not read
    assert cpu_flags(str(tmp_path / 'missing')) is None
    # what results name: the model and the speed flags of the first CPU, in a fixed order
    info.write_text('processor\t: 0\nmodel name\t: Some Xeon\n'
                    'flags\t\t: amx_bf16 fpu avx512_bf16 avx2 avx512f avx512vl\n')
    assert precision.cpu_description(str(info)) == dict(
        model='Some Xeon', flags=['avx2', 'avx512f', 'avx512_bf16', 'amx_bf16'])
    assert precision.cpu_description(str(tmp_path / 'missing'))['flags'] is None


def test_emulated_bf16_warns_once(monkeypatch):
    monkeypatch.setattr(precision, '_warned', set())
    no_bf16 = frozenset({'avx2'})
    with pytest.warns(RuntimeWarning, match='emulated and slower than fp32.*run without x'):
        assert warn_if_emulated_bf16('run without x', no_bf16) is False
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert warn_if_emulated_bf16('run without x', no_bf16) is False  # once
        assert warn_if_emulated_bf16('run without y', frozenset({'avx512_bf16'})) is True


# ----------------------------------------------------------------------------- autocast
def _classifier(family, arch, **backbone):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type=f'mmscope.{family}', arch=arch, **backbone),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=arch['embed_dims'][-1])))
    model.init_weights()
    return model


#: Small archs whose stage maps fit the attention grids at 64x64 (``unpadded``) and do not
#: at 72x72 (``padded``: GSDA / IWSA windows and SSA reductions pad).
SCOPEVIT = dict(
    embed_dims=[16, 32, 32, 64],
    depths=[1, 1, 1, 1],
    num_heads=[1, 2, 2, 4],
    mssa_stride=[4, 2, 1, 1],
    mssa_split=[[1, 0, 0], [1, 1, 0], [1, 1, 0], [2, 1, 1]],
    gsda_dilation=[2, 2, 2, 2])
SCALABLEVIT = dict(
    embed_dims=[16, 32, 32, 64],
    depths=[2, 2, 2, 1],
    num_heads=[1, 2, 2, 4],
    mlp_ratios=[4, 4, 4, 4],
    sr_ratios=[4, 2, 2, 1],
    c_ratios=[1.25, 1.25, 1.25, 1],
    window_sizes=[2, 2, 2, 2])
ARCHS = {'ScopeViT': SCOPEVIT, 'ScalableViT': SCALABLEVIT}


def test_feature_extractor_autocast_keeps_fp32_at_its_edges():
    torch.manual_seed(0)
    model = _classifier('ScopeViT', SCOPEVIT).train()
    keys = list(model.state_dict())
    seen = []
    inner = model.backbone.stages[0].blocks[0].mssa.mlp.fc1
    inner.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    assert autocast_feature_extractor(model) == ('backbone', 'neck')
    assert autocast_feature_extractor(model) == ('backbone', 'neck')  # again: not nested
    x = torch.randn(2, 3, 64, 64)
    feats = model.backbone(x)
    assert seen == [torch.bfloat16]
    assert all(f.dtype == torch.float32 for f in feats)
    loss = model(x, mode='tensor').float().sum()
    loss.backward()
    assert list(model.state_dict()) == keys
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in model.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="has none of \\['backbone', 'neck'\\]"):
        autocast_feature_extractor(torch.nn.Linear(2, 2))


def _grads(model, x, y, bf16):
    model.zero_grad(set_to_none=True)
    if bf16:
        autocast_feature_extractor(model)
    loss = F.cross_entropy(model(x, mode='tensor'), y)
    loss.backward()
    return loss.detach(), {
        n: p.grad.detach().clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize('family', ['ScopeViT', 'ScalableViT'])
@pytest.mark.parametrize('size', [64, 72], ids=['unpadded', 'padded'])
def test_bf16_training_step_is_close_to_fp32(family, size):
    """One training step as ``--amp`` runs it on the CPU: finite loss and gradients, and
    the gradients of the whole model within a few percent of fp32's (bf16 keeps 8
    significant bits; a wrong cast or a lost mask gives errors of order 1)."""
    torch.manual_seed(0)
    ref = _classifier(family, ARCHS[family], drop_path_rate=0.).train()
    torch.manual_seed(0)
    low = _classifier(family, ARCHS[family], drop_path_rate=0.).train()
    low.load_state_dict(ref.state_dict())
    for m in list(ref.modules()) + list(low.modules()):
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.  # ScopeViT's position-bias MLP: the same function in both runs
    x, y = torch.randn(4, 3, size, size), torch.tensor([0, 1, 2, 3])
    loss32, g32 = _grads(ref, x, y, bf16=False)
    loss16, g16 = _grads(low, x, y, bf16=True)
    assert torch.isfinite(loss16) and abs(loss16 - loss32) <= 5e-3 * abs(loss32)
    assert g16.keys() == g32.keys()
    assert all(torch.isfinite(g).all() for g in g16.values())
    flat32 = torch.cat([g.flatten() for g in g32.values()])
    flat16 = torch.cat([g16[k].flatten() for k in g32])
    rel = ((flat16 - flat32).norm() / flat32.norm()).item()
    # measured 0.7-1.1e-2 for these models and sizes
    assert rel < 3e-2, f'{family} {size}: gradients {rel:.3g} away from fp32'


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize('impl', ['fused', 'reference'])
@pytest.mark.parametrize('kind', ['bool', 'float'])
def test_masked_keys_stay_masked_under_autocast(impl, kind):
    """Under CPU bf16 autocast, keys masked out (a boolean mask, or ``-inf`` in a float
    bias as GSDA builds it) have no influence: huge values behind them change nothing,
    and the output equals fp32 attention over the real keys only."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 16, 8) for _ in range(3))
    keep = torch.ones(16, dtype=torch.bool)
    keep[11:] = False  # the padded keys
    mask = keep.expand(16, 16)
    bias = mask if kind == 'bool' else torch.zeros(16, 16).masked_fill(~mask, float('-inf'))
    v_poisoned = v.clone()
    v_poisoned[..., ~keep, :] = 1e4
    expected = F.softmax(q @ k[..., keep, :].transpose(-2, -1) * 8**-0.5, -1) @ v[..., keep, :]
    with attention_impl(impl), cpu_dispatch_rules(False), \
            torch.autocast('cpu', dtype=torch.bfloat16):
        out = scaled_dot_attention(q.bfloat16(), k.bfloat16(), v_poisoned.bfloat16(), bias)
        out_clean = scaled_dot_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), bias)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, out_clean)
    assert (out.float() - expected).abs().max() < 3e-2


def test_bf16_step_speedup_leaves_the_model_alone():
    torch.manual_seed(0)
    model = _classifier('ScalableViT', SCALABLEVIT).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    speedup = precision.bf16_step_speedup(model, torch.randn(2, 3, 32, 32), rounds=1)
    assert speedup > 0
    assert not model.training and 'forward' not in vars(model.backbone)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
