"""The one table of the downstream OpenMMLab libraries mmscope serves.

A config belongs to the library named by its ``default_scope``. Everything that differs
between libraries is a field of that library's :class:`Library` row: the tools
(``tools/train.py``, ``tools/test.py``, ``get_flops.py``, the benchmark, the demo) read the
row and hold no per-library branches. Serving one more library is one more row (and its
configs).
"""
import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Tuple

__all__ = ['Library', 'LIBRARIES', 'get_library', 'library_of']


def _test_crop(cfg) -> Tuple[int, int]:
    """``(H, W)`` of the test (or val, or train) crop of a classification config."""
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


def _fixed(shape: Tuple[int, int]) -> Callable:
    return lambda cfg: shape


def _det_tensor_kwargs(h: int, w: int) -> dict:
    from mmdet.structures import DetDataSample
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1., 1.))
    return dict(data_samples=[DetDataSample(metainfo=meta)])


def _no_kwargs(h: int, w: int) -> dict:
    return {}


def _mmdet_before_train() -> None:
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()


@dataclass(frozen=True)
class Library:
    """One downstream library (a ``default_scope``) and how mmscope serves it.

    Args:
        scope: the ``default_scope`` (and package) name, e.g. ``'mmdet'``.
        task: short task name, e.g. ``'det'``.
        title: what it does, for messages (``'detection'``).
        model_kind: what its configs' ``model`` is (``'detector'``).
        registry: the module holding its ``MODELS`` registry.
        tta_model: ``tools/test.py --tta`` wrapper when the config defines none (a flip
            test-time augmentation is added to the test pipeline).
        visualizer_style: how its ``VisualizationHook`` is switched on: ``'enable'``
            (``enable/show/wait_time/out_dir``) or ``'draw'`` (``draw=True``, the
            visualizer's ``save_dir``).
        flops_shape: ``cfg -> (H, W)``, the default FLOPs input of a config.
        tensor_kwargs: ``(H, W) -> dict``, what a ``mode='tensor'`` forward needs
            besides the input (mmdet's data samples).
        dump: ``tools/test.py --out``: ``('pkl', 'module.Class')`` (a dump metric) or
            ``('dir', None)`` (the evaluator writes label maps into a folder).
        inferencer: ``'module.Class'`` of its high-level inferencer.
        before_train: called once before a training run is built (or None).
    """
    scope: str
    task: str
    title: str
    model_kind: str
    registry: str
    tta_model: Mapping
    visualizer_style: str
    flops_shape: Callable
    tensor_kwargs: Callable = _no_kwargs
    dump: Tuple[str, Optional[str]] = ('pkl', 'mmengine.evaluator.DumpResults')
    inferencer: str = ''
    before_train: Optional[Callable] = None
    extra: Mapping = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Human name for messages: ``'mmdet (detection)'``."""
        return f'{self.scope} ({self.title})'

    def models(self):
        """The library's ``MODELS`` registry (imports the library)."""
        return importlib.import_module(self.registry).MODELS

    def import_object(self, dotted: str):
        module, _, name = dotted.rpartition('.')
        return getattr(importlib.import_module(module), name)


LIBRARIES: Dict[str, Library] = {lib.scope: lib for lib in (
    Library(scope='mmpretrain', task='cls', title='classification', model_kind='classifier',
            registry='mmpretrain.registry',
            tta_model=dict(type='mmpretrain.AverageClsScoreTTA'),
            visualizer_style='enable', flops_shape=_test_crop,
            inferencer='mmpretrain.apis.ImageClassificationInferencer'),
    Library(scope='mmdet', task='det', title='detection', model_kind='detector',
            registry='mmdet.registry',
            tta_model=dict(type='DetTTAModel',
                           tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                        max_per_img=100)),
            # H=1280, W=800 as mmdet's get_flops and the papers give it
            visualizer_style='draw', flops_shape=_fixed((1280, 800)),
            tensor_kwargs=_det_tensor_kwargs,
            dump=('pkl', 'mmdet.evaluation.DumpDetResults'),
            inferencer='mmdet.apis.DetInferencer', before_train=_mmdet_before_train),
    Library(scope='mmseg', task='seg', title='segmentation', model_kind='segmentor',
            registry='mmseg.registry', tta_model=dict(type='SegTTAModel'),
            visualizer_style='draw', flops_shape=_fixed((512, 512)), dump=('dir', None),
            inferencer='mmseg.apis.MMSegInferencer'),
)}


def get_library(scope: str) -> Library:
    """The row of ``scope``; ValueError naming the served libraries otherwise."""
    if scope not in LIBRARIES:
        raise ValueError(f'mmscope serves the libraries {sorted(LIBRARIES)}; got {scope!r}')
    return LIBRARIES[scope]


def library_of(cfg) -> Library:
    """The library that runs ``cfg`` (its ``default_scope``); ValueError otherwise."""
    scope = cfg.get('default_scope', None)
    if scope not in LIBRARIES:
        raise ValueError(
            f'config {getattr(cfg, "filename", None)!r} has default_scope={scope!r}; mmscope '
            f'tools run configs whose default_scope is one of {sorted(LIBRARIES)}')
    return LIBRARIES[scope]
