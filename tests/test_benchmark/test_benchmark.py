"""``tools/analysis_tools/benchmark.py`` and ``benchmark_tables.py`` (no timings asserted).

The tool runs each case in a subprocess and writes JSON/CSV; the markdown tables of
docs/benchmarks.md are printed from that JSON. The released-code comparison
(``--vs-official``) is checked against stand-ins for the released model files, written
here with the released interface (factory functions, ``forward_features``, ``head``), so
that it runs without the released code, timm or einops.
"""
import json
import math
import os.path as osp
import statistics
import subprocess
import sys
import textwrap

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py')
TABLES = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_tables.py')


def run(args, env=None, timeout=600):
    import os
    full_env = dict(os.environ)
    full_env.pop('MMSCOPE_OFFICIAL_CODE', None)
    full_env.pop('MMSCOPE_OFFICIAL_DEPS', None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable] + args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env)


def table_row(stdout, model):
    rows = [line for line in stdout.splitlines() if line.startswith(f'| {model} ')]
    assert len(rows) == 1, stdout
    return [c.strip() for c in rows[0].strip('|').split('|')]


def test_benchmark_cli_writes_json(tmp_path):
    out = tmp_path / 'bench.json'
    csv_out = tmp_path / 'bench.csv'
    proc = run([
        BENCH, '--model', 'scopevit-xt', '--sizes', '64', '--batch-sizes', '1', '--modes', 'infer',
        '--warmup', '0', '--repeat', '1', '--threads', '1', '--json',
        str(out), '--csv',
        str(csv_out), '--peak-tflops', '1'
    ])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'speed-up' in proc.stdout
    data = json.loads(out.read_text())
    for key in ('command', 'date', 'torch', 'cpu_count', 'load_before', 'load_after'):
        assert key in data['meta'], key
    rows = data['results']
    assert [r['attn'] for r in rows] == ['fused', 'reference']
    for row in rows:
        assert row['status'] == 'ok', row.get('error')
        for key in ('model', 'size', 'batch', 'mode', 'images_per_s', 'median_s', 'min_s', 'max_s',
                    'spread_pct', 'cpu_median_s', 'peak_mem_mb', 'mem_method', 'params_m', 'gflops',
                    'mfu', 'times_s'):
            assert key in row, key
        assert row['size'] == '64x64' and row['mode'] == 'infer'
        assert len(row['times_s']) == 1
    pair = data['ratios']['attention']
    assert len(pair) == 1 and {
        'speedup', 'memory_ratio', 'fused_images_per_s', 'reference_images_per_s'
    } <= set(pair[0])
    assert data['ratios']['official'] == []
    assert csv_out.read_text().splitlines()[0].startswith('model,size,batch,mode,attn')
    # the markdown tables of docs/benchmarks.md are made from this JSON
    tables = run([TABLES, 'attention', str(out)], timeout=120)
    assert tables.returncode == 0, tables.stderr
    cells = table_row(tables.stdout, 'scopevit-xt')
    ratio = pair[0]['reference_peak_mb'] / pair[0]['fused_peak_mb']
    assert cells[:4] == ['scopevit-xt', '64x64', '1', 'infer']
    assert cells[-1] == f'{ratio:.1f}x'
    speedup = pair[0].get('paired_speedup') or pair[0]['speedup']
    assert cells[6] == f'**{speedup:.2f}x**'
    assert '--json' in tables.stdout  # the command that produced the numbers


# Stand-ins for the released files: the released factories and ``forward_features``; each
# forward appends the input shape to $FAKE_LOG so the test can count the steps that ran.
FAKE_SCALABLEVIT = '''
import os
import torch.nn as nn

class ScalableViT(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 4, stride=4)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 1000)   # dropped by the benchmark

    def forward_features(self, x):
        with open(os.environ['FAKE_LOG'], 'a') as f:
            f.write('scalablevit %s\\n' % list(x.shape))
        return self.norm(self.stem(x).flatten(2).transpose(1, 2)).mean(1)

    def forward(self, x):
        raise AssertionError('the benchmark must call forward_features')

def scalable_vit_small(pretrained=False, **kwargs):
    print('the released code prints while building')
    return ScalableViT(width=8, **kwargs)
'''

FAKE_SCOPEVIT = '''
import torch.nn as nn

class ScopeViT(nn.Module):
    def __init__(self, arch='tiny', num_classes=10, fork_feat=False):
        super().__init__()
        self.fork_feat, self.num_classes = fork_feat, num_classes
        self.stem = nn.Conv2d(3, 4, 4, stride=4)
        self.head = nn.Identity() if fork_feat else nn.Linear(4, num_classes)

    def forward_features(self, x):
        x = self.stem(x)
        return [x, x, x, x] if self.fork_feat else x

def scopevit_tiny(pretrained=False, **kwargs):
    return ScopeViT(arch='tiny', **kwargs)
'''


@pytest.fixture
def fake_official(tmp_path):
    folder = tmp_path / 'released'
    folder.mkdir()
    (folder / 'scalablevit.py').write_text(textwrap.dedent(FAKE_SCALABLEVIT))
    (folder / 'scopevit.py').write_text(textwrap.dedent(FAKE_SCOPEVIT))
    return folder


def test_vs_official_pairs_mmscope_with_released_code(tmp_path, fake_official):
    out, log = tmp_path / 'vs.json', tmp_path / 'calls.log'
    proc = run([
        BENCH, '--model', 'scalablevit-s', '--vs-official', '--attn', 'fused', '--official-code',
        str(fake_official), '--sizes', '64', '--batch-sizes', '2', '--modes', 'infer', '--warmup',
        '1', '--repeat', '2', '--threads', '1', '--json',
        str(out)
    ],
               env={'FAKE_LOG': str(log)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = {(r['model'], r['attn']): r for r in data['results']}
    assert set(rows) == {('scalablevit-s', 'fused'), ('official:scalablevit-small', '-')}
    released = rows[('official:scalablevit-small', '-')]
    assert released['status'] == 'ok' and released['library'] == 'official'
    assert released['twin'] == rows[('scalablevit-s', 'fused')]['twin'] == 'scalablevit-small'
    # backbone only: the 1000-way head of the stand-in is not counted (8*3*16+8 + 2*8)
    assert released['params_m'] * 1e6 == pytest.approx(8 * 3 * 16 + 8 + 16)
    paired = data['paired']
    assert [p['attn'] for p in paired] == ['vs-official']
    assert len(paired[0]['paired_speedups']) == 2
    assert set(paired[0]['paired_times_s']) == {'mmscope', 'official'}
    # the released forward ran: priming + warm-up + timed steps in its own case, and
    # priming + warm-up + one step per round in the alternating run
    calls = log.read_text().splitlines()
    assert calls == ['scalablevit [2, 3, 64, 64]'] * ((1 + 1 + 2) + (1 + 1 + 2))
    (ratio, ) = data['ratios']['official']
    mine = rows[('scalablevit-s', 'fused')]
    assert ratio['model'] == 'scalablevit-s'
    assert ratio['official_model'] == 'official:scalablevit-small'
    assert ratio['speedup'] == pytest.approx(mine['images_per_s'] / released['images_per_s'])
    assert ratio['paired_speedup'] == pytest.approx(statistics.median(paired[0]['paired_speedups']))
    assert 'vs the released code' in proc.stdout
    tables = run([TABLES, 'official', str(out)], timeout=120)
    assert tables.returncode == 0, tables.stderr
    cells = table_row(tables.stdout, 'scalablevit-s')
    assert cells[:4] == ['scalablevit-s', '64x64', '2', 'infer']
    assert f"**{ratio['paired_speedup']:.2f}x**" in cells


def test_official_scopevit_dense_outputs(fake_official):
    """``--out-indices 0 1 2 3`` builds the released ScopeViT in its ``fork_feat`` mode;
    other index sets, and any for the released ScalableViT, are refused clearly."""
    from mmscope.benchmark.specs import build_official as build
    cfg = dict(family='scopevit', arch='tiny')
    model = build(cfg, [0, 1, 2, 3], {}, str(fake_official), None)
    assert model.released.fork_feat and len(model(__import__('torch').zeros(1, 3, 32, 32))) == 4
    assert not build(cfg, None, {}, str(fake_official), None).released.fork_feat
    with pytest.raises(ValueError, match='last stage only or all four stages'):
        build(cfg, [1, 2], {}, str(fake_official), None)
    with pytest.raises(ValueError, match='released scalablevit code outputs the last stage'):
        build(dict(family='scalablevit', arch='small'), [0, 1, 2, 3], {}, str(fake_official), None)


@pytest.mark.parametrize('args,message', [
    (['--model', 'official:scalablevit-s'], 'MMSCOPE_OFFICIAL_CODE'),
    (['--model', 'scalablevit-s', '--vs-official'], 'scalablevit.py, a copy of '
     'image_classification/models/scalablevit.py from github.com/Yangr116/ScalableViT'),
    (['--model', 'official:scalablevit-x'], "unknown released scalablevit arch 'x'"),
    (['--model', 'mmpretrain:ResNet:50', '--vs-official'], '--vs-official needs at least one'),
])
def test_official_errors_are_clear(args, message):
    proc = run([BENCH, '--sizes', '64', '--repeat', '1'] + args, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr


PROFILE = osp.join(ROOT, 'tools', 'analysis_tools', 'attention_profile.py')


def test_record_attention_calls_sees_every_call():
    import torch

    from mmscope.benchmark.attention_profile import record_attention_calls
    from mmscope.models import layers
    from mmscope.models.backbones import ScalableViT
    model = ScalableViT(arch='small').eval()
    x = torch.randn(1, 3, 64, 64)
    with record_attention_calls() as calls:
        with record_attention_calls() as inner:  # nested: the inner list takes the calls
            layers.scaled_dot_attention(*torch.randn(3, 1, 2, 5, 8))
        with torch.no_grad():
            model(x)
    assert len(inner) == 1 and inner[0]['q'].shape == (1, 2, 5, 8)
    assert len(calls) == sum(model.arch_settings['depths']) == 26
    # SSA of stage 1 at 64x64: 16x16 queries, 2x2 reduced keys; q/k 1.25x wider than v
    ssa = calls[1]
    assert ssa['q'].shape == (1, 2, 256, 40) and ssa['k'].shape == (1, 2, 4, 40)
    assert ssa['v'].shape == (1, 2, 4, 32) and ssa['bias'] is None
    assert ssa['scale'] == pytest.approx(40**-0.5)
    # IWSA of stage 1: 16x16 padded to 21x21, 9 windows of 49 tokens, padded keys masked
    iwsa = calls[0]
    assert iwsa['q'].shape == (9, 2, 49, 32) and iwsa['bias'].dtype == torch.bool
    assert int(iwsa['bias'].sum()) == 16 * 16
    with torch.no_grad():
        model(x)
    assert len(calls) == 26  # nothing recorded outside the context


@pytest.mark.parametrize('mode', ['infer', 'train'])
def test_attention_profile_cli(tmp_path, mode):
    from mmscope.models.layers.dispatch import CPU_SMALL_ATTENTION_MACS
    out = tmp_path / 'profile.json'
    proc = run([
        PROFILE, '--model', 'scalablevit-s', '--size', '64', '--batch', '8', '--mode', mode,
        '--repeat', '1', '--step-repeat', '1', '--threads', '1', '--json',
        str(out)
    ],
               env=dict(MMSCOPE_ATTN_BENCHMARK='0'),
               timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    rows, summary = data['rows'], data['summary']
    assert sum(r['count'] for r in rows) == summary['calls'] == 26
    mixed = [r for r in rows if r['q'][-1] != r['v'][-1]]  # SSA with sr_ratio > 1
    assert [r['count'] for r in mixed] == [1, 1, 10]
    # with the measured dispatch off (MMSCOPE_ATTN_BENCHMARK=0), the CPU rules: calls under
    # CPU_SMALL_ATTENTION_MACS multiply-adds (every SSA call here, at most
    # 8 x 2 x 256 x 4 x 72) run the plain matmuls; the IWSA windows
    # (at least 8 x 8 heads x 49 x 49 x 64 = 9.8M) the flash kernel
    for r in rows:
        macs = math.prod(r['q'][:-1]) * r['k'][-2] * (r['q'][-1] + r['v'][-1])
        assert r['default_kernel'] == ('matmul' if macs < CPU_SMALL_ATTENTION_MACS else 'flash'), r
    assert {r['default_kernel'] for r in mixed} == {'matmul'}
    assert {r['default_kernel'] for r in rows if r['k'][-2] == 49} == {'flash'}
    fused = sum(r['count'] * r['fused_ms'] for r in rows)
    assert summary['attention_fused_ms'] == pytest.approx(fused)
    assert 0 < summary['attention_share'] < 1
    assert summary['predicted_speedup'] == pytest.approx(
        1 + (summary['attention_reference_ms'] - fused) / summary['step_ms'])
    assert '| calls |' in proc.stdout and 'attention share' in proc.stdout
    tables = run([TABLES, 'profile', str(out)], timeout=120)
    assert tables.returncode == 0, tables.stderr
    cells = table_row(tables.stdout, 'scalablevit-s')
    assert cells[:5] == ['scalablevit-s', '64', '8', mode, '26']
    assert cells[-1] == f"**{summary['predicted_speedup']:.3f}x**"


def test_attention_profile_refuses_other_backbones():
    proc = run([PROFILE, '--model', 'mmpretrain:ResNet:18', '--size', '64', '--batch', '1'],
               timeout=300)
    assert proc.returncode == 2
    assert 'not an mmscope backbone' in proc.stderr


def test_benchmark_runtimes_side_by_side(tmp_path):
    """--runtimes: eager and onnxruntime alternating in one worker; per-runtime medians,
    speed-ups against eager and the check of the ONNX outputs against eager."""
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'runtimes.json'
    proc = run([
        BENCH, '--model', 'scopevit-xt', '--sizes', '64x96', '--batch-sizes', '2', '--runtimes',
        'eager', 'onnxruntime', '--warmup', '0', '--repeat', '2', '--threads', '1', '--json',
        str(out)
    ])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data['results'] == []
    (row, ) = data['paired']
    assert row['status'] == 'ok', row.get('error')
    assert row['attn'] == 'runtimes' and row['size'] == '64x96' and row['batch'] == 2
    assert set(row['median_s']) == {'eager', 'onnxruntime'}
    assert all(len(t) == 2 for t in row['runtime_times_s'].values())
    assert row['speedup_median']['eager'] == 1.0
    assert row['rel_err_vs_eager']['onnxruntime'] < 1e-4
    assert 'onnxruntime' in proc.stdout and 'speed-up vs eager' in proc.stdout


# ---------------------------------------------------------------- the package, in process
BENCH_TOOLS = ('benchmark.py', 'attention_profile.py', 'benchmark_tables.py', 'gpu_check.py')


@pytest.mark.parametrize('tool', BENCH_TOOLS)
def test_benchmark_tools_are_thin(tool):
    """The command lines hold no logic of their own: under 300 lines, no ``sys.path``
    edits, no import of another tool (the code is in ``mmscope.benchmark``)."""
    import ast
    path = osp.join(ROOT, 'tools', 'analysis_tools', tool)
    with open(path) as f:
        text = f.read()
    assert len(text.splitlines()) < 300, tool
    tree = ast.parse(text)
    siblings = {osp.splitext(n)[0] for n in BENCH_TOOLS} | {'get_flops'}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == 'path' and \
                isinstance(node.value, ast.Name) and node.value.id == 'sys':
            raise AssertionError(f'{tool} touches sys.path (line {node.lineno})')
        if isinstance(node, ast.Import):
            assert not {a.name.split('.')[0] for a in node.names} & siblings, tool
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and (node.module or '').split('.')[0] not in siblings, tool


def test_model_list_reads_the_family_descriptors():
    """Every ``<family>-<arch>`` spelling of every registered family is in the model list
    and parses to the family's type and canonical arch; the released ones have a twin."""
    from mmscope.apis.libraries import LIBRARIES
    from mmscope.benchmark.specs import library_names, mmscope_models, parse_model, twin_of
    from mmscope.models.family import families
    names = mmscope_models()
    assert {'scopevit-xt', 'scopevit-tiny', 'scalablevit-s', 'scalablevit-large'} <= set(names)
    for fam in families():
        for arch in fam.arch_names():
            assert f'{fam.key}-{arch}' in names
            spec = parse_model(f'{fam.key}-{arch}:drop_path_rate=0.1')
            canonical = fam.canonical_arch(arch)
            assert spec['library'] == 'mmscope'
            assert spec['cfg'] == dict(type=fam.name, arch=canonical, drop_path_rate=0.1)
            twin = twin_of(spec['library'], spec['cfg'])
            if fam.official is not None and canonical in fam.official.factories:
                assert twin == f'{fam.key}-{canonical}'
            else:
                assert twin is None
    assert library_names() == tuple(LIBRARIES) + ('mmscope', )
    assert parse_model('mmpretrain:ResNet:50')['cfg'] == dict(type='ResNet', depth=50)
    assert parse_model('pvtv2-b0')['library'] == 'mmdet'
    with pytest.raises(ValueError, match=r"unknown ScopeViT arch 'q'"):
        parse_model('scopevit-q')


def test_case_matrix_and_ratios():
    """The case matrix of attention modes and with_cp, and the pairing of result rows."""
    from types import SimpleNamespace

    from mmscope.benchmark.cases import build_cases, finish_paired, finish_row, ratios
    options = SimpleNamespace(
        model=['scopevit-xt', 'mmpretrain:ResNet:18'],
        sizes=['cls'],
        batch_sizes=[2],
        modes=['infer', 'train'],
        attn=['fused', 'reference'],
        paired=True,
        paired_repeat=7,
        vs_official=False,
        official_code=None,
        official_deps=None,
        with_cp='both',
        device='cpu',
        dtype='fp32',
        channels_last=False,
        compile=False,
        threads=1,
        warmup=0,
        repeat=3,
        out_indices=None,
        backbone_args='drop_path_rate=0.')
    cases = build_cases(options)
    ours = [c for c in cases if c['model'] == 'scopevit-xt']
    # 2 sizes x (infer: 1 cp + train: 2 cps) x (fused, reference, paired)
    assert len(ours) == 2 * 3 * 3
    assert {c['attn'] for c in cases if c['library'] == 'mmpretrain'} == {'-'}
    assert {c['repeat'] for c in ours if c['attn'] == 'paired'} == {7}
    assert all(c['backbone_args'] == {'drop_path_rate': 0.} for c in cases)
    assert {tuple(c['size']) for c in cases} == {(224, 224), (256, 256)}

    def measured(case, seconds, peak):
        return finish_row(
            case,
            dict(times_s=[seconds] * 3, cpu_times_s=[seconds] * 3, peak_mem_mb=peak,
                 gflops=1.), {}, 10.)

    picked = [c for c in ours if c['size'] == [224, 224] and c['mode'] == 'train']
    rows, paired = [], []
    for c in picked:
        if c['attn'] == 'paired':
            paired.append(
                finish_paired(c, dict(paired_speedups=[1.5, 2.5], paired_cpu_speedups=[1., 3.])))
        else:
            fused = c['attn'] == 'fused'
            rows.append(
                measured(c, 1. if fused else 2.,
                         (10. if fused else 40.) / (2 if c['with_cp'] else 1)))
    assert rows[0]['images_per_s'] == pytest.approx(2.)
    assert rows[0]['mfu'] == pytest.approx(2 * 1e9 * 3 * 2. / 10e12)
    pairs = ratios(rows, paired)
    assert len(pairs['attention']) == 2 and pairs['official'] == []
    for p in pairs['attention']:
        assert p['speedup'] == pytest.approx(2.) and p['memory_ratio'] == pytest.approx(4.)
        assert p['paired_speedup'] == pytest.approx(2.)
    assert {p['attn'] for p in pairs['with_cp']} == {'fused', 'reference'}
    assert all(p['memory_factor'] == pytest.approx(2.) for p in pairs['with_cp'])


def test_worker_reports_a_failed_case():
    """A case that cannot be built is an error result, not a crash of the run."""
    from mmscope.benchmark.worker import RESULT_TAG, run_one
    case = dict(
        spec=dict(name='x', library='mmscope', cfg=dict(type='ScopeViT', arch='xtiny', bogus=1)),
        mode='infer',
        with_cp=False,
        attn='-',
        device='cpu',
        library='mmscope')
    res = run_one(case)
    assert res['status'] == 'error' and res['error'].startswith('TypeError: ')
    assert RESULT_TAG == 'BENCHMARK_RESULT '


@pytest.mark.parametrize('mode', ['infer', 'train'])
def test_bf16_cases_run_under_cpu_autocast(mode):
    """``--dtype bf16`` on the CPU really runs the step under autocast: the Linear layers
    inside the backbone compute in bf16 (fp32 runs them in fp32)."""
    import torch

    from mmscope.benchmark.measure import make_step
    from mmscope.models.backbones import ScopeViT
    for dtype, want in (('bf16', torch.bfloat16), ('fp32', torch.float32)):
        model = ScopeViT(arch='xtiny', out_indices=(3, ))
        seen = []

        def hook(mod, args, out):
            seen.append((out.dtype, torch.is_autocast_enabled('cpu')))

        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.register_forward_hook(hook)
        case = dict(
            mode=mode, channels_last=False, batch=1, size=(64, 64), compile=False, dtype=dtype)
        _, step, _ = make_step(case, model, torch.device('cpu'))
        step()
        assert seen and set(seen) == {(want, dtype == 'bf16')}, (dtype, set(seen))


def test_runtimes_bf16_side_by_side_in_inference_and_training():
    """``--runtimes eager bf16``: fp32 and bf16 autocast alternate in one process, for
    inference and for training steps; the reported error is that of the outputs (of the
    gradients for training) against fp32: small but not zero. Training takes no other
    runtime."""
    from types import SimpleNamespace

    from mmscope.benchmark.cases import build_cases
    from mmscope.benchmark.measure import run_case
    from mmscope.benchmark.runtimes import finish_runtimes
    options = SimpleNamespace(
        model=['scopevit-xt'],
        sizes=['64'],
        batch_sizes=[2],
        modes=['infer', 'train'],
        runtimes=['eager', 'bf16'],
        attn=['fused'],
        paired=False,
        vs_official=False,
        official_code=None,
        official_deps=None,
        with_cp='off',
        device='cpu',
        dtype='fp32',
        channels_last=False,
        compile=False,
        threads=1,
        warmup=0,
        repeat=1,
        out_indices=None,
        backbone_args='drop_path_rate=0.1')
    cases = build_cases(options)
    assert [c['mode'] for c in cases] == ['infer', 'train']
    for case in cases:
        row = finish_runtimes(case, run_case(case))
        assert row['status'] == 'ok' and set(row['median_s']) == {'eager', 'bf16'}
        assert row['rel_err_vs_eager']['eager'] == 0
        err = row['rel_err_vs_eager']
        assert 1e-4 < err['bf16'] < 5e-2, (case['mode'], err)
    options.runtimes = ['eager', 'compile']
    with pytest.raises(ValueError, match=r"--modes train takes \['eager', 'bf16'\]"):
        build_cases(options)


def test_autocast_profile_names_dtypes_and_casts():
    """The per-operator profile: matrix products run in bf16 under autocast, casts are
    counted, and the table says so."""
    from mmscope.benchmark.autocast_profile import markdown, profile_precisions
    result = profile_precisions('scopevit-xt', '32', 2, 'train', repeat=1, threads=1)
    rows = {r['op']: r for r in result['rows']}
    assert 'bf16' in rows['aten::addmm']['under_autocast']
    assert rows['aten::addmm']['fp32_calls'] == rows['aten::addmm']['bf16_calls'] > 0
    assert result['casts']['count'] > 0 and result['casts']['mb'] > 0
    text = markdown(result, top=5)
    assert 'scopevit-xt 32 batch 2 train' in text and 'casts under autocast' in text
    assert len(text.splitlines()) == 2 + 5 + 2
