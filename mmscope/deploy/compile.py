"""``torch.compile`` of the mmscope backbones.

The backbones compile as one graph per forward with ``dynamic=True``: their size logic
takes no Python branch on a size under a compiler (``symbolic_shapes``), the attention
picks its kernel by rules that read no size, and the relative-position bias is computed
in the graph instead of a cache keyed on storage pointers. :func:`compile_report` counts
what a compiler produced for a set of inputs (graphs, graph breaks, recompilations);
``tests/test_deploy/test_deploy.py`` asserts one graph and no break over five sizes.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['compile_backbone', 'compile_report']


def _backbone_of(model: nn.Module) -> nn.Module:
    from mmscope.models.backbones.base import MMScopeBackbone
    if isinstance(model, MMScopeBackbone):
        return model
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, MMScopeBackbone):
        raise TypeError(f'{type(model).__name__} has no mmscope backbone to compile '
                        f'(its backbone is {type(backbone).__name__})')
    return backbone


def compile_backbone(model: nn.Module, options: Optional[dict] = None) -> nn.Module:
    """Compile the mmscope backbone of ``model`` (or ``model`` itself if it is one) in
    place (``nn.Module.compile``: the state-dict keys do not change, so checkpoints load
    and save as before). ``options`` are ``torch.compile`` keywords; ``dynamic`` defaults
    to True (one graph for every input size). Returns the compiled backbone."""
    options = dict(options or {})
    options.setdefault('dynamic', True)
    backbone = _backbone_of(model)
    backbone.compile(**options)
    return backbone


def compile_report(module: nn.Module,
                   inputs: Sequence[torch.Tensor],
                   train: bool = False,
                   dynamic: bool = True) -> Dict:
    """Compile ``module`` with a counting backend (the graphs run eagerly) and run it on
    every input (forward, plus backward of the summed outputs when ``train``).

    Returns ``dict(graphs=..., graph_breaks=..., recompiles=..., fallback=...)``:
    ``graphs`` is the number of graphs dynamo produced, ``graph_breaks`` the breaks it
    counted, ``recompiles`` the graphs beyond the first per frame, ``fallback`` whether a
    frame hit the recompile limit and ran eagerly.
    """
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters

    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    dynamo.reset()
    counters.clear()
    compiled = torch.compile(module, backend=counting_backend, dynamic=dynamic)
    module.train(train)
    for x in inputs:
        if train:
            out = compiled(x)
            out = out if isinstance(out, (tuple, list)) else (out, )
            sum(o.float().sum() for o in out).backward()
        else:
            with torch.no_grad():
                compiled(x)
    breaks = sum(counters['graph_break'].values())
    frames = dict(counters['frames'])
    limit_hits = sum(v for k, v in counters['stats'].items() if 'recompile' in k.lower()) + \
        sum(v for k, v in counters['frames'].items() if 'limit' in k.lower())
    report = dict(
        graphs=len(graphs),
        graph_breaks=breaks,
        break_reasons=sorted(counters['graph_break']),
        recompiles=max(len(graphs) - 1 - breaks, 0),
        frames=frames,
        fallback=bool(limit_hits))
    dynamo.reset()
    return report
