"""The measured dispatch of ``'auto'`` attention (``mmscope/models/layers/dispatch.py``).

No real timing is relied on: a fake timer (:func:`benchmark_timer`) says which kernel is
faster, and the tests check that this kernel runs, that each call signature is measured
once and cached under the right key, that the switch and the forced modes take
precedence, that both choices give the same outputs and gradients, and that compilers,
tracers and exporters never measure.
"""
import contextlib

import pytest
import torch
import torch.nn.functional as F

from mmscope.models.layers import (attention, attention_benchmark, attention_impl, attention_path,
                                   clear_dispatch_cache, dispatch, dispatch_choices,
                                   scaled_dot_attention)

pytestmark = pytest.mark.usefixtures('one_torch_thread')


class FakeTimer:
    """``timer(impl, run)``: runs the kernel, returns the seconds given for ``impl``."""

    def __init__(self, fused, reference, chunked=3.):
        self.seconds = dict(fused=fused, reference=reference, chunked=chunked)
        self.calls = []

    def __call__(self, impl, run):
        self.calls.append(impl)
        run()
        return self.seconds[impl]


@contextlib.contextmanager
def measured(fused, reference, chunked=3.):
    """Measurement on, an empty cache, and a fake timer (``chunked``: the seconds of the
    chunked candidate, where it is one); the cache is emptied on exit."""
    timer = FakeTimer(fused, reference, chunked)
    clear_dispatch_cache()
    try:
        with attention_benchmark(True), dispatch.benchmark_timer(timer):
            yield timer
    finally:
        clear_dispatch_cache()


@contextlib.contextmanager
def count_sdpa():
    """How many times ``F.scaled_dot_product_attention`` runs inside the block."""
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    F.scaled_dot_product_attention = counting
    try:
        yield calls
    finally:
        F.scaled_dot_product_attention = real


def inputs(shape=(2, 4, 64, 16), grad=False, dtype=torch.float32, keys=None):
    torch.manual_seed(0)
    kshape = shape[:-2] + (keys or shape[-2], shape[-1])
    return [torch.randn(s, dtype=dtype).requires_grad_(grad) for s in (shape, kshape, kshape)]


@pytest.mark.parametrize('faster', ['fused', 'reference'])
def test_faster_kernel_is_chosen_and_cached(faster):
    """The kernel the timer reports faster runs; the signature is measured once (one
    untimed + BENCHMARK_ROUNDS timed calls of each kernel), later calls hit the cache."""
    q, k, v = inputs()
    with measured(
            fused=1. if faster == 'fused' else 2.,
            reference=1. if faster == 'reference' else 2.) as timer:
        scaled_dot_attention(q, k, v)
        assert sorted(timer.calls) == sorted(['fused', 'reference'] * dispatch.BENCHMARK_ROUNDS)
        assert list(dispatch_choices().values()) == [faster]
        with count_sdpa() as sdpa:
            out = scaled_dot_attention(q, k, v)
        assert len(sdpa) == (1 if faster == 'fused' else 0)
        assert len(timer.calls) == 2 * dispatch.BENCHMARK_ROUNDS  # no second measurement
        assert attention_path(q, k, v) == ('sdpa' if faster == 'fused' else 'matmul')
    torch.testing.assert_close(out, scaled_dot_attention(q, k, v, impl='reference'))


def test_tie_keeps_fused():
    with measured(fused=1., reference=1.):
        assert attention_path(*inputs()) == 'sdpa'


def test_cache_keys():
    """One entry per signature: device, dtypes, shapes, strides, mask, gradients."""
    q, k, v = inputs()
    mask = torch.ones(64, 64, dtype=torch.bool)
    with measured(fused=1., reference=2.) as timer:
        scaled_dot_attention(q, k, v)
        scaled_dot_attention(q.clone(), k.clone(), v.clone())  # same signature: cached
        assert len(dispatch_choices()) == 1
        scaled_dot_attention(q, k, v, bias=mask)  # a mask
        scaled_dot_attention(q, k, v, bias=mask.float())  # a float bias
        scaled_dot_attention(q[:1], k[:1], v[:1])  # another shape
        scaled_dot_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())  # another dtype
        scaled_dot_attention(q.transpose(1, 2).contiguous().transpose(1, 2), k, v)  # strides
        qg, kg, vg = inputs(grad=True)
        scaled_dot_attention(qg, kg, vg)  # gradients flow: the backward is timed too
        with torch.no_grad():
            scaled_dot_attention(qg, kg, vg)  # no gradient: same as the first call
        keys = list(dispatch_choices())
    assert len(keys) == 7 and len(timer.calls) == 7 * 2 * dispatch.BENCHMARK_ROUNDS
    first = keys[0]
    assert first[0] == 'cpu' and first[1:4] == (torch.float32, ) * 3
    assert first[4:7] == ((2, 4, 64, 16), ) * 3
    assert first[10] is None and first[11] is False  # no mask, no gradient
    assert keys[1][10] == (torch.bool, (64, 64), (64, 1), False)
    assert keys[6][11] is True
    assert first[-1] == torch.get_num_threads() == 1


def test_switch_off_uses_the_rules():
    """Measurement off: no timing, the deterministic CPU rules (those of ``'fused'``)."""
    q, k, v = inputs((1, 1, 16, 8))  # tiny: the rules run the matmuls
    with measured(fused=1., reference=2.) as timer, attention_benchmark(False):
        assert attention_path(q, k, v) == 'matmul' == attention_path(q, k, v, impl='fused')
        with dispatch.cpu_dispatch_rules(False):
            assert attention_path(q, k, v) == 'sdpa'
    assert timer.calls == [] and not dispatch_choices()


def test_environment_switch(monkeypatch):
    monkeypatch.setenv('MMSCOPE_ATTN_BENCHMARK', '0')
    assert dispatch._env_enabled() is False
    monkeypatch.setenv('MMSCOPE_ATTN_BENCHMARK', 'on')
    assert dispatch._env_enabled() is True
    monkeypatch.setenv('MMSCOPE_ATTN_BENCHMARK', 'maybe')
    with pytest.raises(ValueError, match='MMSCOPE_ATTN_BENCHMARK must be'):
        dispatch._env_enabled()


@pytest.mark.parametrize('forced,path', [('fused', 'sdpa'), ('reference', 'matmul')])
def test_forced_modes_take_precedence(forced, path):
    """``attention_impl('fused' / 'reference')`` and a module's ``impl`` never measure;
    the timer's verdict (the other kernel) is ignored. ``cpu_dispatch_rules(False)``
    sends an ``'auto'`` call to SDPA without measuring."""
    q, k, v = inputs((8, 8, 64, 32))  # large enough for the rules to run SDPA
    slow = dict(fused=2., reference=1.) if forced == 'fused' else dict(fused=1., reference=2.)
    with measured(**slow) as timer:
        with attention_impl(forced):
            assert attention_path(q, k, v) == path
        assert attention_path(q, k, v, impl=forced) == path
        with dispatch.cpu_dispatch_rules(False):
            assert attention_path(q, k, v) == 'sdpa'
        assert timer.calls == []


def test_memory_cap(monkeypatch):
    """A reference attention matrix over the cap: no measurement, the rules' SDPA."""
    q, k, v = inputs((8, 8, 64, 32))
    monkeypatch.setattr(dispatch, 'BENCHMARK_MAX_REFERENCE_BYTES', 8 * 8 * 64 * 64 * 4 - 1)
    with measured(fused=2., reference=1.) as timer:
        assert attention_path(q, k, v) == 'sdpa'
        assert timer.calls == []
        monkeypatch.setattr(dispatch, 'BENCHMARK_MAX_REFERENCE_BYTES', 8 * 8 * 64 * 64 * 4)
        assert attention_path(q, k, v) == 'matmul'  # at the cap: measured


def test_measurement_leaves_no_trace():
    """Timing the kernels changes neither the inputs' gradients nor the random numbers of
    the call (dropout), so results are those of the chosen kernel alone."""
    q, k, v = inputs(grad=True)
    torch.manual_seed(1)
    want = scaled_dot_attention(q, k, v, dropout_p=0.5, impl='reference')
    want_rng = torch.rand(3)
    with measured(fused=2., reference=1.):
        torch.manual_seed(1)
        got = scaled_dot_attention(q, k, v, dropout_p=0.5)
        assert torch.equal(torch.rand(3), want_rng)
    assert torch.equal(got, want)
    assert all(t.grad is None for t in (q, k, v))


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('bias', [None, 'mask', 'grad'])
def test_both_choices_agree(dtype, bias):
    """The output and gradients of ``'auto'`` are the same function whichever kernel the
    measurement picks (fp32; bf16 within its rounding)."""
    results = {}
    for faster in ('fused', 'reference'):
        q, k, v = inputs((2, 3, 40, 16), grad=True, dtype=dtype, keys=24)
        b = None
        if bias == 'mask':
            b = torch.rand(2, 1, 1, 24) > 0.3
            b[..., 0] = True
        elif bias == 'grad':
            b = torch.randn(3, 40, 24, dtype=dtype, requires_grad=True)
        with measured(**{faster: 1., ('reference' if faster == 'fused' else 'fused'): 2.}):
            assert attention_path(q, k, v, b) == ('sdpa' if faster == 'fused' else 'matmul')
            out = scaled_dot_attention(q, k, v, bias=b)
        (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        leaves = [q, k, v] + ([b] if bias == 'grad' else [])
        results[faster] = [out] + [t.grad for t in leaves]
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=5e-2, atol=5e-2)
    for a, b_ in zip(results['fused'], results['reference']):
        torch.testing.assert_close(a.float(), b_.float(), **tol)


class Attend(torch.nn.Module):

    def forward(self, q, k, v):
        return scaled_dot_attention(q, k, v)


def test_trace_compile_export_do_not_measure():
    """TorchScript tracing, torch.export and torch.compile take the deterministic path:
    the timer is never called and nothing is cached."""
    q, k, v = inputs((1, 2, 16, 8))
    with measured(fused=2., reference=1.) as timer:
        with torch.no_grad():
            # check_trace=False: the check would also run the module in eager mode
            traced = torch.jit.trace(Attend(), (q, k, v), check_trace=False)
            exported = torch.export.export(Attend(), (q, k, v))
            compiled = torch.compile(Attend(), backend='eager', fullgraph=True)
            outs = [traced(q, k, v), exported.module()(q, k, v), compiled(q, k, v)]
        assert timer.calls == [] and not dispatch_choices()
    want = scaled_dot_attention(q, k, v, impl='reference')
    for out in outs:
        torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)


def test_fake_tensors_do_not_measure():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with measured(fused=2., reference=1.) as timer, FakeTensorMode() as mode:
        q, k, v = (mode.from_tensor(t) for t in inputs())
        assert scaled_dot_attention(q, k, v).shape == (2, 4, 64, 16)
    assert timer.calls == []


@pytest.mark.parametrize('threads,clock', [(1, '_cpu_timer'), (2, '_wall_timer')])
def test_default_clock(monkeypatch, threads, clock):
    """Without an injected timer: process CPU time with one thread on CPU (steady on a
    shared machine), wall time otherwise."""
    used = []
    for name in ('_cpu_timer', '_wall_timer'):
        monkeypatch.setattr(dispatch, name, lambda impl, run, name=name: used.append(name) or 1.)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: threads)
    clear_dispatch_cache()
    try:
        with attention_benchmark(True):
            scaled_dot_attention(*inputs())
    finally:
        clear_dispatch_cache()
    assert used == [clock] * (2 * dispatch.BENCHMARK_ROUNDS)


# ---------------------------------------------------------------------------------------
# the third candidate: the plain matmuls one chunk at a time (CPU inference)
# ---------------------------------------------------------------------------------------
CHUNKY = (2, 4, 256, 16)  # fp32: 256 KB of attention matrix per head


@pytest.mark.parametrize('bias', [None, 'per-head', 'mask'])
def test_chunked_candidate_is_measured_and_can_win(monkeypatch, bias):
    """In CPU inference with more than one chunk, ``'chunked'`` is measured beside the two
    kernels; where the timer says it is fastest it runs, with the reference's outputs."""
    monkeypatch.setattr(dispatch, 'CHUNK_BYTES', 300 * 1024)  # one head per chunk
    q, k, v = inputs(CHUNKY)
    b = None
    if bias == 'per-head':
        b = torch.randn(4, 256, 256)
    elif bias == 'mask':
        b = torch.rand(2, 1, 1, 256) > 0.3
        b[..., 0] = True
    with torch.no_grad(), measured(fused=2., reference=3., chunked=1.) as timer:
        assert attention_path(q, k, v, b) == 'chunked'
        assert sorted(set(timer.calls)) == ['chunked', 'fused', 'reference']
        assert timer.calls.count('chunked') == dispatch.BENCHMARK_ROUNDS
        with count_sdpa() as sdpa:
            out = scaled_dot_attention(q, k, v, bias=b)
        assert not sdpa
    torch.testing.assert_close(
        out, scaled_dot_attention(q, k, v, bias=b, impl='reference'), rtol=1e-6, atol=1e-6)


def test_chunked_candidate_loses_where_it_is_slower():
    q, k, v = inputs(CHUNKY)
    with torch.no_grad(), measured(fused=1., reference=2., chunked=3.) as timer:
        assert attention_path(q, k, v) == 'sdpa' and 'chunked' in timer.calls


def test_chunked_candidate_only_in_cpu_inference_with_several_chunks(monkeypatch):
    """Not a candidate when gradients flow, with dropout, or where the whole matrix is one
    chunk; the forced modes never run it."""
    monkeypatch.setattr(dispatch, 'CHUNK_BYTES', 300 * 1024)
    qg, kg, vg = inputs(CHUNKY, grad=True)
    with measured(fused=2., reference=3., chunked=1.) as timer:
        assert attention_path(qg, kg, vg) == 'sdpa'
        with torch.no_grad():
            assert attention_path(qg, kg, vg, dropout_p=0.1) == 'sdpa'
            small = inputs((2, 4, 64, 16))  # 16 KB per head: one chunk
            assert attention_path(*small) == 'sdpa'
            for forced, path in (('fused', 'sdpa'), ('reference', 'matmul')):
                assert attention_path(*inputs(CHUNKY), impl=forced) == path
        assert 'chunked' not in timer.calls


@pytest.mark.parametrize(
    'shape,bias_shape,kb,plan',
    [
        ((2, 4, 256, 16), None, 300, (1, 1, 8)),  # one head per chunk
        ((2, 4, 256, 16), None, 768, (1, 3, 4)),  # three heads, then the last one
        ((3, 5, 2, 64, 8), (2, 64, 64), 64, (2, 2, 8)),  # GSDA-like groups: rows of the batch
        ((3, 5, 2, 64, 8), (5, 2, 64, 64), 200, (1, 10, 3)),  # a per-group bias joins the heads
        ((3, 5, 2, 64, 8), (5, 2, 64, 64), 64, (1, 4, 9)),  # ... and is cut with them (4, 4, 2)
    ])
def test_chunk_plan_and_chunks_equal_the_reference(monkeypatch, shape, bias_shape, kb, plan):
    """The plan (rows, heads, chunks) follows CHUNK_BYTES, including uneven last chunks,
    and every chunking computes the reference attention: biases broadcast per chunk."""
    monkeypatch.setattr(dispatch, 'CHUNK_BYTES', kb * 1024)
    torch.manual_seed(0)
    q, k, v = (torch.randn(shape) for _ in range(3))
    bias = None if bias_shape is None else torch.randn(bias_shape)
    lead = attention._broadcast_lead(q, k, v)
    assert attention._chunk_plan(q, k, v, bias, lead) == plan
    with torch.no_grad():
        out = attention._chunked_attention(q, k, v, bias, 0.3, lead)
    want = attention._reference_attention(q, k, v, bias, 0.3, 0.)
    assert out.shape == want.shape
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('bias', [None, 'fp32', 'mask'])
def test_chunked_under_autocast_with_fp32_inputs(monkeypatch, bias):
    """Under CPU autocast the matmuls run in bf16 whatever the inputs: the chunks give the
    reference's output dtype and values (fp32 inputs, fp32 or boolean bias)."""
    monkeypatch.setattr(dispatch, 'CHUNK_BYTES', 200 * 1024)
    q, k, v = inputs(CHUNKY)
    b = {None: None, 'fp32': torch.randn(4, 256, 256), 'mask': torch.rand(1, 256) > 0.2}[bias]
    lead = attention._broadcast_lead(q, k, v)
    with torch.no_grad(), torch.autocast('cpu', torch.bfloat16):
        assert attention._chunk_plan(q, k, v, b, lead)[2] > 1
        got = attention._chunked_attention(q, k, v, b, 0.25, lead)
        want = attention._reference_attention(q, k, v, b, 0.25, 0.)
        with measured(fused=2., reference=3., chunked=1.):
            auto = scaled_dot_attention(q, k, v, bias=b, scale=0.25)
    assert got.dtype == want.dtype == auto.dtype
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(auto, want, rtol=0, atol=0)
