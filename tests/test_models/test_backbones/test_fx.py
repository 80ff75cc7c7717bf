"""FX symbolic tracing of both backbones (``torch.fx.symbolic_trace``, torchvision's
``create_feature_extractor``): the size decisions run as graph nodes on the real sizes,
so one graph equals eager, forward and backward, at sizes that fit the grids / windows
and at sizes that are padded."""
import pytest
import torch
import torch.nn as nn
from torchvision.models.feature_extraction import create_feature_extractor

from mmscope.models.backbones import NotScriptableError, ScalableViT, ScopeViT

pytestmark = pytest.mark.usefixtures('one_torch_thread')

#: ScalableViT-S's attention settings at a small width (the shapes demo's XS)
SCALABLEVIT_XS = dict(
    embed_dims=[32, 64, 128, 256],
    depths=[2, 2, 2, 2],
    num_heads=[1, 2, 4, 8],
    mlp_ratios=[4, 4, 4, 4],
    sr_ratios=[8, 4, 2, 1],
    c_ratios=[1.25, 1.25, 1.25, 1],
    window_sizes=[7, 7, 7, 7])
#: stage maps that fit every grid / window, then padded, tall and the smallest
SIZES = [(256, 224), (97, 131), (40, 32)]


def _backbone(family):
    torch.manual_seed(0)
    if family == 'scopevit':
        model = ScopeViT(arch='xtiny', out_indices=(0, 1, 2, 3))
    else:
        model = ScalableViT(arch=SCALABLEVIT_XS, out_indices=(0, 1, 2, 3))
    model.init_weights()
    for m in model.modules():  # non-trivial statistics, so the comparison sees them
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize('family', ['scopevit', 'scalablevit'])
def test_one_fx_graph_equals_eager_at_every_size(family):
    model = _backbone(family).eval()
    graph = torch.fx.symbolic_trace(model)
    # the padding decisions are nodes, not frozen into the graph
    called = {getattr(n.target, '__name__', '') for n in graph.graph.nodes}
    assert {'check_input', 'pad_to_multiple', 'crop_to', 'scaled_dot_attention'} <= called
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            expected, got = model(x), graph(x)
        assert len(got) == 4
        for e, g in zip(expected, got):
            # eager eval folds the BatchNorms into their convolutions, the graph runs both
            # layers (it must also train): the same function up to fp32 rounding
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5, msg=str((h, w)))
    with pytest.raises(ValueError, match='at least 32x32'):
        graph(torch.randn(1, 3, 16, 64))


@pytest.mark.parametrize('family', ['scopevit', 'scalablevit'])
def test_fx_graph_trains_like_eager(family):
    """Training mode (dropout in GSDA's position MLP, batch statistics): the same loss
    and the same gradients as eager, on a padded size."""
    model = _backbone(family).train()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 97, 70)

    def run(module):
        module.zero_grad()
        torch.manual_seed(3)
        loss = sum(o.square().mean() for o in module(x))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters()}

    eager_loss, eager_grads = run(model)
    fx_loss, fx_grads = run(graph)
    assert torch.equal(eager_loss, fx_loss)
    assert set(eager_grads) == set(fx_grads)  # every parameter gets its gradient
    for name, grad in eager_grads.items():
        torch.testing.assert_close(fx_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize('family', ['scopevit', 'scalablevit'])
def test_create_feature_extractor_takes_the_stage_maps(family):
    """torchvision's feature extractor on the backbone's ``stage_map_module`` nodes gives
    the stage maps of ``forward``."""
    model = _backbone(family).eval()
    nodes = {model.stage_map_module.format(i): f's{i}' for i in (1, 3)}
    extractor = create_feature_extractor(model, return_nodes=nodes)
    x = torch.randn(1, 3, 97, 64)
    with torch.no_grad():
        maps, expected = extractor(x), model(x)
    assert list(maps) == ['s1', 's3']
    # eager eval folds the BatchNorms (see above): equal up to fp32 rounding
    torch.testing.assert_close(maps['s1'], expected[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps['s3'], expected[3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('family', ['scopevit', 'scalablevit'])
def test_torchscript_scripting_is_refused_with_the_reason_and_what_works(family):
    """TorchScript: scripting is refused on purpose (docs/timm.md), with the reason and the
    alternatives (tracing, one of them, is what tests/test_deploy's TorchScript ONNX
    exporter runs at every size)."""
    model = _backbone(family).eval()
    with pytest.raises(
            NotScriptableError,
            match=r'not scriptable, by design.*input size.*maintenance mode.*'
            r'torch\.export.*--exporter dynamo.*torch\.jit\.trace'):
        torch.jit.script(model)
    holder = nn.Sequential(model)  # scripting any model that holds the backbone
    with pytest.raises(NotScriptableError):
        torch.jit.script(holder)
