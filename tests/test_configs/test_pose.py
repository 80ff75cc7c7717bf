"""Top-down heatmap pose configs (``configs/<family>/td-hm_*.py``, run by mmpose): each loads,
follows the released recipe, builds in mmpose's registry and maps its input size to its
heatmap size; one training step per family on a tiny generated batch; ``tools/test.py
--out`` (and ``--tta``) on a generated COCO-keypoints set; the error without mmpose; params
and FLOPs.

Speed: models are built without their ``Pretrained`` checkpoints and run on one thread;
the training steps use 64x64 inputs, the end-to-end test 5 persons in 3 small images.
"""
import copy
import functools
import glob
import importlib.util
import json
import os
import os.path as osp
import pickle
import re
import sys

import numpy as np
import pytest
import torch
from helpers import one_thread_env, run_watched

import mmscope  # noqa: F401
from mmscope.apis import build_model, complexity, load_config
from mmscope.apis.libraries import get_library
from mmscope.models.family import families, get_family

pytest.importorskip('mmpose', reason='the pose configs need mmpose (make setup, step 5)')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
# the recipes of every family's folder (the demo's pose config is tested with the demo)
CONFIGS = sorted(p for f in families()
                 for p in glob.glob(osp.join(ROOT, 'configs', f.key, 'td-hm_*.py')))
IDS = [osp.relpath(p, osp.join(ROOT, 'configs')) for p in CONFIGS]
NAME_RE = re.compile(r'^td-hm_(?P<family>\w+)-(?P<variant>\w+)_8xb32-210e_coco-'
                     r'(?P<h>\d+)x(?P<w>\d+)\.py$')
# family -> {variant: drop path}: ScopeViT's released rates; ScalableViT's dense-task ones
DROP_PATH = {
    'scopevit': {
        'xt': 0.1,
        't': 0.15,
        's': 0.2
    },
    'scalablevit': {
        's': 0.2,
        'b': 0.2,
        'l': 0.3
    }
}
SIZES = {'scopevit': ('256x192', '384x288'), 'scalablevit': ('256x192', )}
HEATMAP = {(256, 192): (48, 64), (384, 288): (72, 96)}  # (H, W) -> codec (W, H)
SMALL = {
    'scopevit': 'td-hm_scopevit-xt_8xb32-210e_coco-256x192.py',
    'scalablevit': 'td-hm_scalablevit-s_8xb32-210e_coco-256x192.py'
}


@pytest.fixture(autouse=True, scope='module')
def quiet_single_thread():
    """Warnings only from mmengine's logger; one intra-op thread (a busy 2-core machine)."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmscope_test_pose', log_level='WARNING')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def _load_once(path):
    return load_config(path)


def load(path):
    return copy.deepcopy(_load_once(path))


def config(family):
    return osp.join(ROOT, 'configs', family, SMALL[family])


def parse_name(path):
    m = NAME_RE.match(osp.basename(path))
    assert m, f'{osp.basename(path)} does not follow td-hm_<family>-<v>_8xb32-210e_coco-HxW'
    fam = get_family(m['family'])
    arch = {short: a for a in fam.archs for short in [a] + fam.short_names(a)}[m['variant']]
    return dict(family=fam.key, variant=m['variant'], arch=arch, shape=(int(m['h']), int(m['w'])))


def test_every_variant_and_size_present():
    names = {osp.basename(p) for p in CONFIGS}
    expected = set()
    for fam in families():
        for arch in fam.archs:
            short = min([arch] + fam.short_names(arch), key=len)
            for size in SIZES[fam.key]:
                expected.add(f'td-hm_{fam.key}-{short}_8xb32-210e_coco-{size}.py')
    assert names == expected


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_config_recipe_builds_and_maps_input_to_heatmap(path):
    info = parse_name(path)
    cfg = load(path)
    h, w = info['shape']
    assert cfg.default_scope == 'mmpose'
    assert cfg.codec == dict(
        type='MSRAHeatmap', input_size=(w, h), heatmap_size=HEATMAP[(h, w)], sigma=2)
    model = cfg.model
    assert model.type == 'TopdownPoseEstimator'
    assert model.backbone.type == f'mmscope.{get_family(info["family"]).name}'
    assert model.backbone.arch == info['arch'] and tuple(model.backbone.out_indices) == (3, )
    assert model.backbone.drop_path_rate == DROP_PATH[info['family']][info['variant']]
    assert model.backbone.init_cfg.checkpoint == \
        f'work_dirs/{info["family"]}-{info["variant"]}_8xb128_in1k/epoch_300.pth'
    assert 'norm_cfg' not in model.backbone  # plain BN, as the released models trained
    head = model.head
    assert head.type == 'HeatmapHead' and head.out_channels == 17
    assert head.in_channels == get_family(info['family']).widths(info['arch'])[-1]
    assert head.decoder == cfg.codec
    assert model.test_cfg == dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        affine = [t for t in loader.dataset.pipeline if t.type == 'TopdownAffine']
        assert affine[0].input_size == (w, h)
    target = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'GenerateTarget']
    assert target[0].encoder == cfg.codec
    # schedule: Adam 1e-3, 500-iteration warm-up, x0.1 at 170 / 200 of 210; 8 x 32 images
    assert cfg.optim_wrapper.optimizer == dict(type='Adam', lr=1e-3)
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch) == ('LinearLR', 500, False)
    assert steps.milestones == [170, 200] and cfg.train_cfg.max_epochs == 210
    assert cfg.train_dataloader.batch_size == 32 and cfg.auto_scale_lr.base_batch_size == 256
    test_data = cfg.test_dataloader.dataset
    assert (test_data.type, test_data.data_mode) == ('CocoDataset', 'topdown')
    assert test_data.bbox_file == ('data/coco/person_detection_results/'
                                   'COCO_val2017_detections_AP_H_56_person.json')
    assert cfg.test_evaluator.type == 'CocoMetric'

    net = build_model(cfg)  # mmpose's registry, no Pretrained checkpoint, BN
    assert type(net).__name__ == 'TopdownPoseEstimator'
    with torch.no_grad():
        heatmaps = net(torch.zeros(1, 3, h, w), None, mode='tensor')
    hm_w, hm_h = cfg.codec['heatmap_size']
    assert tuple(heatmaps.shape) == (1, 17, hm_h, hm_w)


@pytest.mark.parametrize('family', sorted(SMALL))
def test_train_step(family):
    """One optimizer step (forward, loss, backward, update) with the config's optimizer on
    two 64x64 crops with generated heatmap targets. 64x48 does not fit: the stride-32 map
    of a 48-wide input is 2 wide (1.5 rounded up), so the heatmaps would be 16, not 12,
    wide."""
    from mmengine.optim import build_optim_wrapper
    from mmpose.testing import get_packed_inputs

    cfg = load(config(family))
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    data = get_packed_inputs(
        batch_size=2,
        img_shape=(64, 64),
        input_size=(64, 64),
        heatmap_size=(16, 16),
        with_reg_label=False,
        with_simcc_label=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log_vars = model.train_step(data, optim_wrapper)
    assert set(log_vars) >= {'loss', 'loss_kpt', 'acc_pose'}
    assert torch.isfinite(log_vars['loss']) and log_vars['loss'] > 0
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith('backbone.') for n in changed)
    assert any(n.startswith('head.final_layer') for n in changed)


# ------------------------------------------------------------------ tools/test.py end to end
KEYPOINTS = [
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
    'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
    'right_knee', 'left_ankle', 'right_ankle'
]
PERSONS = (1, 2, 2)  # per image


def _write_coco_keypoints(root):
    """3 images of 160x120 with 5 persons, each with 17 visible keypoints in its box."""
    from PIL import Image
    rng = np.random.default_rng(0)
    images, annotations = [], []
    osp_img = osp.join(root, 'images')
    os.makedirs(osp_img)
    for img_id, persons in enumerate(PERSONS, start=1):
        name = f'{img_id:012d}.png'
        Image.fromarray(rng.integers(0, 255, (120, 160, 3),
                                     dtype=np.uint8)).save(osp.join(osp_img, name))
        images.append(dict(id=img_id, file_name=name, width=160, height=120))
        for k in range(persons):
            x, y, bw, bh = 10 + 70 * k, 10, 60, 100
            kpts = np.stack(
                [rng.uniform(x, x + bw, 17),
                 rng.uniform(y, y + bh, 17),
                 np.full(17, 2.)], axis=1)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=1,
                    iscrowd=0,
                    bbox=[x, y, bw, bh],
                    area=float(bw * bh),
                    num_keypoints=17,
                    keypoints=[round(float(v), 2) for v in kpts.ravel()]))
    categories = [
        dict(
            id=1,
            name='person',
            supercategory='person',
            keypoints=KEYPOINTS,
            skeleton=[[16, 14], [14, 12], [17, 15], [15, 13], [12, 13]])
    ]
    ann_file = osp.join(root, 'person_keypoints.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return ann_file


def test_tools_test_dumps_one_prediction_per_person(tmp_path):
    """tools/test.py CONFIG CKPT --out preds.pkl --tta on generated data with ground-truth
    boxes; the config's flip test is switched off so that --tta has to turn it on."""
    path = config('scopevit')
    ann_file = _write_coco_keypoints(str(tmp_path))
    ckpt = str(tmp_path / 'random.pth')
    torch.manual_seed(0)
    torch.save(dict(state_dict=build_model(load(path)).state_dict()), ckpt)
    out = str(tmp_path / 'preds.pkl')
    options = [
        f'test_dataloader.dataset.data_root={tmp_path}',
        f'test_dataloader.dataset.ann_file={ann_file}',
        'test_dataloader.dataset.data_prefix.img=images/', 'test_dataloader.dataset.bbox_file=None',
        'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', f'test_evaluator.ann_file={ann_file}',
        'model.test_cfg.flip_test=False'
    ]
    run = run_watched([
        sys.executable,
        osp.join(TOOLS, 'test.py'), path, ckpt, '--out', out, '--tta', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *options
    ],
                      idle_timeout=300,
                      total_timeout=900,
                      cwd=ROOT)
    assert run.returncode == 0, run.tail()
    assert 'coco/AP' in run.output, run.tail()
    # --tta: the model's flip test (no TTA wrapper model), as the runner's config shows
    assert 'flip_test=True' in run.output and 'flip_test=False' not in run.output, run.tail()
    assert 'tta_model' not in run.output, run.tail()
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == sum(PERSONS)
    assert sorted(p['img_id'] for p in preds) == [1, 2, 2, 3, 3]
    for p in preds:
        keypoints = np.asarray(p['pred_instances']['keypoints'])
        assert keypoints.shape == (1, 17, 2)
        assert np.asarray(p['pred_instances']['keypoint_scores']).shape == (1, 17)


def _load_test_tool():
    spec = importlib.util.spec_from_file_location('mmscope_test_tool', osp.join(TOOLS, 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tta(cfg):
    _load_test_tool()._default_tta(cfg, get_library('mmpose'))
    assert cfg.model.type == 'TopdownPoseEstimator'  # not wrapped in a TTA model
    assert 'tta_model' not in cfg and 'tta_pipeline' not in cfg
    return cfg.model.test_cfg


def test_tta_is_the_flip_test():
    cfg = load(config('scalablevit'))
    cfg.model.test_cfg = dict(flip_test=False)
    assert _tta(cfg) == dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True)


def test_tta_adds_the_flip_test_to_a_model_without_test_cfg():
    cfg = load(config('scalablevit'))
    cfg.model.pop('test_cfg')
    assert _tta(cfg) == dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True)


# ------------------------------------------------------------------------ without mmpose
INSTALL_STEP = 'pip install --no-deps mmpose==1.3.2'


@pytest.fixture
def no_mmpose(tmp_path):
    """A PYTHONPATH entry whose ``mmpose`` fails to import as a missing package does."""
    pkg = tmp_path / 'shadow' / 'mmpose'
    pkg.mkdir(parents=True)
    (pkg / '__init__.py'
     ).write_text("raise ModuleNotFoundError(\"No module named 'mmpose'\", name='mmpose')\n")
    return one_thread_env(PYTHONPATH=str(tmp_path / 'shadow'))


def test_missing_mmpose_names_the_install_step(no_mmpose):
    code = ("from mmscope.apis.libraries import get_library\n"
            "get_library('mmpose').models()\n")
    run = run_watched([sys.executable, '-c', code],
                      idle_timeout=120,
                      total_timeout=300,
                      cwd=ROOT,
                      env=no_mmpose)
    assert run.returncode != 0
    assert 'mmpose is not installed' in run.output and INSTALL_STEP in run.output, run.tail()


def test_train_tool_without_mmpose_names_the_install_step(no_mmpose, tmp_path):
    run = run_watched([
        sys.executable,
        osp.join(TOOLS, 'train.py'),
        config('scopevit'), '--work-dir',
        str(tmp_path / 'work')
    ],
                      idle_timeout=120,
                      total_timeout=300,
                      cwd=ROOT,
                      env=no_mmpose)
    assert run.returncode != 0
    assert INSTALL_STEP in run.output, run.tail()


# ---------------------------------------------------------------------------- complexity
def test_measure_pose_config():
    res = complexity.measure(load(config('scopevit')))
    assert res['task'] == 'pose' and res['shape'] == (256, 192)  # codec input (W, H) = 192, 256
    assert res['params'] > 0 and res['flops'] > 0
    # ScopeViT-XT + 3-deconv head: 8.18 M params, 2.14 GFLOPs at 256x192
    assert 8.0e6 < res['params'] < 8.4e6 and 2.0e9 < res['flops'] < 2.3e9
