"""Inference on images with any mmscope config, and a picture of each prediction.

:func:`inference` is what ``demo/image_demo.py`` and the shapes demo
(``projects/shapes_demo``) run. The library comes from the config's ``default_scope``; its row of
:data:`mmscope.apis.libraries.LIBRARIES` gives the high-level inferencer
(``ImageClassificationInferencer``, ``DetInferencer``, ``MMSegInferencer``,
``MMPoseInferencer``), how it takes
the checkpoint, the call that makes it draw, and how one prediction is summarised.

Small images (like the 64/128-pixel demo images) are upscaled to ``min_size`` before
inference, only so the drawing is legible: every config's test pipeline resizes its input
to the model's own input size anyway.

Every image gets its own prediction and its own picture, whatever the names: the
inferencer sees each image under a name of its own (:func:`staged`), and the pictures are
named after the images without ever taking the path of an input or of another picture
(:func:`picture_paths`). A checkpoint without ``dataset_meta`` (class names) is given the
config's test dataset meta (:func:`config_dataset_meta`) instead of the library's default
(Cityscapes or COCO names, which would name wrong classes). A checkpoint that leaves
any weight of the config's model unloaded (or of another shape) is refused before any
prediction (:func:`mmscope.apis.runner.check_checkpoint_fits`).
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

from .config import cache_external_config_lookup
from .libraries import LIBRARIES, Library
from .runner import check_checkpoint_fits

__all__ = [
    'library_of_config', 'upscaled', 'staged', 'picture_paths', 'find_picture',
    'config_dataset_meta', 'inference'
]


def library_of_config(config: str) -> Library:
    """The :class:`Library` row of the config file ``config`` (its ``default_scope``)."""
    from mmengine.config import Config
    cache_external_config_lookup()
    scope = Config.fromfile(config).get('default_scope')
    if scope not in LIBRARIES:
        raise ValueError(f'{config}: default_scope {scope!r} is none of {sorted(LIBRARIES)}')
    return LIBRARIES[scope]


def upscaled(images: Sequence[str], min_size: int, tmp: str) -> List[str]:
    """``images``, those whose short side is under ``min_size`` replaced by upscaled
    (bicubic) copies of the same file name in the folder ``tmp``; ``min_size=0`` never
    upscales. FileNotFoundError for a missing file, ValueError for a file OpenCV cannot
    read as an image."""
    return [_upscale(path, min_size, osp.join(tmp, osp.basename(path))) for path in images]


def _upscale(path: str, min_size: int, dst: str) -> str:
    """``path``, or its copy upscaled to a short side of ``min_size`` written to ``dst``."""
    import cv2
    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{path}: not an image OpenCV can read (a text file, a damaged '
                         'download, another format?); give image files such as .jpg, .png, '
                         '.bmp, .tif or .webp')
    short = min(img.shape[:2])
    if not min_size or short >= min_size:
        return path
    f = min_size / short
    cv2.imwrite(dst, cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC))
    return dst


def staged(images: Sequence[str], min_size: int, tmp: str) -> List[str]:
    """What the inferencer reads: every image under a name of its own in ``tmp``
    (``<index>_<name>``: ``a/img.jpg`` and ``b/img.jpg`` stay two images, as do their
    pictures), upscaled like :func:`upscaled` or else linked (copied where links fail).

    Args:
        images: the image files.
        min_size: upscale images whose short side is smaller (0: never).
        tmp: an empty folder that lives as long as the inference.
    """
    out = []
    for i, path in enumerate(images):
        dst = osp.join(tmp, f'{i:04d}_{osp.basename(path)}')
        if _upscale(path, min_size, dst) == path:
            try:
                os.symlink(osp.abspath(path), dst)
            except OSError:
                shutil.copyfile(path, dst)
        out.append(dst)
    return out


def picture_paths(images: Sequence[str], out_dir: str) -> List[str]:
    """One picture path per image: ``out_dir/<image stem>.png``, or ``<stem>_1.png``,
    ``<stem>_2.png``... where that path is an input image (never overwritten) or the
    picture of an earlier image (two inputs named alike).

    Args:
        images: the image files, in order.
        out_dir: the folder of the pictures.
    """
    taken = {osp.realpath(p) for p in images}
    out = []
    for path in images:
        stem = osp.splitext(osp.basename(path))[0]
        dst, k = osp.join(out_dir, stem + '.png'), 0
        while osp.realpath(dst) in taken:
            k += 1
            dst = osp.join(out_dir, f'{stem}_{k}.png')
        taken.add(osp.realpath(dst))
        out.append(dst)
    return out


def find_picture(folder: str, name: str) -> str:
    """The file of ``folder`` with the stem of ``name`` (whatever its extension): the
    picture an inferencer drew of the image ``name``."""
    stem = osp.splitext(name)[0]
    for f in sorted(os.listdir(folder)):
        if osp.splitext(f)[0] == stem:
            return osp.join(folder, f)
    raise FileNotFoundError(f'no visualisation of {name} in {folder}')


def config_dataset_meta(config: str, library: Library) -> Dict:
    """The dataset meta (``classes``, ``palette``...) of ``config``'s test dataset: its
    dataset class's ``METAINFO`` updated with the config's own ``metainfo``.

    Args:
        config: the config file.
        library: its library row (whose ``DATASETS`` registry knows the dataset type).
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(config)
    data = (cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}).get('dataset', {})
    while 'dataset' in data:  # wrappers (RepeatDataset, ...)
        data = data['dataset']
    datasets = library.import_module(f'{library.scope}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(library.scope):
        dataset_cls = datasets.get(data.get('type')) if data.get('type') else None
    meta = dict(getattr(dataset_cls, 'METAINFO', None) or {})
    meta.update(data.get('metainfo') or {})
    return meta


def _checkpoint_has_classes(checkpoint: str) -> bool:
    """Whether the checkpoint records its dataset meta (class names)."""
    from .runner import read_checkpoint
    ckpt = read_checkpoint(checkpoint)
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return isinstance(meta, dict) and bool(meta.get('dataset_meta') or meta.get('CLASSES'))


def _use_dataset_meta(inferencer, library: Library, meta: Dict) -> None:
    """Make the inferencer name and draw the classes of ``meta``: mmdet and mmseg read the
    model's ``dataset_meta`` (mmdet's visualizer keeps its own copy), mmpretrain its
    ``classes``."""
    library.inferencer_model(inferencer).dataset_meta = dict(meta)
    visualizer = getattr(inferencer, 'visualizer', None)
    if visualizer is not None:
        visualizer.dataset_meta = dict(meta)
    if hasattr(inferencer, 'classes'):
        inferencer.classes = meta.get('classes')


def inference(images: Sequence[str],
              config: str,
              checkpoint: str,
              out_dir: str,
              device: Optional[str] = None,
              score_thr: float = 0.3,
              min_size: int = 384,
              amp: bool = False,
              amp_dtype: Optional[str] = None) -> List[Dict]:
    """Predict ``images`` with ``config`` + ``checkpoint``; draw into ``out_dir``.

    Each picture is ``out_dir/<image stem>.png``, or a numbered variant where that path
    is an input or another image's picture (:func:`picture_paths`). ``device``
    defaults to CUDA when available; ``score_thr`` is the detection (pose: keypoint)
    score threshold (drawing and summary);
    images with a short side under ``min_size`` are upscaled first (see the module doc).
    A checkpoint without class names gets those of the config's test dataset
    (:func:`config_dataset_meta`; mmpose does this itself).
    ``amp``: the backbone and neck run under autocast (``amp_dtype``: bf16, the CPU
    default, or fp16, the CUDA default; :func:`mmscope.apis.precision.
    autocast_feature_extractor`), the heads and their post-processing in fp32.
    Returns one dict per image: ``image``, ``vis`` (the picture written) and ``summary``
    (one line, from the library row's ``summarize``).
    """
    import torch
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    library = library_of_config(config)
    os.makedirs(out_dir, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = staged(images, min_size, tmp)
        vis_dir = osp.join(tmp, 'vis')
        inferencer_cls = library.import_object(library.inferencer)
        inferencer = inferencer_cls(
            config, device=device, **{library.weights_arg: checkpoint}, **library.inferencer_kwargs)
        # no result from weights that were not loaded
        check_checkpoint_fits(library.inferencer_model(inferencer), checkpoint)
        if library.meta_fallback and not _checkpoint_has_classes(checkpoint):
            _use_dataset_meta(inferencer, library, config_dataset_meta(config, library))
        if amp:
            from .precision import (autocast_feature_extractor, resolve_amp_dtype,
                                    warn_if_emulated_bf16)
            dtype = resolve_amp_dtype(torch.device(device).type, amp_dtype)
            if torch.device(device).type == 'cpu':
                warn_if_emulated_bf16('run without --amp to stay in fp32')
            autocast_feature_extractor(
                library.inferencer_model(inferencer), dtype,
                torch.device(device).type)
        preds = library.predictions(inferencer(inputs, **library.infer_kwargs(tmp, score_thr)))
        summaries = [library.summarize(p, inferencer, score_thr) for p in preds]
        for path, staged_path, dst, summary in zip(images, inputs, picture_paths(images, out_dir),
                                                   summaries):
            src = find_picture(vis_dir, osp.basename(staged_path))
            if src.endswith('.png'):
                shutil.copyfile(src, dst)
            else:
                import cv2
                cv2.imwrite(dst, cv2.imread(src))
            results.append(dict(image=path, vis=dst, summary=summary))
    return results
