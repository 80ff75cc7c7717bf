"""The one table of the downstream OpenMMLab libraries mmscope serves.

A config belongs to the library named by its ``default_scope``. Everything that differs
between libraries is a field of that library's :class:`Library` row: the tools
(``tools/train.py``, ``tools/test.py``, ``get_flops.py``, the benchmark,
``demo/image_demo.py``, the shapes demo project) and the package code behind them
(:mod:`mmscope.apis.runner`, :mod:`mmscope.apis.complexity`, :mod:`mmscope.apis.inference`)
read the row and hold no per-library branches. Serving one more library is one more row
(and its configs).
"""
import importlib
import os.path as osp
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
    """The same ``(H, W)`` for every config of a library."""
    return lambda cfg: shape


def _det_tensor_kwargs(h: int, w: int) -> dict:
    """One ``DetDataSample`` whose image, pad and batch shapes are ``(h, w)``."""
    from mmdet.structures import DetDataSample
    meta = dict(
        img_shape=(h, w),
        ori_shape=(h, w),
        pad_shape=(h, w),
        batch_input_shape=(h, w),
        scale_factor=(1., 1.))
    return dict(data_samples=[DetDataSample(metainfo=meta)])


def _pose_input_size(cfg) -> Tuple[int, int]:
    """``(H, W)`` of a top-down pose config: its codec's ``input_size`` (given as W, H)."""
    codec = cfg.get('codec', None) or cfg.model.head.decoder
    w, h = codec['input_size']
    return (int(h), int(w))


def _pose_flip_test(cfg) -> None:
    """mmpose's test-time augmentation is the flip test of the model's ``test_cfg``
    (heatmaps of the flipped image, flipped back and shifted one pixel, averaged)."""
    cfg.model.setdefault('test_cfg', {})
    test_cfg = cfg.model.test_cfg  # the stored dict (setdefault may hand back a copy)
    test_cfg['flip_test'] = True
    test_cfg.setdefault('flip_mode', 'heatmap')
    test_cfg.setdefault('shift_heatmap', True)


def _pose_tensor_kwargs(h: int, w: int) -> dict:
    """mmpose's ``forward`` takes ``data_samples`` without a default: none."""
    return dict(data_samples=None)


def _no_kwargs(h: int, w: int) -> dict:
    """Nothing besides the input."""
    return {}


def _mmdet_before_train() -> None:
    """mmdet's dynamo cache-size set-up, as its ``tools/train.py`` does."""
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()


# ----------------------------------------------------------------------- inference rows
def _out_dir_kwargs(out_dir: str, score_thr: float) -> dict:
    """Inferencer call keywords of a library that draws into ``out_dir/vis``."""
    return dict(out_dir=out_dir)


def _cls_infer_kwargs(out_dir: str, score_thr: float) -> dict:
    """``ImageClassificationInferencer`` draws into ``show_dir`` itself."""
    return dict(show_dir=osp.join(out_dir, 'vis'))


def _det_infer_kwargs(out_dir: str, score_thr: float) -> dict:
    """``DetInferencer`` draws the boxes scoring ``score_thr`` or more."""
    return dict(out_dir=out_dir, pred_score_thr=score_thr)


def _seg_infer_kwargs(out_dir: str, score_thr: float) -> dict:
    """``MMSegInferencer`` returns its data samples (with ``pred_sem_seg``)."""
    return dict(out_dir=out_dir, return_datasamples=True)


def _pose_infer_kwargs(out_dir: str, score_thr: float) -> dict:
    """``MMPoseInferencer`` draws into ``vis_out_dir`` (keypoints scoring ``score_thr`` or
    more, with the boxes it was given)."""
    return dict(vis_out_dir=osp.join(out_dir, 'vis'), kpt_thr=score_thr, draw_bbox=True)


def _pose_predictions(result) -> list:
    """``MMPoseInferencer`` yields one result per batch, each with a ``'predictions'`` list
    (one per image) of instance lists: the instance lists of all images, in order."""
    return [instances for batch in result for instances in batch['predictions']]


def _listed(result) -> list:
    """The call's result is the list of predictions (one per image)."""
    return list(result)


def _predictions_entry(result) -> list:
    """The predictions are the result's ``'predictions'`` list."""
    return list(result['predictions'])


def _one_or_list(result) -> list:
    """A single image's prediction comes back alone, several as a list."""
    return result if isinstance(result, list) else [result]


def _inferencer_model(inferencer):
    """The model an inferencer runs: its ``model`` attribute."""
    return inferencer.model


def _pose_inferencer_model(inferencer):
    """``MMPoseInferencer`` holds no model itself: it dispatches to a 2D pose inferencer
    (``inferencer.inferencer``), whose ``model`` is the pose estimator."""
    return inferencer.inferencer.model


def _no_summary(prediction, inferencer, score_thr: float) -> str:
    """No summary (a library whose row gives none)."""
    return ''


def _cls_summary(prediction, inferencer, score_thr: float) -> str:
    """``'square (0.83)'``: the predicted class and its score."""
    return f"{prediction['pred_class']} ({prediction['pred_score']:.2f})"


def _det_summary(prediction, inferencer, score_thr: float) -> str:
    """``'2 objects: star 0.91, circle 0.45'`` (those scoring ``score_thr`` or more)."""
    classes = _inferencer_model(inferencer).dataset_meta['classes']
    kept = [(classes[lb], s) for lb, s in zip(prediction['labels'], prediction['scores'])
            if s >= score_thr]
    if not kept:
        return 'no object'
    return f'{len(kept)} objects: ' + ', '.join(f'{c} {s:.2f}' for c, s in kept)


def _seg_summary(prediction, inferencer, score_thr: float) -> str:
    """``'background 80%, star 12%'``: the share of each class (0.5% or more), largest
    first, of a data sample's ``pred_sem_seg``."""
    import numpy as np
    classes = _inferencer_model(inferencer).dataset_meta['classes']
    seg = prediction.pred_sem_seg.data.cpu().numpy().ravel()
    frac = np.bincount(seg, minlength=len(classes)) / seg.size
    return ', '.join(f'{classes[k]} {frac[k]:.0%}' for k in np.argsort(-frac) if frac[k] >= 0.005)


def _pose_summary(prediction, inferencer, score_thr: float) -> str:
    """``'2 instances, 5 keypoints each, mean score 0.83'``: one image's instances (dicts
    with ``keypoints`` and ``keypoint_scores``) and the mean of their keypoint scores."""
    if not prediction:
        return 'no instance'
    scores = [float(s) for inst in prediction for s in inst['keypoint_scores']]
    counts = sorted({len(inst['keypoints']) for inst in prediction})
    each = ('/'.join(map(str, counts)) + ' keypoints' + (' each' if len(prediction) > 1 else ''))
    plural = 's' if len(prediction) > 1 else ''
    return (f'{len(prediction)} instance{plural}, {each}, '
            f'mean score {sum(scores) / max(len(scores), 1):.2f}')


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
        tta: ``cfg -> None``, the library's own ``--tta`` instead of ``tta_model`` (mmpose's
            flip test lives in the model's ``test_cfg``), or None.
        visualizer_style: how its ``VisualizationHook`` is switched on: ``'enable'``
            (``enable/show/wait_time/out_dir``) or ``'draw'`` (``draw=True``, the
            visualizer's ``save_dir``).
        flops_shape: ``cfg -> (H, W)``, the default FLOPs input of a config.
        tensor_kwargs: ``(H, W) -> dict``, what a ``mode='tensor'`` forward needs
            besides the input (mmdet's data samples).
        dump: ``tools/test.py --out``: ``('pkl', 'module.Class')`` (a dump metric) or
            ``('dir', None)`` (the evaluator writes label maps into a folder).
        inferencer: ``'module.Class'`` of its high-level inferencer.
        weights_arg: the inferencer's keyword for the checkpoint (``'weights'``, or
            mmpretrain's ``'pretrained'``).
        inferencer_kwargs: further keywords of the inferencer's constructor.
        inferencer_model: ``inferencer -> model``, the model the inferencer runs (what
            ``--amp`` puts under autocast and class names are given to).
        infer_kwargs: ``(out_dir, score_thr) -> dict``, the keywords of the inferencer
            call that make it draw its pictures into ``out_dir/vis``.
        predictions: ``result -> list``, one prediction per image out of what the
            inferencer call returned.
        summarize: ``(prediction, inferencer, score_thr) -> str``, a one-line summary of
            one prediction (the predicted class, the objects, the class shares).
        meta_fallback: whether :func:`mmscope.apis.inference.inference` gives its
            inferencer the config's class names when the checkpoint has none (the
            library's own default would be another dataset's names); False where the
            library does this itself (mmpose).
        before_train: called once before a training run is built (or None).
        export_kind: how ``tools/deployment/pytorch2onnx.py`` exports its models
            (:mod:`mmscope.deploy`): ``'classifier'``, ``'segmentor'``, ``'pose'`` (a
            ``mode='tensor'`` forward) or ``'mmdeploy'`` (mmdeploy's ``torch2onnx``).
        install: how to install the library when it is missing (for the error).
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
    weights_arg: str = 'weights'
    inferencer_kwargs: Mapping = field(default_factory=dict)
    inferencer_model: Callable = _inferencer_model
    infer_kwargs: Callable = _out_dir_kwargs
    predictions: Callable = _predictions_entry
    summarize: Callable = _no_summary
    meta_fallback: bool = True
    before_train: Optional[Callable] = None
    tta: Optional[Callable] = None
    export_kind: str = 'classifier'
    install: str = 'make setup (tools/setup_env.sh)'

    @property
    def name(self) -> str:
        """Human name for messages: ``'mmdet (detection)'``."""
        return f'{self.scope} ({self.title})'

    def models(self):
        """The library's ``MODELS`` registry (imports the library; a missing library is
        a ModuleNotFoundError that names the install step)."""
        return self.import_module(self.registry).MODELS

    def require(self) -> None:
        """Import the library: a clear ModuleNotFoundError (naming the install step) if it
        is missing, instead of a later registry KeyError."""
        self.import_module(self.scope)

    def import_module(self, name: str):
        """``importlib.import_module(name)`` for a module of this library, with an error
        that says how to install the library when it is missing."""
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split('.')[0] != self.scope:
                raise
            raise ModuleNotFoundError(
                f'{self.scope} is not installed, and {self.name} configs need it: '
                f'{self.install}',
                name=e.name) from None

    def import_object(self, dotted: str):
        """The object ``'package.module.Name'`` (imports its module)."""
        module, _, name = dotted.rpartition('.')
        return getattr(self.import_module(module), name)


LIBRARIES: Dict[str, Library] = {
    lib.scope: lib
    for lib in (
        Library(
            scope='mmpretrain',
            task='cls',
            title='classification',
            model_kind='classifier',
            registry='mmpretrain.registry',
            tta_model=dict(type='mmpretrain.AverageClsScoreTTA'),
            visualizer_style='enable',
            flops_shape=_test_crop,
            inferencer='mmpretrain.apis.ImageClassificationInferencer',
            weights_arg='pretrained',
            infer_kwargs=_cls_infer_kwargs,
            predictions=_listed,
            summarize=_cls_summary),
        Library(
            scope='mmdet',
            task='det',
            title='detection',
            model_kind='detector',
            registry='mmdet.registry',
            tta_model=dict(
                type='DetTTAModel',
                tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)),
            # H=1280, W=800 as mmdet's get_flops and the papers give it
            visualizer_style='draw',
            flops_shape=_fixed((1280, 800)),
            tensor_kwargs=_det_tensor_kwargs,
            dump=('pkl', 'mmdet.evaluation.DumpDetResults'),
            inferencer='mmdet.apis.DetInferencer',
            inferencer_kwargs=dict(show_progress=False),
            infer_kwargs=_det_infer_kwargs,
            summarize=_det_summary,
            before_train=_mmdet_before_train,
            export_kind='mmdeploy'),
        Library(
            scope='mmseg',
            task='seg',
            title='segmentation',
            model_kind='segmentor',
            registry='mmseg.registry',
            tta_model=dict(type='SegTTAModel'),
            visualizer_style='draw',
            flops_shape=_fixed((512, 512)),
            dump=('dir', None),
            inferencer='mmseg.apis.MMSegInferencer',
            infer_kwargs=_seg_infer_kwargs,
            predictions=_one_or_list,
            summarize=_seg_summary,
            export_kind='segmentor'),
        Library(
            scope='mmpose',
            task='pose',
            title='pose estimation',
            model_kind='pose estimator',
            registry='mmpose.registry',
            tta_model={},
            tta=_pose_flip_test,
            visualizer_style='enable',
            flops_shape=_pose_input_size,
            tensor_kwargs=_pose_tensor_kwargs,
            inferencer='mmpose.apis.MMPoseInferencer',
            # no detector: the whole image is the one box of the top-down model
            weights_arg='pose2d_weights',
            inferencer_kwargs=dict(det_model='whole_image'),
            inferencer_model=_pose_inferencer_model,
            infer_kwargs=_pose_infer_kwargs,
            predictions=_pose_predictions,
            summarize=_pose_summary,
            meta_fallback=False,
            export_kind='pose',
            install='make setup installs mmpose 1.3.2 (tools/setup_env.sh, step 5: '
            'pip install --no-deps mmpose==1.3.2 plus requirements/pose.txt)'),
    )
}


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
