"""Data-parallel plumbing without launching processes: gradients laid out like their
parameters (what DDP's buckets need), and the in-order shutdown of a process group."""
import os.path as osp
import sys

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmscope.apis import runner as runner_mod  # noqa: E402
from mmscope.apis import shutdown_distributed  # noqa: E402
from mmscope.models.layers import store_channels_last  # noqa: E402
from mmscope.registry import MODELS  # noqa: E402

FAMILIES = [
    dict(type='mmscope.ScopeViT', arch='xtiny'),
    dict(type='mmscope.ScalableViT', arch='small')
]


def _incoming_and_final_grad_strides(model, size):
    """(incoming gradients whose memory layout differs from the parameter's, final
    gradients whose strides differ from the parameter's) after one backward."""
    relaid, differ, handles = [], [], []

    def dense_strides(t):
        return tuple(s for s, n in zip(t.stride(), t.shape) if n != 1)

    for name, p in model.named_parameters():

        def hook(g, name=name, p=p):
            if dense_strides(g) != dense_strides(p):
                relaid.append(name)

        handles.append(p.register_hook(hook))
    out = model(torch.randn(1, 3, *size))
    sum((o * o).mean() for o in out).backward()
    for h in handles:
        h.remove()
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.stride() != p.stride():
            differ.append((name, tuple(p.shape), p.stride(), p.grad.stride()))
    return relaid, differ


@pytest.mark.parametrize('cfg', FAMILIES, ids=lambda c: c['type'].split('.')[-1])
@pytest.mark.parametrize('size', [(97, 131)])
def test_gradients_are_laid_out_like_parameters(cfg, size):
    """DDP lays its bucket views out like the parameters and warns (then copies with
    strided reads) for every gradient whose strides differ; autograd copies a gradient
    whose memory order differs. Every backbone gradient must arrive in its parameter's
    layout, padded sizes included."""
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, drop_path_rate=0.)).train()
    relaid, differ = _incoming_and_final_grad_strides(model, size)
    assert not relaid, f'gradients copied into their parameter layout: {relaid[:5]}'
    assert not differ, f'gradient strides differ from parameter strides: {differ[:5]}'


def test_store_channels_last_keeps_values_and_survives_reload():
    conv_dw = nn.Conv2d(8, 8, 3, groups=8)
    conv_dense = nn.Conv2d(8, 4, 3)
    before = [conv_dw.weight.detach().clone(), conv_dense.weight.detach().clone()]
    store_channels_last(conv_dw, conv_dense)
    for conv, ref in zip((conv_dw, conv_dense), before):
        assert torch.equal(conv.weight, ref)
        assert conv.weight.stride() == torch.empty_like(
            ref, memory_format=torch.channels_last).stride()
        assert isinstance(conv.weight, nn.Parameter)
    # the ambiguous depth-wise layout really changed strides (the kernel's gradient ones)
    assert conv_dw.weight.stride() == (9, 1, 3, 1)
    # load_state_dict copies into the parameter: the layout stays
    src = nn.Conv2d(8, 8, 3, groups=8)
    conv_dw.load_state_dict(src.state_dict())
    assert torch.equal(conv_dw.weight, src.weight) and conv_dw.weight.stride() == (9, 1, 3, 1)
    # and a channels-last input gives a gradient of exactly those strides
    x = torch.randn(2, 8, 10, 10).to(memory_format=torch.channels_last)
    conv_dw(x).sum().backward()
    assert conv_dw.weight.grad.stride() == conv_dw.weight.stride()


@pytest.fixture
def gloo_group(tmp_path):
    """A one-process gloo group (a file store: no port)."""
    assert not dist.is_initialized()
    store = dist.FileStore(str(tmp_path / 'store'), 1)
    dist.init_process_group('gloo', store=store, rank=0, world_size=1)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize('succeeded', [True, False])
def test_shutdown_destroys_the_group(gloo_group, succeeded):
    t = torch.ones(3)
    dist.all_reduce(t)
    assert shutdown_distributed(succeeded=succeeded) is True
    assert not dist.is_initialized()
    # nothing to do twice
    assert shutdown_distributed() is True


def test_shutdown_after_failure_is_bounded(gloo_group, monkeypatch):
    """A group whose teardown hangs (a peer gone mid-collective) does not hang the
    failing rank: the bounded shutdown reports it."""
    import threading
    release, real_thread = threading.Event(), threading.Thread
    monkeypatch.setattr(runner_mod.threading, 'Thread',
                        lambda target, **kw: real_thread(target=release.wait, **kw))
    monkeypatch.setenv('MMSCOPE_DIST_SHUTDOWN_TIMEOUT', '0.2')
    assert shutdown_distributed(succeeded=False) is False
    release.set()


class _FakeRunner:

    def __init__(self, fail):
        self.fail, self.model = fail, nn.Linear(2, 2)

    def train(self):
        if self.fail:
            raise RuntimeError('boom in train')
        return self.model

    def test(self):
        return {'acc': 1.0}


def test_run_runner_success_shuts_the_group_down(gloo_group, monkeypatch):
    monkeypatch.setattr(runner_mod, 'build_runner', lambda cfg: _FakeRunner(fail=False))
    assert runner_mod.run_runner({}, 'test') == {'acc': 1.0}
    assert not dist.is_initialized()


def test_run_runner_failure_in_a_group_exits_1_with_traceback(gloo_group, monkeypatch, capsys):
    monkeypatch.setattr(runner_mod, 'build_runner', lambda cfg: _FakeRunner(fail=True))
    with pytest.raises(SystemExit) as exc:
        runner_mod.run_runner({}, 'train')
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'RuntimeError: boom in train' in err and 'rank 0 failed' in err
    assert not dist.is_initialized()


def test_run_runner_without_a_group_raises_unchanged(monkeypatch):
    monkeypatch.setattr(runner_mod, 'build_runner', lambda cfg: _FakeRunner(fail=True))
    with pytest.raises(RuntimeError, match='boom in train'):
        runner_mod.run_runner({}, 'train')
    with pytest.raises(ValueError, match="mode must be 'train'"):
        runner_mod.run_runner({}, 'fit')
