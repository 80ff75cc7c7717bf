"""Parameters and FLOPs of any mmscope config: classifier, detector or segmentor.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]] [--params-only]
        [--exclude-attention] [--cfg-options k=v ...]
    python tools/analysis_tools/get_flops.py --all [--config-dir configs] [--out FILE]
        [--params-only] [--exclude-attention] [--filter SUBSTRING] [--shape H [W]]

The library that runs the config is read from its ``default_scope`` (mmpretrain, mmdet or
mmseg) and the model is built from that library's registry on CPU, without loading the
``Pretrained`` checkpoint of ``init_cfg`` and with SyncBN turned into BN.

Default input shapes (``--shape`` overrides them, ``H W`` or one side for a square):
  * classification: the config's test crop (256x256 for ScopeViT, 224x224 for ScalableViT);
  * detection: 1280x800, given as H=1280, W=800 like mmdet's get_flops and the papers;
  * segmentation: 512x512.

FLOPs are counted by mmengine's ``FlopAnalyzer`` (the counter behind
``get_model_complexity_info``; one multiply-add = one FLOP, as the papers count) on a
single image in ``tensor`` mode: the classifier logits, the segmentor's decode-head
logits (no resize to the input), the detector's raw head outputs (for Mask R-CNN: RPN
proposals -> box and mask heads on them). The attention of
mmscope backbones runs in its ``reference`` (matmul + softmax) form while counting so the
attention-matrix products are included; ``--exclude-attention`` leaves them out, which is
how the mmcv counter of mmdet 2.x / mmseg 0.x (used for the papers' tables) counted.
Element-wise operations, norms and activations are not counted. Parameters are every
parameter of the model.

``--all`` prints one markdown table row per config found under ``--config-dir`` (files in
``_base_`` folders are skipped); configs whose model and input are identical (e.g. a 1x
and a 3x detector) are measured once.
"""
import argparse
import copy
import functools
import json
import os
import os.path as osp
import sys
import time
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

TASKS = {'mmpretrain': 'cls', 'mmdet': 'det', 'mmseg': 'seg'}
DEFAULT_SHAPES = {'det': (1280, 800), 'seg': (512, 512)}


# ---------------------------------------------------------------------------------------
# config handling
# ---------------------------------------------------------------------------------------
def _cache_external_config_lookup():
    """Resolving a ``'mmdet::...'`` base makes mmengine read every metafile of the
    package (~200 YAML files) each time; they are installed files that do not change,
    so read each one once. Makes ``--all`` (and the tests) several times faster."""
    from mmengine.config import utils as cfg_utils
    if getattr(cfg_utils, '_mmscope_cached_load', False) or not hasattr(cfg_utils, 'load'):
        return
    original = cfg_utils.load
    read_once = functools.lru_cache(maxsize=None)(original)

    def load(file, *args, **kwargs):
        if isinstance(file, str) and not args and not kwargs:
            return read_once(file)
        return original(file, *args, **kwargs)

    cfg_utils.load = load
    cfg_utils._mmscope_cached_load = True


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file and apply ``--cfg-options``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    _cache_external_config_lookup()
    cfg = Config.fromfile(path, format_python_code=False)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    library_of(cfg)
    return cfg


def library_of(cfg: Config) -> str:
    """``'mmpretrain'``, ``'mmdet'`` or ``'mmseg'``: the config's ``default_scope``."""
    scope = cfg.get('default_scope', None)
    if scope not in TASKS:
        raise ValueError(f'{cfg.filename}: default_scope must be one of {sorted(TASKS)}, '
                         f'got {scope!r}')
    return scope


def task_of(cfg: Config) -> str:
    """``'cls'``, ``'det'`` or ``'seg'``."""
    return TASKS[library_of(cfg)]


def _strip_pretrained(node):
    """Remove every ``init_cfg`` that loads a checkpoint (Pretrained), in place."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg', None)
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(init_cfg, (list, tuple)):
            kept = [c for c in init_cfg
                    if not (isinstance(c, dict) and c.get('type') == 'Pretrained')]
            node['init_cfg'] = kept or None
        if isinstance(node.get('pretrained', None), str):
            node['pretrained'] = None
        for value in node.values():
            _strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _strip_pretrained(value)


def _sync_bn_to_bn(node):
    """Turn every ``dict(type='SyncBN', ...)`` into ``dict(type='BN', ...)``, in place."""
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value)


def model_cfg_for_cpu(cfg: Config, drop_pretrained: bool = True) -> dict:
    """A copy of ``cfg.model`` that builds offline on one CPU: no checkpoint loading
    (``drop_pretrained``) and BN instead of SyncBN."""
    model_cfg = copy.deepcopy(cfg.model)  # a ConfigDict: mmdet reads it by attribute
    # the Runner hands a top-level ``data_preprocessor`` (mmpretrain configs) to the model
    if cfg.get('data_preprocessor', None) is not None and \
            model_cfg.get('data_preprocessor', None) is None:
        model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    if drop_pretrained:
        _strip_pretrained(model_cfg)
    _sync_bn_to_bn(model_cfg)
    return model_cfg


def registry_of(library: str):
    """The ``MODELS`` registry of a downstream library."""
    if library == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif library == 'mmdet':
        from mmdet.registry import MODELS
    elif library == 'mmseg':
        from mmseg.registry import MODELS
    else:
        raise ValueError(f'unknown library {library!r}')
    return MODELS


def build_model(cfg: Config, drop_pretrained: bool = True, init_weights: bool = False):
    """Build ``cfg.model`` in its own library (default scope set, custom imports done),
    on CPU, in eval mode."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    library = library_of(cfg)
    if cfg.get('custom_imports', None):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(library)
    model = registry_of(library).build(model_cfg_for_cpu(cfg, drop_pretrained))
    if init_weights:
        model.init_weights()
    model = revert_sync_batchnorm(model)
    return model.eval()


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------
# input shapes and FLOPs
# ---------------------------------------------------------------------------------------
def _classification_test_size(cfg: Config) -> Tuple[int, int]:
    """Crop size of the test (or val) pipeline, else the train crop."""
    for loader in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        pipeline = (cfg.get(loader) or {}).get('dataset', {}).get('pipeline', [])
        for step in pipeline:
            for key in ('crop_size', 'scale'):
                if step.get('type') in ('CenterCrop', 'RandomResizedCrop') and key in step:
                    size = step[key]
                    if isinstance(size, int):
                        return (size, size)
                    return (int(size[1]), int(size[0]))  # (w, h) -> (h, w)
    return (224, 224)


def default_shape(cfg: Config) -> Tuple[int, int]:
    """Default ``(H, W)`` of the FLOPs input for this config (see the module doc)."""
    task = task_of(cfg)
    if task == 'cls':
        return _classification_test_size(cfg)
    return DEFAULT_SHAPES[task]


def _normalize_shape(shape: Optional[Sequence[int]]) -> Optional[Tuple[int, int]]:
    if shape is None:
        return None
    if len(shape) == 1:
        return (int(shape[0]), int(shape[0]))
    if len(shape) == 2:
        return (int(shape[0]), int(shape[1]))
    raise ValueError(f'--shape takes H or H W, got {shape}')


def count_flops(model: torch.nn.Module, task: str, shape: Tuple[int, int],
                count_attention: bool = True) -> int:
    """FLOPs (multiply-adds) of one forward pass on a ``(1, 3, H, W)`` input, counted by
    mmengine's ``FlopAnalyzer`` (what ``get_model_complexity_info`` reports as flops).

    ``count_attention=False`` runs mmscope attentions through the fused kernel, which the
    counter does not see: the attention-matrix products are then left out, as in the
    mmcv counter that mmdet 2.x / mmseg 0.x ``get_flops`` used for the papers' numbers.
    """
    from mmengine.analysis import FlopAnalyzer

    from mmscope.models.layers import attention_impl

    h, w = shape
    inputs = torch.zeros(1, 3, h, w)
    forward = model.forward
    try:
        if task == 'det':
            from mmdet.structures import DetDataSample
            meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                        batch_input_shape=(h, w), scale_factor=(1., 1.))
            model.forward = partial(forward, data_samples=[DetDataSample(metainfo=meta)],
                                    mode='tensor')
        else:
            model.forward = partial(forward, mode='tensor')
        with torch.no_grad(), attention_impl('reference' if count_attention else 'fused'):
            analyzer = FlopAnalyzer(model, inputs=(inputs, ))
            analyzer.unsupported_ops_warnings(False)  # element-wise ops, norms: not counted
            analyzer.uncalled_modules_warnings(False)
            flops = analyzer.total()
    finally:
        model.forward = forward
    return int(flops)


def measure(cfg: Config, shape: Optional[Sequence[int]] = None, flops: bool = True,
            model: Optional[torch.nn.Module] = None, count_attention: bool = True) -> Dict:
    """Params (and FLOPs) of a config: ``dict(task, shape, params, flops)``."""
    task = task_of(cfg)
    shape = _normalize_shape(shape) or default_shape(cfg)
    if model is None:
        model = build_model(cfg)
    out = dict(task=task, shape=shape, params=count_params(model), flops=None)
    if flops:
        out['flops'] = count_flops(model, task, shape, count_attention)
    return out


# ---------------------------------------------------------------------------------------
# table of all configs
# ---------------------------------------------------------------------------------------
def collect_configs(config_dir: str, name_filter: Optional[str] = None) -> List[str]:
    """Every ``*.py`` under ``config_dir`` outside ``_base_`` folders, sorted."""
    found = []
    for root, dirs, files in os.walk(config_dir):
        dirs[:] = sorted(d for d in dirs if d != '_base_' and not d.startswith('.'))
        for name in sorted(files):
            if name.endswith('.py') and (name_filter is None or name_filter in name):
                found.append(osp.join(root, name))
    return sorted(found)


def fmt_m(n: Optional[int]) -> str:
    return '-' if n is None else f'{n / 1e6:.2f}'


def fmt_g(n: Optional[int]) -> str:
    return '-' if n is None else f'{n / 1e9:.2f}'


def table(rows: List[Dict], config_dir: str = None) -> str:
    """Markdown table of :func:`measure` results (``row['config']`` = path)."""
    lines = ['| Config | Task | Input (HxW) | Params (M) | FLOPs (G) |',
             '| --- | --- | --- | ---: | ---: |']
    for r in rows:
        name = osp.relpath(r['config'], config_dir) if config_dir else r['config']
        h, w = r['shape']
        lines.append(f"| {name} | {r['task']} | {h}x{w} | {fmt_m(r['params'])} | "
                     f"{fmt_g(r['flops'])} |")
    return '\n'.join(lines)


def measure_all(config_dir: str, flops: bool = True, name_filter: Optional[str] = None,
                shape: Optional[Sequence[int]] = None, count_attention: bool = True,
                log=print) -> List[Dict]:
    rows, cache = [], {}
    for path in collect_configs(config_dir, name_filter):
        cfg = load_config(path)
        task = task_of(cfg)
        shp = _normalize_shape(shape) or default_shape(cfg)
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


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Params and FLOPs of an mmscope config (or of all of them)')
    parser.add_argument('config', nargs='?', help='config file')
    parser.add_argument('--all', action='store_true',
                        help='measure every config under --config-dir, print a markdown table')
    parser.add_argument('--config-dir', default=osp.join(ROOT, 'configs'),
                        help='where --all looks for configs (default: configs/)')
    parser.add_argument('--filter', default=None,
                        help='with --all: only configs whose file name contains this')
    parser.add_argument('--out', default=None, help='with --all: also write the table here')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H [W]; default: cls test size, det 1280 800, seg 512 512')
    parser.add_argument('--params-only', action='store_true',
                        help='count parameters only (fast, no forward pass)')
    parser.add_argument('--exclude-attention', action='store_true',
                        help='leave the attention-matrix products out of the FLOPs, as '
                        'the mmcv counter behind the papers\' numbers did')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if bool(args.config) == bool(args.all):
        parser.error('give either a CONFIG or --all')
    return args


def main(argv=None):
    args = parse_args(argv)
    import mmscope  # noqa: F401  (registers mmscope and its checkpoint handling)
    if args.all:
        rows = measure_all(args.config_dir, flops=not args.params_only,
                           name_filter=args.filter, shape=args.shape,
                           count_attention=not args.exclude_attention,
                           log=lambda s: print(s, file=sys.stderr))
        text = table(rows, args.config_dir)
        print(text)
        if args.out:
            os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
            with open(args.out, 'w') as f:
                f.write(text + '\n')
        return rows
    cfg = load_config(args.config, args.cfg_options)
    res = measure(cfg, args.shape, flops=not args.params_only,
                  count_attention=not args.exclude_attention)
    h, w = res['shape']
    line = '=' * 40
    print(f'{line}\nConfig: {args.config}\nTask: {res["task"]} ({library_of(cfg)})\n'
          f'Input shape: 1x3x{h}x{w}\nFLOPs: {fmt_g(res["flops"])} G\n'
          f'Params: {fmt_m(res["params"])} M\n{line}')
    return res


if __name__ == '__main__':
    main()
