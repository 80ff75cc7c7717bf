"""conv_fp32_in_cpu_training: fp32 in a CPU autocast training step, autocast otherwise;
conv_bn: an eval-mode BatchNorm folded into its convolution."""
import copy

import pytest
import torch
import torch.nn as nn

from mmscope.models.layers import (DerivedCache, conv_bn, conv_fp32_in_cpu_training, folded_conv_bn,
                                   folds_into_conv, store_channels_last)


def _dw_conv():
    torch.manual_seed(0)
    return nn.Conv2d(8, 8, 4, stride=4, groups=8)


def test_fp32_in_a_cpu_autocast_training_step():
    conv = _dw_conv()
    x = torch.randn(2, 8, 16, 16).bfloat16()  # a bf16 map, as autocast hands it over
    expected = conv(x.float())
    expected.sum().backward()
    expected_grad = conv.weight.grad.clone()
    conv.zero_grad()
    with torch.autocast('cpu', torch.bfloat16):
        y = conv_fp32_in_cpu_training(conv, x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    y.sum().backward()
    torch.testing.assert_close(conv.weight.grad, expected_grad, rtol=0, atol=0)


def test_autocast_decides_without_gradients_or_autocast():
    conv = _dw_conv()
    x = torch.randn(2, 8, 16, 16)
    with torch.autocast('cpu', torch.bfloat16), torch.no_grad():
        assert conv_fp32_in_cpu_training(conv, x).dtype == torch.bfloat16
    conv.requires_grad_(False)
    with torch.autocast('cpu', torch.bfloat16):  # nothing needs a gradient
        assert conv_fp32_in_cpu_training(conv, x).dtype == torch.bfloat16
    torch.testing.assert_close(conv_fp32_in_cpu_training(conv, x), conv(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------
# conv_bn: an eval-mode BatchNorm folded into the convolution before it
# ---------------------------------------------------------------------------------------
def _conv_bn(groups=1, bias=False, affine=True, channels_last=True):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=groups, bias=bias)
    if channels_last:
        store_channels_last(conv)
    bn = nn.BatchNorm2d(8, affine=affine)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.25, 4.)
    if affine:
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
    return conv, bn.eval()


@pytest.mark.parametrize('groups,bias,affine,channels_last', [(1, False, True, True),
                                                              (8, False, True, True),
                                                              (1, True, False, False),
                                                              (8, True, True, False)])
def test_conv_bn_folds_an_eval_batchnorm(groups, bias, affine, channels_last):
    conv, bn = _conv_bn(groups, bias, affine, channels_last)
    x = torch.randn(2, 8, 9, 7).to(memory_format=torch.channels_last)
    calls = []
    bn.register_forward_hook(lambda *_: calls.append(1))
    expected = bn(conv(x))
    calls.clear()
    torch.testing.assert_close(conv_bn(conv, bn, x), expected, rtol=1e-5, atol=1e-5)
    assert not calls  # one convolution, the BatchNorm never ran
    weight, b = folded_conv_bn(conv, bn)
    assert weight.shape == conv.weight.shape and b.shape == (8, )
    assert weight.stride() == conv.weight.stride()  # the layout kept (channels-last or not)
    # gradients through the fold (eval mode, e.g. saliency maps) are those of the two layers
    xg = x.clone().requires_grad_()
    conv_bn(conv, bn, xg).square().sum().backward()
    grads = [xg.grad, conv.weight.grad, bn.weight.grad if affine else None]
    for t in (xg, conv.weight, bn.weight, bn.bias):
        if t is not None:
            t.grad = None
    xg = x.clone().requires_grad_()
    bn(conv(xg)).square().sum().backward()
    for got, want in zip(grads, [xg.grad, conv.weight.grad, bn.weight.grad if affine else None]):
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_conv_bn_folds_low_precision_parameters_in_fp32():
    conv, bn = _conv_bn()
    conv, bn = conv.bfloat16(), bn.bfloat16()
    weight, bias = folded_conv_bn(conv, bn)
    assert weight.dtype == bias.dtype == torch.bfloat16
    ref_w, ref_b = folded_conv_bn(copy.deepcopy(conv).float(), copy.deepcopy(bn).float())
    torch.testing.assert_close(weight, ref_w.bfloat16(), rtol=0, atol=0)
    torch.testing.assert_close(bias, ref_b.bfloat16(), rtol=0, atol=0)


def test_conv_bn_leaves_what_does_not_fold():
    conv, bn = _conv_bn()
    x = torch.randn(4, 8, 6, 6)
    bn.train()  # batch statistics: normalised as before, running statistics updated
    mean = bn.running_mean.clone()
    expected = nn.BatchNorm2d(8).train()
    expected.load_state_dict(bn.state_dict())
    torch.testing.assert_close(conv_bn(conv, bn, x), expected(conv(x)), rtol=0, atol=0)
    assert not torch.equal(bn.running_mean, mean)
    assert not folds_into_conv(bn)
    no_stats = nn.BatchNorm2d(8, track_running_stats=False).eval()
    gn = nn.GroupNorm(2, 8)
    for norm in (no_stats, gn):
        assert not folds_into_conv(norm)
        torch.testing.assert_close(conv_bn(conv, norm, x), norm(conv(x)), rtol=0, atol=0)
    assert folds_into_conv(bn.eval()) and folds_into_conv(nn.SyncBatchNorm(8).eval())


def test_conv_bn_runs_both_layers_in_graphs():
    conv, bn = _conv_bn()

    class Pair(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv, self.bn = conv, bn

        def forward(self, x):
            return conv_bn(self.conv, self.bn, x)

    calls = []
    bn.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(1, 8, 5, 5)
    torch.jit.trace(Pair().eval(), x)  # the ONNX exporter's trace, FLOP counting
    assert calls
    assert 'bn' in dict(torch.fx.symbolic_trace(Pair().eval()).named_modules())


def test_conv_bn_cache():
    conv, bn = _conv_bn()
    cache = DerivedCache()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        y = conv_bn(conv, bn, x, cache)
        first = cache._entry[1]
        conv_bn(conv, bn, x, cache)
        assert cache._entry[1] is first  # reused
        bn.running_var.mul_(2.)  # an in-place update (a training step's statistics)
        y2 = conv_bn(conv, bn, x, cache)
    assert cache._entry[1] is not first
    torch.testing.assert_close(y2, bn(conv(x)).detach(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(y, y2)
    state = {k: v + 1 if v.is_floating_point() else v for k, v in conv.state_dict().items()}
    conv.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(conv_bn(conv, bn, x, cache), bn(conv(x)), rtol=1e-5, atol=1e-5)
    # a gradient can flow: computed in the graph, nothing stored
    out = conv_bn(conv, bn, x, cache)
    assert cache._entry is None and out.requires_grad
    out.sum().backward()
    assert conv.weight.grad is not None and bn.weight.grad is not None
    with torch.inference_mode():
        conv_bn(conv, bn, x, cache)
    with torch.no_grad():  # an inference tensor is not handed out of inference mode
        conv_bn(conv, bn, x, cache)
        assert not cache._entry[1][0].is_inference()


def test_conv_bn_cache_after_a_training_step():
    """A train-mode forward changes the running statistics inside the BatchNorm kernel
    without bumping their version counters: the next eval forward must not reuse the
    weights folded before it (validation during training)."""
    conv, bn = _conv_bn()
    cache = DerivedCache()
    x = torch.randn(4, 8, 6, 6)
    with torch.no_grad():
        conv_bn(conv, bn.eval(), x, cache)
        assert cache._entry is not None
        conv_bn(conv, bn.train(), x * 3 + 1, cache)  # new running statistics
        assert cache._entry is None
        got = conv_bn(conv, bn.eval(), x, cache)
        torch.testing.assert_close(got, bn(conv(x)), rtol=1e-5, atol=1e-5)
        # the same through a plain BatchNorm call (no conv_bn in between)
        conv_bn(conv, bn, x, cache)
        bn.train()(conv(x) * 2 - 1)
        got = conv_bn(conv, bn.eval(), x, cache)
        torch.testing.assert_close(got, bn(conv(x)), rtol=1e-5, atol=1e-5)
