"""The converter scripts as users run them: ``tools/model_converters/official_to_mmscope.py``
and ``publish_model.py``."""
import glob
import os
import os.path as osp
import runpy
import sys
from collections import OrderedDict

import torch
from converter_helpers import CONVERTERS, assert_same_tensors, load

import mmscope  # noqa: F401  (safe checkpoint loading in mmengine)
from mmscope.converters import sha256_of


# -------------------------------------------------------------------------------------
# the actual scripts
# -------------------------------------------------------------------------------------
def run_script(capsys, monkeypatch, name, *argv):
    """Run ``tools/model_converters/<name>`` as ``__main__`` (in this interpreter, which
    saves the start-up of a new one); returns (exit code, stdout, stderr)."""
    script = osp.join(CONVERTERS, name)
    monkeypatch.setattr(sys, 'argv', [script, *map(str, argv)])
    try:
        runpy.run_path(script, run_name='__main__')
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_command_line_scripts(tmp_path, capsys, monkeypatch, xt_official):
    src, _ = xt_official
    dst = str(tmp_path / 'dst.pth')
    script = 'official_to_mmscope.py'
    # the family is found from the keys
    code, out, err = run_script(capsys, monkeypatch, script, src, dst)
    assert code == 0, out + err
    for line in ('ScopeViT official -> mmscope (classifier)', 'variant: xtiny', 'tensors: 472',
                 'params: ', f'output: {dst}', f'sha256: {sha256_of(dst)}'):
        assert line in out
    code, out, err = run_script(capsys, monkeypatch, script, src, dst)
    assert code == 1 and 'exists' in err
    code, out, err = run_script(capsys, monkeypatch, script, src, str(tmp_path / 'other.pth'),
                                '--family', 'scalablevit')
    assert code == 1 and 'matches no ScalableViT variant' in err
    # back to the official layout: the family is found from our keys
    back = str(tmp_path / 'back.pth')
    code, out, err = run_script(capsys, monkeypatch, script, dst, back, '--to-official')
    assert code == 0 and 'ScopeViT mmscope -> official (classifier)' in out, out + err
    foreign = str(tmp_path / 'foreign.pth')
    torch.save({'state_dict': {'conv.weight': torch.zeros(2), 'fc.bias': torch.zeros(2)}}, foreign)
    code, out, err = run_script(capsys, monkeypatch, script, foreign, str(tmp_path / 'f.pth'))
    assert code == 1 and 'cannot tell the model family' in err and '--family' in err
    assert not osp.exists(tmp_path / 'f.pth')
    code, out, err = run_script(capsys, monkeypatch, script, '--help')
    assert code == 0 and '--to-official' in out
    assert 'small (s)' in out and 'xtiny (xt/x-tiny)' in out


# -------------------------------------------------------------------------------------
# publish_model
# -------------------------------------------------------------------------------------
def test_publish_model(tmp_path, capsys, monkeypatch):
    from mmengine.logging import HistoryBuffer
    losses = HistoryBuffer()
    for value in (1.0, 0.5):
        losses.update(value)
    sd = OrderedDict(w=torch.randn(3, 4), b=torch.randn(3))
    train = str(tmp_path / 'epoch_300.pth')
    torch.save(
        {
            'meta': {
                'epoch': 300,
                'iter': 1000,
                'seed': 0,
                'cfg': 'model = dict()',
                'hook_msgs': {
                    'best_score': 0.8
                },
                'dataset_meta': {
                    'classes': ['a', 'b']
                }
            },
            'state_dict': sd,
            'optimizer': {
                'state': {
                    0: {
                        'exp_avg': torch.ones(3)
                    }
                },
                'param_groups': [{
                    'lr': 1
                }]
            },
            'param_schedulers': [{
                'last_epoch': 300
            }],
            'message_hub': {
                'log_scalars': {
                    'train/loss': losses
                }
            },
        }, train)
    out = str(tmp_path / 'scopevit-xt_in1k.pth')
    code, stdout, stderr = run_script(capsys, monkeypatch, 'publish_model.py', train, out)
    assert code == 0, stdout + stderr
    published = glob.glob(str(tmp_path / 'scopevit-xt_in1k-*.pth'))
    assert len(published) == 1
    digest = sha256_of(published[0])
    assert osp.basename(published[0]) == f'scopevit-xt_in1k-{digest[:8]}.pth'
    assert digest in stdout
    ckpt = load(published[0])
    assert set(ckpt) == {'state_dict', 'meta'}  # no optimizer/schedulers/message hub
    assert_same_tensors(ckpt['state_dict'], sd)
    assert ckpt['meta']['dataset_meta'] == {'classes': ['a', 'b']}
    assert ckpt['meta']['epoch'] == 300 and 'hook_msgs' not in ckpt['meta']
    assert sorted(os.listdir(tmp_path)) == sorted(['epoch_300.pth', osp.basename(published[0])])
    # the same output again: refused without --force, replaced with it
    code, stdout, stderr = run_script(capsys, monkeypatch, 'publish_model.py', train, out)
    assert code == 1 and 'exists' in stderr
    assert sorted(os.listdir(tmp_path)) == sorted(['epoch_300.pth', osp.basename(published[0])])
    code, stdout, stderr = run_script(capsys, monkeypatch, 'publish_model.py', train, out,
                                      '--force')
    assert code == 0, stderr
    assert glob.glob(str(tmp_path / 'scopevit-xt_in1k-*.pth')) == published
