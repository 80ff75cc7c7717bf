"""Inference on images with any mmscope config, and a picture of each prediction.

:func:`inference` is what ``demo/image_demo.py`` and the demo (:mod:`mmscope.apis.demo`)
run. The library comes from the config's ``default_scope``; its row of
:data:`mmscope.apis.libraries.LIBRARIES` gives the high-level inferencer
(``ImageClassificationInferencer``, ``DetInferencer``, ``MMSegInferencer``,
``MMPoseInferencer``), how it takes
the checkpoint, the call that makes it draw, and how one prediction is summarised.

Small images (like the 64/128-pixel demo images) are upscaled to ``min_size`` before
inference, only so the drawing is legible: every config's test pipeline resizes its input
to the model's own input size anyway.
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

from .config import cache_external_config_lookup
from .libraries import LIBRARIES, Library

__all__ = ['library_of_config', 'upscaled', 'find_picture', 'inference']


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
    upscales. FileNotFoundError for an image OpenCV cannot read."""
    import cv2
    out = []
    for path in images:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f'cannot read image {path}')
        short = min(img.shape[:2])
        if not min_size or short >= min_size:
            out.append(path)
            continue
        f = min_size / short
        big = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        dst = osp.join(tmp, osp.basename(path))
        cv2.imwrite(dst, big)
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


def inference(images: Sequence[str], config: str, checkpoint: str, out_dir: str,
              device: Optional[str] = None, score_thr: float = 0.3,
              min_size: int = 384, amp: bool = False,
              amp_dtype: Optional[str] = None) -> List[Dict]:
    """Predict ``images`` with ``config`` + ``checkpoint``; draw into ``out_dir``.

    Each picture is ``out_dir/<image stem>.png``. ``device`` defaults to CUDA when
    available; ``score_thr`` is the detection (pose: keypoint) score threshold (drawing
    and summary);
    images with a short side under ``min_size`` are upscaled first (see the module doc).
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
        inputs = upscaled(images, min_size, tmp)
        vis_dir = osp.join(tmp, 'vis')
        inferencer_cls = library.import_object(library.inferencer)
        inferencer = inferencer_cls(config, device=device, **{library.weights_arg: checkpoint},
                                    **library.inferencer_kwargs)
        if amp:
            from .precision import (autocast_feature_extractor, resolve_amp_dtype,
                                    warn_if_emulated_bf16)
            dtype = resolve_amp_dtype(torch.device(device).type, amp_dtype)
            if torch.device(device).type == 'cpu':
                warn_if_emulated_bf16('run without --amp to stay in fp32')
            autocast_feature_extractor(inferencer.model, dtype, torch.device(device).type)
        preds = library.predictions(inferencer(inputs, **library.infer_kwargs(tmp, score_thr)))
        summaries = [library.summarize(p, inferencer, score_thr) for p in preds]
        for path, summary in zip(images, summaries):
            dst = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '.png')
            src = find_picture(vis_dir, osp.basename(path))
            if src.endswith('.png'):
                shutil.copyfile(src, dst)
            else:
                import cv2
                cv2.imwrite(dst, cv2.imread(src))
            results.append(dict(image=path, vis=dst, summary=summary))
    return results
