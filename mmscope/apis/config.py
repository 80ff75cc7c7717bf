"""Config helpers shared by every tool: reading a config, and building its model offline.

* :func:`load_config`: read a config, apply ``--cfg-options``, check its library;
* :func:`model_cfg_for_cpu` / :func:`build_model`: the model of a config on one CPU,
  without downloading or loading its ``Pretrained`` checkpoints and with SyncBN as BN
  (what the FLOPs tool, the benchmark and the tests need);
* :func:`strip_pretrained` and :func:`sync_bn_to_bn`, the two rewrites behind it.
"""
import copy
import functools
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .libraries import Library, library_of

__all__ = [
    'load_config', 'strip_pretrained', 'sync_bn_to_bn', 'model_cfg_for_cpu', 'build_model',
    'cache_external_config_lookup'
]


def cache_external_config_lookup() -> None:
    """Resolving a ``'mmdet::...'`` base makes mmengine read every metafile of that
    package (~200 YAML files) each time; they are installed files that do not change
    while a process runs, so each is read once. Several times faster for tools and
    tests that read many configs."""
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
    """Read a config, apply ``--cfg-options``, check that mmscope serves its library and
    that the library is installed (else an error naming the install step)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cache_external_config_lookup()
    cfg = Config.fromfile(path, format_python_code=False)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    library_of(cfg).require()
    return cfg


def strip_pretrained(node) -> None:
    """Remove, in place and recursively, every ``init_cfg`` that loads a checkpoint
    (``Pretrained``) and every ``pretrained=path``."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg', None)
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(init_cfg, (list, tuple)):
            kept = [
                c for c in init_cfg if not (isinstance(c, dict) and c.get('type') == 'Pretrained')
            ]
            node['init_cfg'] = kept or None
        if isinstance(node.get('pretrained', None), str):
            node['pretrained'] = None
        for value in node.values():
            strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            strip_pretrained(value)


def sync_bn_to_bn(node) -> None:
    """Turn every ``dict(type='SyncBN' | 'MMSyncBN', ...)`` into BN, in place."""
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            sync_bn_to_bn(value)


def model_cfg_for_cpu(cfg: Config, drop_pretrained: bool = True) -> dict:
    """A copy of ``cfg.model`` that builds offline on one CPU: no checkpoint loading
    (``drop_pretrained``) and BN instead of SyncBN. A top-level ``data_preprocessor``
    (mmpretrain configs) is handed to the model, as the Runner does."""
    model_cfg = copy.deepcopy(cfg.model)  # a ConfigDict: mmdet reads it by attribute
    if cfg.get('data_preprocessor', None) is not None and \
            model_cfg.get('data_preprocessor', None) is None:
        model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    if drop_pretrained:
        strip_pretrained(model_cfg)
    sync_bn_to_bn(model_cfg)
    return model_cfg


def build_model(cfg: Config, drop_pretrained: bool = True, init_weights: bool = False):
    """``cfg.model`` built by its own library (default scope set, custom imports done),
    on CPU, in eval mode, SyncBN reverted to BN."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    library: Library = library_of(cfg)
    if cfg.get('custom_imports', None):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(library.scope)
    model = library.models().build(model_cfg_for_cpu(cfg, drop_pretrained))
    if init_weights:
        model.init_weights()
    model = revert_sync_batchnorm(model)
    return model.eval()
