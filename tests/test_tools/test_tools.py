"""tools/train.py and tools/test.py end to end on CPU, on data this test generates; the
tools are thin command lines; the params / FLOPs functions behind get_flops.py."""
import os
import os.path as osp
import subprocess

import pytest
import torch
from tool_helpers import ROOT, TOOLS, _checkpoint, _run, _tool


@pytest.mark.slow
def test_train_resume_and_test(workspace):
    root, cfg = workspace
    work_dir = osp.join(root, 'work')
    # stop after 3 iterations, then resume to 6: the iteration count continues
    code, log = _run(
        osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir, '--cfg-options',
        'train_cfg.max_iters=3', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None')
    assert code == 0, log[-4000:]
    assert osp.isfile(osp.join(work_dir, 'iter_3.pth'))
    code, log = _run(osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir, '--resume')
    assert code == 0, log[-4000:]
    assert 'resumed epoch: 0, iter: 3' in log.replace('Iter', 'iter'), log[-4000:]
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
    assert 'accuracy/top1' in log

    out_pkl = osp.join(root, 'preds.pkl')
    code, log = _run(
        osp.join(TOOLS, 'test.py'), cfg, osp.join(work_dir, 'iter_6.pth'), '--work-dir',
        osp.join(root, 'test'), '--out', out_pkl)
    assert code == 0, log[-4000:]
    assert 'accuracy/top1' in log
    import pickle
    with open(out_pkl, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 8 and 'pred_score' in preds[0]


@pytest.mark.slow
def test_amp_on_the_cpu(workspace):
    """``--amp`` on a machine without CUDA: bf16 autocast of backbone and neck in
    training and testing (said in the log), fp16 refused with the way to bf16, and
    ``--amp-dtype`` alone refused."""
    if torch.cuda.is_available():
        pytest.skip('checks the CPU path of --amp; this machine has CUDA')
    root, cfg = workspace
    work_dir = osp.join(root, 'amp')
    code, log = _run(
        osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir, '--amp', '--cfg-options',
        'train_cfg.max_iters=3', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None')
    assert code == 0, log[-4000:]
    assert 'mixed precision: backbone+neck under bf16 autocast on the CPU' in log
    code, log = _run(
        osp.join(TOOLS, 'test.py'), cfg, osp.join(work_dir, 'iter_3.pth'), '--work-dir',
        osp.join(root, 'amp_test'), '--amp')
    assert code == 0, log[-4000:]
    assert 'mixed precision: backbone+neck under bf16' in log and 'accuracy/top1' in log
    code, log = _run(
        osp.join(TOOLS, 'train.py'), cfg, '--work-dir', work_dir, '--amp', '--amp-dtype', 'fp16')
    assert code != 0 and 'fp16 mixed precision is not supported on the CPU' in log
    assert 'use bf16' in log
    code, log = _run(
        osp.join(TOOLS, 'test.py'), cfg, osp.join(work_dir, 'iter_3.pth'), '--amp-dtype', 'bf16')
    assert code != 0 and '--amp-dtype chooses the dtype of --amp: add --amp' in log


def test_wrong_scope_is_refused(tmp_path):
    cfg = tmp_path / 'bad.py'
    cfg.write_text("default_scope = 'mmocr'\n")
    code, log = _run(osp.join(TOOLS, 'train.py'), str(cfg))
    assert code != 0
    from mmscope.apis import LIBRARIES
    assert "default_scope='mmocr'" in log and str(sorted(LIBRARIES)) in log


def test_missing_config_and_checkpoint_are_clear(tmp_path, workspace):
    _, cfg = workspace
    code, log = _run(osp.join(TOOLS, 'train.py'), str(tmp_path / 'nope.py'))
    assert code != 0 and 'config file not found' in log
    code, log = _run(osp.join(TOOLS, 'test.py'), cfg, str(tmp_path / 'nope.pth'))
    assert code != 0 and 'checkpoint not found' in log


def test_test_tool_show_dir_is_inside_the_work_dir(workspace, tmp_path, monkeypatch):
    """--show-dir DIR (relative) draws into WORK_DIR/DIR, not under the current folder;
    the model's own checkpoint is tested (metrics reported)."""
    root, cfg = workspace
    ckpt = _checkpoint(cfg, str(tmp_path / 'own.pth'))
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    work_dir = str(tmp_path / 'w')
    metrics = _tool('test')([cfg, ckpt, '--work-dir', work_dir, '--show-dir', 'vis'])
    assert 'accuracy/top1' in metrics
    drawn = [f for _, _, files in os.walk(osp.join(work_dir, 'vis')) for f in files]
    # mmpretrain names a picture after the image's file name: 4 names in 2 class folders
    assert len(drawn) == 4 and all(f.endswith('.png') for f in drawn)
    assert os.listdir(cwd) == []


def test_resume_from_weights_only_is_refused(workspace, tmp_path):
    """--resume needs a training state; a weights-only file gets the way to start from
    it (load_from) instead of mmengine's KeyError: 'epoch'."""
    root, cfg = workspace
    ckpt = _checkpoint(cfg, str(tmp_path / 'weights.pth'))
    with pytest.raises(
            ValueError,
            match=r'weights.pth: the file holds no training state '
            r'to resume \(missing: meta.epoch, meta.iter, message_hub, optimizer\)'
            r'.*--cfg-options load_from=.*weights.pth'):
        _tool('train')([cfg, '--resume', ckpt, '--work-dir', str(tmp_path / 'w')])
    with pytest.raises(FileNotFoundError, match='--resume checkpoint not found'):
        _tool('train')([cfg, '--resume', str(tmp_path / 'nope.pth')])


def test_dist_scripts_usage():
    for script, nargs in (('dist_train.sh', 2), ('dist_test.sh', 3), ('slurm_train.sh', 4),
                          ('slurm_test.sh', 4)):
        proc = subprocess.run(['bash', osp.join(TOOLS, script)], capture_output=True, text=True)
        assert proc.returncode == 2 and 'usage:' in proc.stderr, script


@pytest.mark.parametrize('count', ['0', 'two', '1.5'])
def test_dist_scripts_refuse_a_process_count_that_is_none(count):
    """tools/dist_train.sh CONFIG 0 said only `AssertionError` (torchrun's)."""
    for script, args in (('dist_train.sh', ['cfg.py',
                                            count]), ('dist_test.sh', ['cfg.py', 'c.pth', count])):
        proc = subprocess.run(['bash', osp.join(TOOLS, script), *args],
                              capture_output=True,
                              text=True)
        assert proc.returncode == 2, script
        assert proc.stderr == (f"error: NUM_PROCS_PER_NODE must be a positive integer, got "
                               f"'{count}'\n"), script


def test_shell_tools_find_the_project_venv(tmp_path):
    """In a new shell (no environment activated, no PYTHON), tools/*.sh run the
    project's .venv/bin/python; an activated environment or PYTHON wins."""
    import shutil
    tools = tmp_path / 'tools'
    tools.mkdir()
    for name in ('dist_train.sh', 'python_env.sh'):
        shutil.copy(osp.join(TOOLS, name), tools / name)
    fake = tmp_path / '.venv' / 'bin' / 'python'
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "venv python $*"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'VIRTUAL_ENV')}
    cmd = ['bash', str(tools / 'dist_train.sh'), 'cfg.py', '2']
    out = subprocess.run(cmd, capture_output=True, text=True, env=env).stdout
    assert out.startswith('venv python -m torch.distributed.run ') and '--nproc_per_node=2' in out
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(env, PYTHON=str(fake),
                                                      VIRTUAL_ENV='/x')).stdout
    assert out.startswith('venv python')
    path_python = tmp_path / 'bin' / 'python'  # an activated env's `python`, on PATH
    path_python.parent.mkdir()
    path_python.write_text('#!/bin/sh\necho "path python $*"\n')
    path_python.chmod(0o755)
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=dict(env, VIRTUAL_ENV='/x', PATH=f'{path_python.parent}:{env["PATH"]}')).stdout
    assert out.startswith('path python -m torch.distributed.run ')


# ------------------------------------------------------------------- tools are thin
MAX_TOOL_LINES = 300


def _tool_files():
    found = []
    for folder in ('tools', 'demo'):
        for d, _, files in os.walk(osp.join(ROOT, folder)):
            found += [osp.relpath(osp.join(d, f), ROOT) for f in files if f.endswith('.py')]
    return sorted(found)


def test_tools_are_thin_command_lines():
    """No file of tools/ or demo/ edits sys.path, imports another tool (by module name or
    by file) or holds more than MAX_TOOL_LINES lines: their logic lives in the package."""
    import ast
    files = _tool_files()
    assert 'tools/analysis_tools/get_flops.py' in files and 'demo/image_demo.py' in files
    tool_names = {osp.splitext(osp.basename(f))[0] for f in files}
    problems = []
    for rel in files:
        with open(osp.join(ROOT, rel)) as f:
            text = f.read()
        if text.count('\n') > MAX_TOOL_LINES:
            problems.append(f'{rel}: {text.count(chr(10))} lines')
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == 'path' and \
                    isinstance(node.value, ast.Name) and node.value.id == 'sys':
                problems.append(f'{rel}:{node.lineno}: uses sys.path')
            elif isinstance(node, ast.Import):
                names = [a.name.split('.')[0] for a in node.names]
                problems += [
                    f'{rel}:{node.lineno}: imports the tool {n}' for n in names if n in tool_names
                ]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                    node.module.split('.')[0] in tool_names:
                problems.append(f'{rel}:{node.lineno}: imports the tool {node.module}')
            elif isinstance(node,
                            ast.Attribute) and node.attr in ('spec_from_file_location', 'run_path'):
                problems.append(f'{rel}:{node.lineno}: loads a file as a module')
    assert not problems, problems


# ------------------------------------------------------------------- complexity (get_flops)
class _ToyModel(torch.nn.Module):
    """A 1x1 convolution with the ``forward(inputs, ..., mode)`` of OpenMMLab models."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1, bias=False)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        assert mode == 'tensor'
        self.seen = data_samples
        return self.conv(inputs)


def test_count_params_and_flops_of_a_toy_model():
    from mmscope.apis import get_library
    from mmscope.apis.complexity import count_flops, count_params
    model = _ToyModel()
    assert count_params(model) == 12
    # one multiply-add per weight and output pixel
    assert count_flops(model, 'cls', (8, 6)) == 12 * 8 * 6
    assert count_flops(model, 'mmseg', (8, 8)) == 12 * 64
    assert count_flops(model, get_library('mmpretrain'), (4, 4)) == 12 * 16
    assert model.forward.__func__ is _ToyModel.forward  # restored after counting
    with pytest.raises(ValueError, match='unknown library or task'):
        count_flops(model, 'ocr', (8, 8))


def test_count_flops_passes_the_library_tensor_kwargs():
    from mmscope.apis.complexity import count_flops
    model = _ToyModel()
    count_flops(model, 'det', (32, 16))
    (sample, ) = model.seen
    assert sample.metainfo['batch_input_shape'] == (32, 16)


def test_default_shape_and_measure_read_the_library_rows():
    from mmengine.config import Config

    from mmscope.apis.complexity import default_shape, measure, normalize_shape
    crop = dict(dataset=dict(pipeline=[dict(type='CenterCrop', crop_size=192)]))
    cls = Config(dict(default_scope='mmpretrain', test_dataloader=crop))
    assert default_shape(cls) == (192, 192)
    assert default_shape(Config(dict(default_scope='mmpretrain'))) == (224, 224)
    assert default_shape(Config(dict(default_scope='mmdet'))) == (1280, 800)
    assert default_shape(Config(dict(default_scope='mmseg'))) == (512, 512)
    assert normalize_shape([64]) == (64, 64) and normalize_shape((64, 32)) == (64, 32)
    assert normalize_shape(None) is None
    with pytest.raises(ValueError, match='--shape takes H or H W'):
        normalize_shape([1, 2, 3])
    res = measure(cls, shape=[8], model=_ToyModel())
    assert res == dict(task='cls', shape=(8, 8), params=12, flops=12 * 64)
    assert measure(cls, model=_ToyModel(), flops=False)['flops'] is None
    with pytest.raises(ValueError, match="default_scope='mmocr'"):
        measure(Config(dict(default_scope='mmocr')), model=_ToyModel())


def test_measure_refuses_a_size_the_backbone_refuses():
    """get_flops.py CONFIG --shape 16 printed `FLOPs: 0.05 G` (the counter traces the
    model, where the backbone cannot check the size)."""
    from mmscope.apis import build_model, load_config
    from mmscope.apis.complexity import measure
    cfg = load_config(osp.join(ROOT, 'configs', 'scopevit', 'scopevit-xt_8xb128_in1k.py'))
    model = build_model(cfg)
    for flops in (True, False):
        with pytest.raises(
                ValueError,
                match=r'ScopeViT needs \(B, C, H, W\) inputs of at least '
                r'32x32 \(H, W >= 32\), got shape \(1, 3, 16, 40\)'):
            measure(cfg, shape=(16, 40), flops=flops, model=model)


def test_collect_configs_and_table(tmp_path):
    from mmscope.apis.complexity import collect_configs, fmt_g, fmt_m, table
    for rel in ('a/x_in1k.py', 'a/_base_/base.py', 'b/y_coco.py', '.hidden/z.py', 'a/n.txt'):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text('')
    root = str(tmp_path)
    assert collect_configs(root) == [
        osp.join(root, 'a', 'x_in1k.py'),
        osp.join(root, 'b', 'y_coco.py')
    ]
    assert collect_configs(root, 'coco') == [osp.join(root, 'b', 'y_coco.py')]
    rows = [
        dict(
            config=osp.join(root, 'a', 'x_in1k.py'),
            task='cls',
            shape=(256, 256),
            params=5_290_000,
            flops=1_450_000_000),
        dict(
            config=osp.join(root, 'b', 'y_coco.py'),
            task='det',
            shape=(1280, 800),
            params=25_060_000,
            flops=None)
    ]
    assert table(rows, root).splitlines() == [
        '| Config | Task | Input (HxW) | Params (M) | FLOPs (G) |',
        '| --- | --- | --- | ---: | ---: |', '| a/x_in1k.py | cls | 256x256 | 5.29 | 1.45 |',
        '| b/y_coco.py | det | 1280x800 | 25.06 | - |'
    ]
    assert table(rows[:1]).splitlines()[2].startswith(f'| {rows[0]["config"]} |')
    assert (fmt_m(None), fmt_g(None)) == ('-', '-')
    assert (fmt_m(1234567), fmt_g(2.5e9)) == ('1.23', '2.50')


def test_get_flops_cli_params_only():
    cfg = osp.join('configs', 'scopevit', 'scopevit-xt_8xb128_in1k.py')
    code, log = _run(osp.join(TOOLS, 'analysis_tools', 'get_flops.py'), cfg, '--params-only')
    assert code == 0, log[-3000:]
    line = '=' * 40
    assert f'{line}\nConfig: {cfg}\nTask: cls (mmpretrain)\nInput shape: 1x3x256x256\n' \
        f'FLOPs: - G\nParams: 5.29 M\n{line}' in log
    code, log = _run(osp.join(TOOLS, 'analysis_tools', 'get_flops.py'))
    assert code == 2 and 'give either a CONFIG or --all' in log
