"""Where mmscope's configs are, and ``mmscope::`` config bases.

The configs (and the tools users run) ship inside the package, following the OpenMMLab
``.mim`` convention. At packaging time ``setup.py`` copies the top-level ``configs/``,
``tools/`` and ``model-index.yml`` into ``mmscope/.mim/``; an editable install links them
there instead. :func:`config_root` finds them through the installed package. A bare source
checkout on ``PYTHONPATH``, which has no ``.mim`` folder, falls back to its own
``configs/``.

``mmscope::`` bases. Users inherit another package's recipes as ``_base_ =
['mmdet::...']``. mmengine 0.10.7 resolves such ``pkg::`` names only for the packages in
its own table (``MODULE2PACKAGE``), so ``mmscope::scopevit/...`` fails with
``mmengine does not support to load mmscope config``. :func:`register_config_bases`
teaches mmengine's config loader the ``mmscope::`` prefix: ``mmscope::scopevit/x.py`` is
``<config_root>/scopevit/x.py``. Unlike ``mmdet::`` bases, an ``mmscope::`` base adds no
``_scope_`` to the dicts it brings. Each mmscope config already names the library that
runs it (its ``default_scope``), and the dicts it took from that library's own bases keep
that library's scope.

``import mmscope`` calls :func:`register_config_bases` unless ``MMSCOPE_PATCH_MMENGINE=0``.
mmengine reads ``_base_`` before ``custom_imports`` run. So a script that loads a user
config inheriting ``mmscope::`` bases must ``import mmscope`` before ``Config.fromfile``,
as our tools do; otherwise it must give the base as a file path.
"""
import os
import os.path as osp
from typing import List

PREFIX = 'mmscope::'
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))

__all__ = [
    'PREFIX', 'config_root', 'get_config_path', 'list_configs', 'register_config_bases',
    'unregister_config_bases', 'config_bases_registered'
]


def config_root() -> str:
    """The folder of mmscope's configs: ``mmscope/.mim/configs`` of the installed package
    (a source checkout without it: the checkout's ``configs/``)."""
    shipped = osp.join(_PACKAGE_DIR, '.mim', 'configs')
    if osp.isdir(shipped):
        return shipped
    checkout = osp.dirname(_PACKAGE_DIR)
    if osp.isdir(osp.join(checkout, 'configs')) and osp.isfile(osp.join(checkout, 'setup.py')):
        return osp.join(checkout, 'configs')
    raise FileNotFoundError(
        f'mmscope is installed without its configs ({shipped} does not exist): reinstall '
        'it from a clone with `pip install .` (or `pip install -e .`), which ships them')


def get_config_path(name: str) -> str:
    """The installed config ``name`` (``'scopevit/mask-rcnn_scopevit-t_fpn_1x_coco.py'``,
    with or without the ``mmscope::`` prefix); FileNotFoundError naming what exists."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    root = config_root()
    path = osp.normpath(osp.join(root, name))
    if not path.startswith(root + osp.sep) or not osp.isfile(path):
        folder = osp.dirname(path)
        known = sorted(
            f for f in (list_configs(osp.relpath(folder, root)
                                     ) if osp.isdir(folder) and folder.startswith(root) else []))
        hint = (f'; {osp.relpath(folder, root)}/ holds {known[:8]}' +
                (' ...' if len(known) > 8 else '')) if known else (
                    f'; the config folders are {sorted(list_configs())}')
        raise FileNotFoundError(f'no mmscope config {name!r} under {root}{hint}')
    return path


def list_configs(folder: str = '') -> List[str]:
    """Names in ``folder`` of the config root (every entry when ``folder`` is empty)."""
    path = osp.join(config_root(), folder)
    return sorted(e for e in os.listdir(path) if not e.startswith('.'))


_ORIGINAL = {}


def register_config_bases() -> None:
    """Let ``Config.fromfile`` resolve ``_base_`` entries ``mmscope::<folder>/<file>.py``
    to the installed configs (see the module doc). Idempotent;
    :func:`unregister_config_bases` undoes it."""
    from mmengine.config import Config
    if 'get_cfg_path' in _ORIGINAL:
        return
    original = Config._get_cfg_path
    _ORIGINAL['get_cfg_path'] = original

    def _get_cfg_path(cfg_path: str, filename: str):
        if isinstance(cfg_path, str) and cfg_path.startswith(PREFIX):
            return get_config_path(cfg_path), None
        return original(cfg_path, filename)

    _get_cfg_path.__doc__ = original.__doc__
    Config._get_cfg_path = staticmethod(_get_cfg_path)


def unregister_config_bases() -> None:
    """Give mmengine its own base resolution back (no-op if not registered)."""
    from mmengine.config import Config
    original = _ORIGINAL.pop('get_cfg_path', None)
    if original is not None:
        Config._get_cfg_path = staticmethod(original)


def config_bases_registered() -> bool:
    """Whether ``mmscope::`` bases resolve now."""
    return 'get_cfg_path' in _ORIGINAL
