"""mmscope's model names in the libraries' own entry points: mmpretrain's ``get_model`` /
``list_models`` / ``ImageClassificationInferencer``, mmdet's ``DetInferencer``, mmseg's
``MMSegInferencer`` and mmpose's ``MMPoseInferencer``, each run on a real photograph that
an installed package ships (matplotlib's ``grace_hopper.jpg``; the OpenMMLab wheels ship
no demo images). No weights are published: each model gets a checkpoint of its initial
weights, so only the structure of the output is checked. ``tests/test_packaging.py`` does
the same from an installed wheel."""
import os.path as osp

import numpy as np
import pytest
import torch

import mmscope  # noqa: F401  (registers the names)
from mmscope.apis import build_model, load_config
from mmscope.utils.model_index import NoPublishedWeightsError, model_config, model_names

NAMES = {
    'mmpretrain': 'scopevit-xt_8xb128_in1k',
    'mmdet': 'retinanet_scopevit-xt_fpn_1x_coco',
    'mmseg': 'fpn_scopevit-xt_8xb4-80k_ade20k-512x512',
    'mmpose': 'td-hm_scopevit-xt_8xb32-210e_coco-256x192'
}


@pytest.fixture(scope='module')
def photo():
    """``(path, (H, W))`` of a photograph matplotlib installs."""
    import matplotlib
    from PIL import Image
    path = osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')
    w, h = Image.open(path).size
    return path, (h, w)


def _weights(name, folder, overrides=None, file=None):
    """A checkpoint of the model ``name`` (its seeded initial weights), with the config
    ``overrides`` (another class count...), saved as ``folder/file`` (default
    ``<name>.pth``)."""
    torch.manual_seed(0)
    model = build_model(load_config(model_config(name), overrides))
    path = str(folder / (file or f'{name}.pth'))
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def test_names_come_from_the_metafiles():
    """Every config of every family has its name in the metafiles, and every name its
    config."""
    import glob

    from mmscope.models.family import families
    from mmscope.utils import config_root
    names = model_names()
    assert set(NAMES.values()) <= set(names) and len(names) == len(set(names))
    for name in names:
        assert osp.isfile(model_config(name)), name
    configs = {
        osp.splitext(osp.basename(p))[0]
        for f in families()
        for p in glob.glob(osp.join(config_root(), f.key, '*.py'))
    }
    assert configs == set(names)
    assert model_config(NAMES['mmdet'].upper()) == model_config(NAMES['mmdet'])
    assert model_config('resnet50_8xb32_in1k') is None


def test_mmpretrain_get_model_list_models_and_inferencer(photo, tmp_path):
    from mmpretrain import ImageClassificationInferencer, get_model, list_models
    scope = list_models('scopevit*')
    assert scope == ['scopevit-s_8xb128_in1k', 'scopevit-t_8xb128_in1k', 'scopevit-xt_8xb128_in1k']
    assert list_models('scalablevit*') == [
        'scalablevit-b_8xb128_in1k', 'scalablevit-l_8xb128_in1k', 'scalablevit-s_8xb128_in1k'
    ]
    assert not list_models('*scopevit*coco*')  # only the classifiers
    assert 'resnet50_8xb32_in1k' in list_models('resnet50')  # the library's own names stay
    model = get_model(NAMES['mmpretrain'])  # an untrained model, as mmpretrain gives it
    assert type(
        model.backbone).__name__ == 'ScopeViT' and model.backbone.arch_settings['depths'] == [
            1, 2, 4, 1
        ]
    with pytest.raises(NoPublishedWeightsError, match='pretrained=PATH'):
        get_model(NAMES['mmpretrain'], pretrained=True)
    # a name of ours that another library runs says which, not only 'Failed to find model'
    with pytest.raises(
            ValueError,
            match=rf'{NAMES["mmdet"]} is a detection model of mmscope, '
            r'run by mmdet, not by mmpretrain: use DetInferencer \(mmdet\)'):
        get_model(NAMES['mmdet'])
    with pytest.raises(ValueError, match=rf'{NAMES["mmseg"]} is a segmentation model'):
        ImageClassificationInferencer(NAMES['mmseg'], pretrained='x.pth')
    with pytest.raises(ValueError, match='Failed to find model "no-such-model"'):
        get_model('no-such-model')  # not ours: the library's own answer
    with pytest.raises(NoPublishedWeightsError, match='no weights for scopevit-xt'):
        ImageClassificationInferencer(NAMES['mmpretrain'])  # pretrained=True by default
    ckpt = _weights(NAMES['mmpretrain'], tmp_path)
    inferencer = ImageClassificationInferencer(NAMES['mmpretrain'], pretrained=ckpt, device='cpu')
    (result, ) = inferencer(photo[0])
    assert result['pred_scores'].shape == (1000, )
    assert result['pred_scores'].sum() == pytest.approx(1, abs=1e-4)
    assert 0 <= result['pred_label'] < 1000 and isinstance(result['pred_class'], str)
    assert result['pred_score'] == pytest.approx(result['pred_scores'].max())
    # a 4-class checkpoint in the 1000-class model ended in `IndexError: tuple index out
    # of range` at prediction: refused when built, naming the head
    from mmscope.utils.checkpoint import CheckpointMismatchError
    four = build_model(
        load_config(model_config(NAMES['mmpretrain']), {'model.head.num_classes': 4}))
    path = str(tmp_path / 'four.pth')
    torch.save({'state_dict': four.state_dict()}, path)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'four.pth does not fit the ImageClassifier '
            r'of this config.*in head:[\s\S]*head.fc.weight \(4, 256\) in the checkpoint'):
        ImageClassificationInferencer(NAMES['mmpretrain'], pretrained=path, device='cpu')


def test_det_inferencer(photo, tmp_path):
    from mmdet.apis import DetInferencer
    name = NAMES['mmdet']
    with pytest.raises(NoPublishedWeightsError, match='weights=PATH'):
        DetInferencer(name, device='cpu')
    with pytest.raises(
            ValueError,
            match=rf'{NAMES["mmseg"]} is a segmentation model of '
            r'mmscope, run by mmseg, not by mmdet: use MMSegInferencer'):
        DetInferencer(NAMES['mmseg'], weights='x.pth', device='cpu')
    with pytest.raises(ValueError, match='Cannot find model: no-such-model in mmdet'):
        DetInferencer('no-such-model', device='cpu')  # not ours: the library's own answer
    inferencer = DetInferencer(
        name, weights=_weights(name, tmp_path), device='cpu', show_progress=False)
    out = inferencer(photo[0], pred_score_thr=0.)
    (pred, ) = out['predictions']
    n = len(pred['labels'])
    assert 0 < n <= 100 and len(pred['scores']) == n and np.shape(pred['bboxes']) == (n, 4)
    assert all(0 <= lb < 80 for lb in pred['labels'])
    h, w = photo[1]
    boxes = np.asarray(pred['bboxes'])
    assert boxes.min() >= 0 and boxes[:, 2].max() <= w and boxes[:, 3].max() <= h


def test_library_inferencers_refuse_weights_that_do_not_fit(tmp_path):
    """DetInferencer by our name with a checkpoint of another class count (was an
    IndexError at prediction), and MMSegInferencer with a config and a checkpoint of
    another model: refused when built, naming the parts that would stay unloaded."""
    from mmdet.apis import DetInferencer
    from mmseg.apis import MMSegInferencer

    from mmscope.utils.checkpoint import CheckpointMismatchError
    name = NAMES['mmdet']
    path = _weights(name, tmp_path, {'model.bbox_head.num_classes': 4}, 'four.pth')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'four.pth does not fit the RetinaNet of this config: it would '
            r'leave 2 of the model.s \d+ tensors unloaded or of another shape, in '
            r'bbox_head:[\s\S]*bbox_head: \d+ of \d+ loaded \(2 of another shape: '
            r'bbox_head.retina_cls.weight \(36, '):
        DetInferencer(name, weights=path, device='cpu', show_progress=False)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'EncoderDecoder of this config.*in neck, '
            r'decode_head:\n  backbone: (\d+) of \1 loaded\n  neck: '):
        MMSegInferencer(model_config(NAMES['mmseg']), weights=path, device='cpu')


def test_seg_inferencer(photo, tmp_path):
    from mmseg.apis import MMSegInferencer
    name = NAMES['mmseg']
    inferencer = MMSegInferencer(name, weights=_weights(name, tmp_path), device='cpu')
    out = inferencer(photo[0])
    seg = np.asarray(out['predictions'])
    assert seg.shape == photo[1]  # one class per pixel of the photograph
    assert seg.min() >= 0 and seg.max() < 150


def test_pose_inferencer(photo, tmp_path):
    from mmpose.apis import MMPoseInferencer
    name = NAMES['mmpose']
    with pytest.raises(NoPublishedWeightsError, match='pose2d_weights=PATH'):
        MMPoseInferencer(pose2d=name, det_model='whole_image', device='cpu')
    inferencer = MMPoseInferencer(
        pose2d=name, pose2d_weights=_weights(name, tmp_path), det_model='whole_image', device='cpu')
    (result, ) = list(inferencer(photo[0]))
    ((instance, ), ) = result['predictions']  # one image, the whole image as the box
    assert np.shape(instance['keypoints']) == (17, 2)
    assert np.shape(instance['keypoint_scores']) == (17, )
    h, w = photo[1]
    assert np.allclose(instance['bbox'][0], [0, 0, w, h])
    # a checkpoint of 5 keypoints (the demo's) ended in a bare AssertionError in
    # flip_heatmaps: refused when built, naming the head
    from mmscope.utils.checkpoint import CheckpointMismatchError
    path = _weights(name, tmp_path, {'model.head.out_channels': 5}, 'five.pth')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'five.pth does not fit the TopdownPoseEstimator of this config.*'
            r'in head:[\s\S]*head.final_layer.weight \(5, '):
        MMPoseInferencer(pose2d=name, pose2d_weights=path, det_model='whole_image', device='cpu')


def test_registration_can_be_undone():
    """The two registrations are one named function each way, and idempotent."""
    from mmengine.infer import BaseInferencer
    from mmpretrain.apis import ModelHub

    from mmscope.utils import model_names_registered, register_model_names, unregister_model_names
    assert model_names_registered() and ModelHub.has(NAMES['mmpretrain'])
    patched = BaseInferencer.__init__
    unregister_model_names()
    try:
        assert not model_names_registered() and not ModelHub.has(NAMES['mmpretrain'])
        assert BaseInferencer.__init__ is patched.__wrapped__  # mmengine's own
    finally:
        register_model_names()
        register_model_names()
    assert model_names_registered() and ModelHub.has(NAMES['mmpretrain'])


def test_a_failing_registration_never_breaks_the_library(monkeypatch):
    """Adding our names runs inside mmpretrain's import: a failure there is a warning, and
    a package installed without its configs leaves the libraries' own names working."""
    import types

    from mmscope.utils import model_index as mn

    def broken(hub):
        raise OSError('no model-index.yml')

    monkeypatch.setattr(mn, '_add_classifiers', broken)
    with pytest.warns(
            UserWarning,
            match='could not add its model names to mmpretrain: '
            'OSError: no model-index.yml'):
        mn._register_in_model_hub(types.SimpleNamespace(ModelHub=None))
    monkeypatch.setattr(mn, 'model_index_path', lambda: '/nowhere/model-index.yml')
    with pytest.warns(UserWarning, match='model names are not available'):
        assert mn.model_config(NAMES['mmdet']) is None
