"""mmscope's model names where users type them: ``mmpretrain.get_model`` /
``list_models`` / ``ImageClassificationInferencer``, and the ``model=`` (mmpose:
``pose2d=``) of mmdet's ``DetInferencer``, mmseg's ``MMSegInferencer`` and mmpose's
``MMPoseInferencer``.

The libraries look names up only in their own metafiles. The names and configs of ours
are in ``model-index.yml`` and ``configs/<family>/metafile.yml``, shipped in the package
(``mmscope/.mim/``; a source checkout: its own files). :func:`register_model_names`, run
by ``import mmscope`` (unless ``MMSCOPE_PATCH_MMENGINE=0``), makes two registrations:

* mmpretrain: our classification models (the families' ``cls_configs``) are added to its
  ``ModelHub``, the table ``get_model`` and ``list_models`` read. mmpretrain is not
  imported for this: the models are added right after ``mmpretrain.apis.model`` is first
  imported (at once if it already is);
* mmengine's ``BaseInferencer.__init__`` (behind the mmdet, mmseg and mmpose
  inferencers) gets a name of ours replaced by the path of its config before the library
  reads it; every other argument, and every name that is not ours, is left to the
  library. A model with an mmscope backbone built there is then checked against its
  ``weights``: a checkpoint that leaves any of its tensors unloaded is refused
  (:func:`mmscope.apis.runner.check_checkpoint_fits`) instead of predicting; mmpretrain's
  own ``BaseInferencer.__init__`` gets the same check of its ``pretrained=PATH``, and its
  ``ModelHub.get`` names the library of a name of ours that another library runs.

No weights are published yet (the metafiles say ``Weights: null``): a name gives its
config, and the checkpoint is a local file the user passes (``pretrained=`` for
mmpretrain, ``weights=`` / ``pose2d_weights=`` for the inferencers). Asked for the
published weights (mmpretrain's ``pretrained=True``, an inferencer without weights), a
name of ours raises :class:`NoPublishedWeightsError` instead of running a model with
random weights. A name given to the inferencer of another library says which one to use.
:func:`unregister_model_names` undoes both registrations.
"""
import functools
import importlib.abc
import inspect
import os.path as osp
import sys
import warnings
from typing import Callable, Dict, List, Optional

from .configs import config_root

__all__ = [
    'NoPublishedWeightsError', 'model_index_path', 'model_names', 'model_config', 'model_scope',
    'config_for_inferencer', 'register_model_names', 'unregister_model_names',
    'model_names_registered'
]


class NoPublishedWeightsError(ValueError):
    """A model name of mmscope was asked for published weights, which do not exist yet."""


def model_index_path() -> str:
    """``model-index.yml`` beside the installed configs (``mmscope/.mim/``)."""
    return osp.join(osp.dirname(config_root()), 'model-index.yml')


@functools.lru_cache(maxsize=None)
def _models(index: str) -> Dict[str, dict]:
    """``{lower-case name: dict(name, config, weights)}`` of every model of ``index``."""
    import yaml
    root = osp.dirname(index)
    with open(index) as f:
        imports = (yaml.safe_load(f) or {}).get('Import', [])
    models = {}
    for rel in imports:
        with open(osp.join(root, rel)) as f:
            for m in (yaml.safe_load(f) or {}).get('Models', None) or []:
                models[m['Name'].lower()] = dict(
                    name=m['Name'],
                    config=osp.normpath(osp.join(root, m['Config'])),
                    weights=m.get('Weights'))
    return models


def _our_models() -> Dict[str, dict]:
    """The models of the installed index; none (with a warning) when the package was
    installed without its configs, so that the libraries' own names keep working."""
    try:
        return _models(model_index_path())
    except OSError as e:
        warnings.warn(f'mmscope\'s model names are not available: {e}')
        return {}


def model_names() -> List[str]:
    """Every model name of mmscope's metafiles, sorted."""
    return sorted(m['name'] for m in _our_models().values())


def model_config(name: str) -> Optional[str]:
    """The config file of the model ``name`` (any case), or None if it is not ours."""
    entry = _our_models().get(str(name).lower())
    return None if entry is None else entry['config']


def model_scope(name: str) -> str:
    """The library (``default_scope``) that runs the model ``name``."""
    from mmengine.config import Config
    return Config.fromfile(model_config(name)).get('default_scope')


def _no_weights(name: str, argument: str) -> NoPublishedWeightsError:
    return NoPublishedWeightsError(
        f'mmscope publishes no weights for {name} yet (its metafile has Weights: null): '
        f'pass a local checkpoint with {argument}=PATH (one tools/train.py wrote, or the '
        'released weights converted with tools/model_converters/official_to_mmscope.py; '
        'see the README of its configs)')


def config_for_inferencer(name: str, scope: Optional[str], weights) -> Optional[str]:
    """The config of our model ``name`` for an inferencer of ``scope`` given ``weights``;
    None when ``name`` is not ours. ValueError when it belongs to another library,
    :class:`NoPublishedWeightsError` when ``weights`` is None.

    Args:
        name: what the user passed as the model.
        scope: the inferencer's library (``'mmdet'``, ``'mmseg'``, ``'mmpose'``...).
        weights: the checkpoint the user passed, or None.
    """
    from mmscope.apis.libraries import LIBRARIES
    config = model_config(name)
    if config is None:
        return None
    entry = _our_models()[name.lower()]
    own = model_scope(name)
    if scope is not None and own != scope:
        lib = LIBRARIES.get(own)
        use = f"{lib.inferencer.rsplit('.', 1)[-1]} ({own})" if lib else own
        raise ValueError(f'{entry["name"]} is a {lib.title if lib else own} model of '
                         f'mmscope, run by {own}, not by {scope}: use {use}')
    if weights is None and entry['weights'] is None:
        lib = LIBRARIES.get(own)
        raise _no_weights(entry['name'], lib.weights_arg if lib else 'weights')
    return config


# ------------------------------------------------------------------ mmengine inferencers
_ORIGINAL = {}


def _patch_base_inferencer() -> None:
    """``BaseInferencer.__init__`` with our names turned into config paths."""
    from mmengine.infer import BaseInferencer
    from mmengine.registry import DefaultScope
    if 'inferencer_init' in _ORIGINAL:
        return
    original = BaseInferencer.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        model = bound.arguments.get('model')
        if isinstance(model, str) and not osp.isfile(model):
            scope = bound.arguments.get('scope')
            if scope is None and DefaultScope.get_current_instance() is not None:
                scope = DefaultScope.get_current_instance().scope_name
            config = config_for_inferencer(model, scope, bound.arguments.get('weights'))
            if config is not None:
                bound.arguments['model'] = config
        original(*bound.args, **bound.kwargs)
        _check_inferencer_weights(self, bound.arguments.get('weights'))

    _ORIGINAL['inferencer_init'] = original
    BaseInferencer.__init__ = __init__


def _check_inferencer_weights(inferencer, weights) -> None:
    """An inferencer of a model with an mmscope backbone predicts nothing with weights
    it did not load: ``weights`` must cover every tensor of its model
    (:func:`mmscope.apis.runner.check_checkpoint_fits`)."""
    from mmscope.models.backbones.base import MMScopeBackbone
    model = getattr(inferencer, 'model', None)
    if not isinstance(weights, str) or not isinstance(
            getattr(model, 'backbone', None), MMScopeBackbone):
        return
    from mmscope.apis.runner import check_checkpoint_fits
    check_checkpoint_fits(model, weights)


def _patch_mmpretrain_inferencer(module) -> None:
    """mmpretrain's ``BaseInferencer.__init__`` (its own, not mmengine's; ``module`` is
    ``mmpretrain.apis.base``) checks a ``pretrained=PATH`` against a model with an mmscope
    backbone, as the other libraries' inferencers do (a 4-class checkpoint in a
    1000-class model ended in an IndexError)."""
    if 'pretrain_init' in _ORIGINAL:
        return
    cls = module.BaseInferencer
    original = cls.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        pretrained = signature.bind(self, *args, **kwargs).arguments.get('pretrained', True)
        _check_inferencer_weights(self, pretrained)

    _ORIGINAL['pretrain_init'] = (cls, original)
    cls.__init__ = __init__


# ------------------------------------------------------------------- mmpretrain ModelHub
def _model_without_weights(model_cls: type) -> type:
    """A modelindex ``Model`` whose ``weights``, when none are published, is
    :class:`NoPublishedWeightsError` (mmpretrain reads it only for ``pretrained=True``)."""

    class MMScopeModel(model_cls):

        @property
        def weights(self):
            value = self.data.get('Weights', None)
            if value is None:
                raise _no_weights(self.name, 'pretrained')
            return value

        @weights.setter
        def weights(self, value):
            self.data['Weights'] = value

    return MMScopeModel


def _register_in_model_hub(module) -> None:
    """Our classification models into mmpretrain's ``ModelHub`` (``module`` is
    ``mmpretrain.apis.model``); a failure is a warning, never a failed import of
    mmpretrain."""
    try:
        _add_classifiers(module.ModelHub)
    except Exception as e:  # noqa: BLE001 (mmpretrain must import whatever happens here)
        warnings.warn(f'mmscope could not add its model names to mmpretrain: '
                      f'{type(e).__name__}: {e}')


def _add_classifiers(hub) -> None:
    from modelindex.load_model_index import load

    from mmscope.models.family import families
    root = config_root()
    classifiers = {
        osp.normpath(osp.join(root, c))
        for f in families()
        for c in f.cls_configs.values()
    }
    index = load(model_index_path())
    index.build_models_with_collections()
    added = _ORIGINAL.setdefault('model_hub', [])
    for metainfo in index.models:
        name = metainfo.name.lower()
        config = model_config(name)
        if config not in classifiers or name in hub._models_dict:
            continue
        metainfo.__class__ = _model_without_weights(type(metainfo))
        metainfo.config = config
        hub._models_dict[name] = metainfo
        added.append(name)
    _patch_hub_get(hub)


def _patch_hub_get(hub) -> None:
    """``ModelHub.get`` (behind ``get_model`` and the inferencers) given a name of ours
    that another library runs (a detector's) says which library, as mmdet's and mmseg's
    inferencers do, instead of only 'Failed to find model'."""
    if 'hub_get' in _ORIGINAL:
        return
    original = hub.__dict__['get']  # the classmethod object

    def get(cls, model_name):
        try:
            return original.__func__(cls, model_name)
        except ValueError:
            if isinstance(model_name, str):
                config_for_inferencer(model_name, 'mmpretrain', True)  # ours: which library
            raise

    _ORIGINAL['hub_get'] = (hub, original)
    hub.get = classmethod(get)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a callback on a module right after its first import (so that registering
    into a library does not import the library)."""

    def __init__(self, name: str, callback: Callable):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        _remove_finder(self)
        spec.loader = _CallbackLoader(spec.loader, self.callback)
        return spec


class _CallbackLoader(importlib.abc.Loader):
    """The module's own loader, then the callback."""

    def __init__(self, loader, callback: Callable):
        self._loader, self._callback = loader, callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._callback(module)

    def __getattr__(self, name):  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


def _remove_finder(finder) -> None:
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)


def _after_import(name: str, callback: Callable) -> None:
    """``callback(module)`` now if ``name`` is imported, else right after its import."""
    if name in sys.modules:
        callback(sys.modules[name])
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, callback))


# ---------------------------------------------------------------------------- switch
def register_model_names() -> None:
    """Make mmscope's model names resolve in mmpretrain's ``get_model`` /
    ``list_models`` / ``ImageClassificationInferencer`` and in the mmdet, mmseg and
    mmpose inferencers (see the module doc). Idempotent; :func:`unregister_model_names`
    undoes it."""
    _patch_base_inferencer()
    if 'model_hub' not in _ORIGINAL:
        _after_import('mmpretrain.apis.model', _register_in_model_hub)
    if 'pretrain_init' not in _ORIGINAL:
        _after_import('mmpretrain.apis.base', _patch_mmpretrain_inferencer)


def unregister_model_names() -> None:
    """Take our names out of mmpretrain's ``ModelHub`` and give mmengine's inferencers
    their own ``__init__`` back (no-op where nothing was registered)."""
    for finder in [f for f in sys.meta_path if isinstance(f, _AfterImport)]:
        _remove_finder(finder)
    hub_module = sys.modules.get('mmpretrain.apis.model')
    for name in _ORIGINAL.pop('model_hub', []):
        if hub_module is not None:
            hub_module.ModelHub._models_dict.pop(name, None)
    pretrain_init = _ORIGINAL.pop('pretrain_init', None)
    if pretrain_init is not None:
        pretrain_init[0].__init__ = pretrain_init[1]
    hub_get = _ORIGINAL.pop('hub_get', None)
    if hub_get is not None:
        hub_get[0].get = hub_get[1]
    original = _ORIGINAL.pop('inferencer_init', None)
    if original is not None:
        from mmengine.infer import BaseInferencer
        BaseInferencer.__init__ = original


def model_names_registered() -> bool:
    """Whether the inferencers resolve our names now."""
    return 'inferencer_init' in _ORIGINAL
