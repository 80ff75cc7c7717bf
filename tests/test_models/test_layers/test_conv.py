"""conv_fp32_in_cpu_training: fp32 in a CPU autocast training step, autocast otherwise."""
import torch
import torch.nn as nn

from mmscope.models.layers import conv_fp32_in_cpu_training


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
