"""mmscope as a package: a wheel that works outside the source tree.

The wheel is built from a copy of the checkout (``pip wheel --no-deps
--no-build-isolation``, no network) and installed with ``--no-deps --target`` into a
temporary folder. From there, in a fresh interpreter whose ``sys.path`` holds nothing of
the checkout (its editable install removed too), mmscope must import, resolve an
``mmscope::`` config base, build a backbone from it, convert a checkpoint with the
shipped converter tool, and give our model names to mmpretrain (``get_model``,
``list_models``) and to the four libraries' inferencers, run on a photograph that
matplotlib installs, from the installed configs. Any path into the source tree fails the
test: the checkout is not importable there, and the installed copy has no source tree
around it.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _copy_checkout(dst):
    """The files git tracks, plus untracked ones it does not ignore (what a clone plus
    the uncommitted work would hold); no .venv, no build output, no mmscope/.mim."""
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'],
                            cwd=ROOT,
                            capture_output=True,
                            text=True,
                            check=True).stdout.splitlines()
    for rel in listed:
        src = osp.join(ROOT, rel)
        if osp.isfile(src) and not osp.islink(src):
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, rel))


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(site folder with the installed wheel, the wheel's file names)."""
    tmp = tmp_path_factory.mktemp('pkg')
    src, dist, site = tmp / 'src', tmp / 'dist', tmp / 'site'
    _copy_checkout(str(src))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '--no-input']
    env = dict(os.environ, PIP_NO_INDEX='1')  # nothing may come from the network
    env.pop('PIP_FIND_LINKS', None)
    out = subprocess.run(
        pip + ['wheel', '--no-deps', '--no-build-isolation', '-w',
               str(dist), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    wheels = list(dist.glob('mmscope-*.whl'))
    assert len(wheels) == 1, wheels
    out = subprocess.run(
        pip + ['install', '--no-deps', '--target',
               str(site), str(wheels[0])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
    return site, names, tmp


def test_wheel_ships_configs_tools_and_metadata(installed):
    _, names, _ = installed
    tracked = subprocess.run(['git', 'ls-files', 'configs', 'tools'],
                             cwd=ROOT,
                             capture_output=True,
                             text=True,
                             check=True).stdout.split()
    shipped = {n[len('mmscope/.mim/'):] for n in names if n.startswith('mmscope/.mim/')}
    wanted = {p for p in tracked if p.endswith(('.py', '.yml', '.md', '.sh'))}
    assert wanted <= shipped, sorted(wanted - shipped)[:10]
    assert 'model-index.yml' in shipped
    assert not any(n.startswith(('configs/', 'tools/', 'tests/')) for n in names)
    assert any(n.endswith('.dist-info/METADATA') for n in names)
    assert any(n.endswith('.dist-info/LICENSE') or '/licenses/LICENSE' in n for n in names)


SCRIPT = textwrap.dedent('''
    import json, os, os.path as osp, subprocess, sys
    checkout = sys.argv[1]
    env_dir = osp.abspath(sys.prefix)  # the environment may live inside the checkout


    def in_source_tree(path):
        path = osp.abspath(path or '.')
        inside = path == checkout or path.startswith(checkout + osp.sep)
        return inside and not (path == env_dir or path.startswith(env_dir + osp.sep))


    # nothing of the source tree is importable: not the checkout, not its editable install
    sys.path[:] = [p for p in sys.path if not in_source_tree(p)]
    import mmscope
    from mmscope.utils import config_root
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    res = dict(mmscope=mmscope.__file__, config_root=config_root())
    cfg = Config.fromfile('user_cfg.py')
    res['backbone'] = cfg.model.backbone.type
    res['drop_path_rate'] = cfg.model.backbone.drop_path_rate
    from mmpretrain.registry import MODELS
    import torch
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    with torch.no_grad():
        res['logits'] = list(model(torch.zeros(1, 3, 64, 64), mode='tensor').shape)
    # a released-layout checkpoint, converted by the shipped tool
    from mmscope.models.family import get_family
    family = get_family('scopevit')
    sd = {family.key_rules.mmscope_to_official_key(k): v.clone()
          for k, v in model.state_dict().items()}
    torch.save({'state_dict': sd}, 'released.pth')
    tool = osp.join(osp.dirname(mmscope.__file__), '.mim', 'tools', 'model_converters',
                    'official_to_mmscope.py')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, tool, 'released.pth', 'converted.pth'],
                         capture_output=True, text=True, env=env)
    res['convert_rc'], res['convert_out'] = out.returncode, out.stdout + out.stderr
    loaded = torch.load('converted.pth', weights_only=True)['state_dict']
    res['same_weights'] = all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    # our model names, from the installed metafiles, in each library's own entry point
    import matplotlib
    import numpy as np
    photo = osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')
    from mmpretrain import ImageClassificationInferencer, get_model, list_models
    res['listed'] = list_models('scopevit*')
    classifier = get_model('scopevit-xt_8xb128_in1k')
    res['cls_config'] = classifier._config.filename
    torch.save({'state_dict': classifier.state_dict()}, 'cls.pth')
    out = ImageClassificationInferencer('scopevit-xt_8xb128_in1k', pretrained='cls.pth',
                                        device='cpu')(photo)[0]
    res['cls_scores'] = len(out['pred_scores'])
    from mmscope.apis import build_model
    from mmscope.utils.model_index import model_config
    from mmdet.apis import DetInferencer
    from mmseg.apis import MMSegInferencer
    from mmpose.apis import MMPoseInferencer
    for name, make, read in (
            ('retinanet_scopevit-xt_fpn_1x_coco',
             lambda w: DetInferencer(name, weights=w, device='cpu', show_progress=False),
             lambda inf: len(inf(photo, pred_score_thr=0.)['predictions'][0]['labels'])),
            ('fpn_scopevit-xt_8xb4-80k_ade20k-512x512',
             lambda w: MMSegInferencer(name, weights=w, device='cpu'),
             lambda inf: list(np.shape(inf(photo)['predictions']))),
            ('td-hm_scopevit-xt_8xb32-210e_coco-256x192',
             lambda w: MMPoseInferencer(pose2d=name, pose2d_weights=w,
                                        det_model='whole_image', device='cpu'),
             lambda inf: list(np.shape(next(inf(photo))['predictions'][0][0]['keypoints'])))):
        from mmengine.config import Config
        torch.save({'state_dict': build_model(Config.fromfile(model_config(name))).state_dict()},
                   'w.pth')
        inferencer = make('w.pth')
        res[name] = dict(config=inferencer.cfg.filename if hasattr(inferencer, 'cfg') else
                         inferencer.inferencer.cfg.filename, output=read(inferencer))
    # timm: the released names, built from the installed configs; the released checkpoint
    # above loads as it is
    import timm
    import mmscope.timm  # noqa: F401
    net = timm.create_model('scopevit_xtiny', pretrained=True, num_classes=7,
                            pretrained_cfg_overlay=dict(file='released.pth')).eval()
    with torch.no_grad():
        res['timm_same_logits'] = bool(torch.equal(
            net(torch.ones(1, 3, 64, 64)), model.eval()(torch.ones(1, 3, 64, 64), mode='tensor')))
    res['from_checkout'] = sorted(
        name for name, m in list(sys.modules.items())
        if getattr(m, '__file__', None) and in_source_tree(m.__file__))
    print('RESULT ' + json.dumps(res))
''')

USER_CONFIG = textwrap.dedent('''
    _base_ = ['mmscope::scopevit/scopevit-xt_8xb128_in1k.py']
    model = dict(backbone=dict(drop_path_rate=0.3), head=dict(num_classes=7))
''')


def test_installed_wheel_works_outside_the_source_tree(installed):
    site, _, tmp = installed
    work = tmp / 'work'
    work.mkdir()
    (work / 'user_cfg.py').write_text(USER_CONFIG)
    (work / 'check.py').write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, 'check.py', ROOT],
                         cwd=str(work),
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith('RESULT ')][-1]
    res = json.loads(line[len('RESULT '):])
    assert res['mmscope'].startswith(str(site) + osp.sep)
    assert res['config_root'] == osp.join(str(site), 'mmscope', '.mim', 'configs')
    assert res['backbone'] == 'mmscope.ScopeViT' and res['drop_path_rate'] == 0.3
    assert res['logits'] == [1, 7]
    assert res['convert_rc'] == 0, res['convert_out']
    assert 'variant: xtiny' in res['convert_out'] and res['same_weights']
    assert res['from_checkout'] == []
    assert res['timm_same_logits']
    installed = osp.join(str(site), 'mmscope', '.mim', 'configs', 'scopevit')
    assert res['listed'] == [
        'scopevit-s_8xb128_in1k', 'scopevit-t_8xb128_in1k', 'scopevit-xt_8xb128_in1k'
    ]
    assert res['cls_config'] == osp.join(installed, 'scopevit-xt_8xb128_in1k.py')
    assert res['cls_scores'] == 1000
    for name, output in (('retinanet_scopevit-xt_fpn_1x_coco',
                          None), ('fpn_scopevit-xt_8xb4-80k_ade20k-512x512', [600, 512]),
                         ('td-hm_scopevit-xt_8xb32-210e_coco-256x192', [17, 2])):
        assert res[name]['config'] == osp.join(installed, name + '.py'), res[name]
        assert (res[name]['output'] > 0) if output is None else \
            (res[name]['output'] == output), res[name]


def test_mmscope_bases_in_this_process(tmp_path):
    """``mmscope::`` bases resolve after ``import mmscope``; the dicts they bring keep the
    scope of the library that runs them; a wrong name says what exists; unregistering
    gives mmengine's own refusal back."""
    from mmengine.config import Config

    import mmscope  # noqa: F401
    from mmscope.utils import (config_bases_registered, get_config_path, register_config_bases,
                               unregister_config_bases)
    assert config_bases_registered()
    user = tmp_path / 'det.py'
    user.write_text("_base_ = ['mmscope::scalablevit/retinanet_scalablevit-s_fpn_1x_coco.py']\n"
                    "train_dataloader = dict(batch_size=1)\n")
    cfg = Config.fromfile(str(user))
    assert cfg.default_scope == 'mmdet' and cfg.model.type == 'RetinaNet'
    assert cfg.model.get('_scope_') in (None, 'mmdet')
    assert cfg.model.backbone.type == 'mmscope.ScalableViT'
    assert cfg.train_dataloader.batch_size == 1
    assert get_config_path('mmscope::scopevit/scopevit-t_8xb128_in1k.py') == get_config_path(
        'scopevit/scopevit-t_8xb128_in1k.py')
    with pytest.raises(FileNotFoundError, match='scopevit/ holds'):
        get_config_path('scopevit/no-such-config.py')
    with pytest.raises(FileNotFoundError, match='config folders are'):
        get_config_path('nowhere/x.py')
    with pytest.raises(FileNotFoundError):
        get_config_path('../setup.py')  # nothing outside the config root
    unregister_config_bases()
    try:
        assert not config_bases_registered()
        with pytest.raises(AssertionError, match='does not support to load mmscope'):
            Config.fromfile(str(user))
    finally:
        register_config_bases()
    register_config_bases()  # idempotent
    assert Config.fromfile(str(user)).model.type == 'RetinaNet'
