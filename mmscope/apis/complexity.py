"""Parameters and FLOPs of any mmscope config: classifier, detector or segmentor.

What ``tools/analysis_tools/get_flops.py`` prints, as functions. The library that runs a
config is read from its ``default_scope`` (a row of :data:`mmscope.apis.libraries.LIBRARIES`)
and the model is built by :func:`mmscope.apis.config.build_model`: from that library's
registry, on CPU, without loading the ``Pretrained`` checkpoints of ``init_cfg`` and with
SyncBN turned into BN.

Default input shapes are the row's ``flops_shape(cfg)``:

* classification: the config's test crop (256x256 for ScopeViT, 224x224 for ScalableViT);
* detection: 1280x800, given as H=1280, W=800 like mmdet's get_flops and the papers;
* segmentation: 512x512.

FLOPs are counted by mmengine's ``FlopAnalyzer`` (the counter behind
``get_model_complexity_info``; one multiply-add = one FLOP, as the papers count) on a
single image in ``tensor`` mode (with what the row's ``tensor_kwargs`` adds, e.g. mmdet's
data samples): the classifier logits, the segmentor's decode-head logits (no resize to the
input), the detector's raw head outputs (for Mask R-CNN: RPN proposals -> box and mask
heads on them). The attention of mmscope backbones runs in its ``reference`` (matmul +
softmax) form while counting so the attention-matrix products are included;
``count_attention=False`` leaves them out, which is how the mmcv counter of mmdet 2.x /
mmseg 0.x (used for the papers' tables) counted. Element-wise operations, norms and
activations are not counted. Parameters are every parameter of the model.
"""
import json
import os
import os.path as osp
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config

from .config import build_model, load_config, model_cfg_for_cpu
from .libraries import LIBRARIES, Library, library_of

__all__ = [
    'check_input_size', 'count_params', 'count_flops', 'default_shape', 'normalize_shape',
    'measure', 'collect_configs', 'measure_all', 'table', 'fmt_m', 'fmt_g'
]


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def default_shape(cfg: Config) -> Tuple[int, int]:
    """Default ``(H, W)`` of the FLOPs input of ``cfg``: its library's ``flops_shape``."""
    return tuple(library_of(cfg).flops_shape(cfg))


def normalize_shape(shape: Optional[Sequence[int]]) -> Optional[Tuple[int, int]]:
    """``--shape`` as ``(H, W)``: one side is a square; None stays None."""
    if shape is None:
        return None
    if len(shape) == 1:
        return (int(shape[0]), int(shape[0]))
    if len(shape) == 2:
        return (int(shape[0]), int(shape[1]))
    raise ValueError(f'--shape takes H or H W, got {shape}')


def _library(library_or_task: Union[Library, str]) -> Library:
    """A :class:`Library` row from itself, its scope (``'mmdet'``) or task (``'det'``)."""
    if isinstance(library_or_task, Library):
        return library_or_task
    if library_or_task in LIBRARIES:
        return LIBRARIES[library_or_task]
    for library in LIBRARIES.values():
        if library.task == library_or_task:
            return library
    raise ValueError(f'unknown library or task {library_or_task!r}: one of '
                     f'{sorted(LIBRARIES)} or {sorted(lib.task for lib in LIBRARIES.values())}')


def check_input_size(model: torch.nn.Module, shape: Tuple[int, int]) -> None:
    """ValueError, from the backbone's own input check, when an mmscope backbone refuses
    a ``(1, 3, H, W)`` input of ``shape``: the FLOPs counter traces the model, and a traced
    backbone cannot see the size, so a refused size would otherwise get a number."""
    check = getattr(getattr(model, 'backbone', None), '_check_input', None)
    if check is not None:
        check(torch.zeros(1, 3, *shape, device='meta'))


def count_flops(model: torch.nn.Module,
                library_or_task: Union[Library, str],
                shape: Tuple[int, int],
                count_attention: bool = True) -> int:
    """FLOPs (multiply-adds) of one forward pass on a ``(1, 3, H, W)`` input, counted by
    mmengine's ``FlopAnalyzer`` (what ``get_model_complexity_info`` reports as flops).

    ``library_or_task`` is the model's :class:`Library` row, its scope or its task; its
    ``tensor_kwargs`` are passed to the ``mode='tensor'`` forward. ``count_attention=False``
    runs mmscope attentions through the fused kernel, which the counter does not see: the
    attention-matrix products are then left out, as in the mmcv counter that mmdet 2.x /
    mmseg 0.x ``get_flops`` used for the papers' numbers.
    """
    from mmengine.analysis import FlopAnalyzer

    from mmscope.models.layers import attention_impl, concrete_shapes

    library = _library(library_or_task)
    h, w = shape
    inputs = torch.zeros(1, 3, h, w)
    check_input_size(model, shape)
    forward = model.forward
    try:
        model.forward = partial(forward, mode='tensor', **library.tensor_kwargs(h, w))
        # the eager computation at this size (concrete_shapes), not the size-generic graph
        with torch.no_grad(), concrete_shapes(), \
                attention_impl('reference' if count_attention else 'fused'):
            analyzer = FlopAnalyzer(model, inputs=(inputs, ))
            analyzer.unsupported_ops_warnings(False)  # element-wise ops, norms: not counted
            analyzer.uncalled_modules_warnings(False)
            flops = analyzer.total()
    finally:
        model.forward = forward
    return int(flops)


def measure(cfg: Config,
            shape: Optional[Sequence[int]] = None,
            flops: bool = True,
            model: Optional[torch.nn.Module] = None,
            count_attention: bool = True) -> Dict:
    """Params (and FLOPs) of a config: ``dict(task, shape, params, flops)``.

    ``shape`` is ``H`` or ``(H, W)`` (default: :func:`default_shape`); ``model`` an already
    built model of ``cfg`` (default: :func:`~mmscope.apis.config.build_model`);
    ``flops=False`` counts the parameters only (``flops`` is then None).
    """
    library = library_of(cfg)
    shape = normalize_shape(shape) or default_shape(cfg)
    if model is None:
        model = build_model(cfg)
    check_input_size(model, shape)
    out = dict(task=library.task, shape=shape, params=count_params(model), flops=None)
    if flops:
        out['flops'] = count_flops(model, library, shape, count_attention)
    return out


def collect_configs(config_dir: str, name_filter: Optional[str] = None) -> List[str]:
    """Every ``*.py`` under ``config_dir`` outside ``_base_`` (and hidden) folders whose
    file name contains ``name_filter`` (when given), sorted."""
    found = []
    for root, dirs, files in os.walk(config_dir):
        dirs[:] = sorted(d for d in dirs if d != '_base_' and not d.startswith('.'))
        for name in sorted(files):
            if name.endswith('.py') and (name_filter is None or name_filter in name):
                found.append(osp.join(root, name))
    return sorted(found)


def fmt_m(n: Optional[int]) -> str:
    """``n`` in millions with two decimals; ``'-'`` for None."""
    return '-' if n is None else f'{n / 1e6:.2f}'


def fmt_g(n: Optional[int]) -> str:
    """``n`` in billions with two decimals; ``'-'`` for None."""
    return '-' if n is None else f'{n / 1e9:.2f}'


def table(rows: List[Dict], config_dir: Optional[str] = None) -> str:
    """Markdown table of :func:`measure` results (``row['config']`` = path, shown relative
    to ``config_dir`` when given)."""
    lines = [
        '| Config | Task | Input (HxW) | Params (M) | FLOPs (G) |',
        '| --- | --- | --- | ---: | ---: |'
    ]
    for r in rows:
        name = osp.relpath(r['config'], config_dir) if config_dir else r['config']
        h, w = r['shape']
        lines.append(f"| {name} | {r['task']} | {h}x{w} | {fmt_m(r['params'])} | "
                     f"{fmt_g(r['flops'])} |")
    return '\n'.join(lines)


def measure_all(config_dir: str,
                flops: bool = True,
                name_filter: Optional[str] = None,
                shape: Optional[Sequence[int]] = None,
                count_attention: bool = True,
                log: Callable[[str], None] = print) -> List[Dict]:
    """:func:`measure` every config of :func:`collect_configs`; one row per config
    (:func:`measure`'s dict plus ``config``, its path), in path order.

    Configs whose CPU model config and input shape are identical (e.g. a 1x and a 3x
    detector) are measured once. ``log`` gets one progress line per config.
    """
    rows, cache = [], {}
    for path in collect_configs(config_dir, name_filter):
        cfg = load_config(path)
        task = library_of(cfg).task
        shp = normalize_shape(shape) or default_shape(cfg)
        key = json.dumps([model_cfg_for_cpu(cfg), shp], sort_keys=True, default=str)
        start = time.time()
        if key not in cache:
            cache[key] = measure(cfg, shp, flops=flops, count_attention=count_attention)
        row = dict(cache[key], config=path)
        rows.append(row)
        log(f'{osp.relpath(path, config_dir)}: {task} {shp[0]}x{shp[1]} '
            f'params {fmt_m(row["params"])}M FLOPs {fmt_g(row["flops"])}G '
            f'({time.time() - start:.1f}s)')
    return rows
