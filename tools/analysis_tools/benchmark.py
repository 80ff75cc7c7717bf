"""Speed and memory of backbones: inference and training steps, attention modes side by side.

    python tools/analysis_tools/benchmark.py --model MODEL [MODEL ...]
        [--sizes 224 256 512 800x1344 | cls | dense] [--batch-sizes 1 8]
        [--modes infer train] [--attn fused reference] [--with-cp off|on|both]
        [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--channels-last] [--compile]
        [--threads N] [--warmup 2] [--repeat 5] [--out-indices 0 1 2 3]
        [--flops] [--peak-tflops T] [--timeout S] [--json FILE] [--csv FILE]

MODEL is one of
  * an mmscope arch: ``scopevit-xt``, ``scopevit-t``, ``scopevit-s``, ``scalablevit-s``,
    ``scalablevit-b``, ``scalablevit-l`` (long names such as ``scopevit-tiny`` work too);
  * a backbone of another OpenMMLab library, ``LIB:Type[:arch][:k=v,k=v]`` with LIB one of
    mmpretrain / mmdet / mmseg / mmscope, e.g. ``mmpretrain:SwinTransformer:tiny``,
    ``mmpretrain:PCPVT:small``, ``mmpretrain:SVT:small``, ``mmpretrain:ConvNeXt:tiny``,
    ``mmpretrain:ResNet:50`` (a number is the ``depth``),
    ``mmdet:PyramidVisionTransformerV2::embed_dims=64,num_layers=[3,4,6,3]``;
    shortcuts: ``pvtv2-b0`` .. ``pvtv2-b3`` (mmdet's PVT-v2, published settings);
  * a config file (``.py``): its ``model.backbone`` is built by the config's library
    (``Pretrained`` init and SyncBN are dropped, like a CPU run of the config would).
  Extra constructor arguments: append ``:k=v,k=v`` (values are Python literals).

Every case (model x size x batch x mode x attention mode x with_cp) runs in a fresh
subprocess so its memory is its own: the model is built, one untimed priming step is run
(it allocates one-time state: the optimizer's moments, kernel caches), then ``--warmup``
untimed and ``--repeat`` timed steps. Reported: median seconds per step and images/s,
min/max and the spread (interquartile range / median), the process CPU time per step (it
does not count time spent waiting for a shared CPU, so it is the steadier figure on a
loaded machine), and the peak memory of the steps:

  * CPU: the resident-set high-water mark (``VmHWM``) over the warm-up and timed steps,
    minus the resident set right before them (after priming, ``malloc_trim`` and a reset
    of the high-water mark): activations, gradients and temporaries of one step, without
    weights, optimizer state and input;
  * CUDA: ``torch.cuda.max_memory_allocated`` minus the allocated memory at that point.

A training step is ``zero_grad -> forward -> loss = sum of the output means -> backward ->
AdamW step`` on the bare backbone (train mode; with ``--dtype bf16/fp16`` the forward runs
under autocast, fp16 on CUDA with a GradScaler). An inference step is a forward under
``torch.no_grad`` in eval mode.

For mmscope backbones the attention modes in ``--attn`` (default: both) are run back to
back for every case and their ratios are printed: ``speed-up = images/s(fused) /
images/s(reference)`` and ``memory = peak(reference) / peak(fused)``. ``--with-cp both``
runs training cases with and without gradient checkpointing and prints the memory factor.

FLOPs (``--flops``; implied by ``--peak-tflops``) are counted by mmengine's FlopAnalyzer
for one image at each size (mmscope attention in its reference form so the attention
products are counted; ``scaled_dot_product_attention`` of other backbones is counted by a
handle added here); one multiply-add is one FLOP, as in the papers. MFU =
``2 * FLOPs/image * k * images/s / (peak TFLOPS * 1e12)`` with ``k = 1`` for inference
and ``k = 3`` for a training step (backward ~ twice the forward).
"""
import argparse
import ast
import csv
import ctypes
import datetime
import inspect
import json
import math
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

RESULT_TAG = 'BENCHMARK_RESULT '
OURS = {
    'scopevit': ('ScopeViT', {'xt': 'xtiny', 'xtiny': 'xtiny', 'x-tiny': 'xtiny',
                              't': 'tiny', 'tiny': 'tiny', 's': 'small', 'small': 'small'}),
    'scalablevit': ('ScalableViT', {'s': 'small', 'small': 'small', 'b': 'base',
                                    'base': 'base', 'l': 'large', 'large': 'large'}),
}
#: mmdet's PyramidVisionTransformerV2 with the published b0-b3 settings (the other
#: arguments keep mmdet's defaults, which are the published ones).
PVTV2 = {
    'b0': dict(embed_dims=32, num_layers=[2, 2, 2, 2]),
    'b1': dict(embed_dims=64, num_layers=[2, 2, 2, 2]),
    'b2': dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
    'b3': dict(embed_dims=64, num_layers=[3, 4, 18, 3]),
}
LIBRARIES = ('mmpretrain', 'mmdet', 'mmseg', 'mmscope')
SIZE_PRESETS = {'cls': ['224', '256'], 'dense': ['512', '800x1344']}
DTYPES = {'fp32': None, 'bf16': 'bfloat16', 'fp16': 'float16'}


# ---------------------------------------------------------------------------------------
# model specs
# ---------------------------------------------------------------------------------------
def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _kwargs(text: str) -> Dict:
    """``'a=1,b=[1,2],c=x'`` -> dict (commas inside brackets do not split)."""
    out, depth, cur = {}, 0, ''
    for ch in text + ',':
        if ch == ',' and depth == 0:
            if cur.strip():
                if '=' not in cur:
                    raise ValueError(f'expected k=v, got {cur!r}')
                key, value = cur.split('=', 1)
                out[key.strip()] = _literal(value.strip())
            cur = ''
            continue
        depth += ch in '([{'
        depth -= ch in ')]}'
        cur += ch
    return out


def parse_model(spec: str) -> Dict:
    """A ``--model`` value -> ``{'name', 'library', 'cfg' | 'config'}`` (raises ValueError)."""
    if spec.endswith('.py'):
        if not osp.isfile(spec):
            raise ValueError(f'config file not found: {spec}')
        return dict(name=osp.splitext(osp.basename(spec))[0], config=spec)
    if spec.lower().startswith('official:'):
        _, _, rest = spec.partition(':')
        head, _, extra = rest.partition(':')
        family, _, arch = head.lower().partition('-')
        from mmscope.converters.official_code import official_arch
        try:
            arch = official_arch(family, arch)
        except ValueError as e:
            raise ValueError(f'cannot read model {spec!r}: {e} (official:FAMILY-ARCH, '
                             'e.g. official:scopevit-t, official:scalablevit-s)') from None
        return dict(name=spec, library='official',
                    cfg=dict(family=family, arch=arch, **_kwargs(extra)))
    head, _, extra = spec.partition(':')
    family, _, arch = head.lower().partition('-')
    if family in OURS and arch and not head.lower().startswith(LIBRARIES):
        typ, archs = OURS[family]
        if arch not in archs:
            raise ValueError(f'unknown {typ} arch {arch!r}; choose from {sorted(archs)}')
        cfg = dict(type=typ, arch=archs[arch], **_kwargs(extra))
        return dict(name=spec, library='mmscope', cfg=cfg)
    if family == 'pvtv2':
        if arch not in PVTV2:
            raise ValueError(f'unknown PVT-v2 variant {arch!r}; choose from {sorted(PVTV2)}')
        cfg = dict(type='PyramidVisionTransformerV2', **PVTV2[arch], **_kwargs(extra))
        return dict(name=spec, library='mmdet', cfg=cfg)
    parts = spec.split(':')
    if parts[0] not in LIBRARIES or len(parts) < 2 or not parts[1]:
        raise ValueError(
            f'cannot read model {spec!r}: use an mmscope arch (e.g. scopevit-t, '
            f'scalablevit-s), LIB:Type[:arch][:k=v,...] with LIB in {LIBRARIES}, '
            'pvtv2-b0..b3, official:FAMILY-ARCH (the released code) or a config .py file')
    cfg = dict(type=parts[1])
    if len(parts) > 2 and parts[2]:
        arch = _literal(parts[2])
        cfg.update(depth=arch) if isinstance(arch, int) else cfg.update(arch=parts[2])
    for part in parts[3:]:
        cfg.update(_kwargs(part))
    return dict(name=spec, library=parts[0], cfg=cfg)


def _registry(library: str):
    if library == 'mmscope':
        import mmscope  # noqa: F401
        from mmscope.registry import MODELS
    elif library == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif library == 'mmdet':
        from mmdet.registry import MODELS
    elif library == 'mmseg':
        from mmseg.registry import MODELS
    else:
        raise ValueError(f'unknown library {library!r}')
    return MODELS


def _strip_for_benchmark(node):
    """Drop ``Pretrained`` init configs and turn SyncBN into BN, recursively."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        if node.get('pretrained') is not None:
            node['pretrained'] = None
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            _strip_for_benchmark(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _strip_for_benchmark(value)


def resolve_backbone(spec: Dict) -> Tuple[str, Dict]:
    """``(library, backbone cfg dict)`` of a parsed spec (reads config files)."""
    if 'config' not in spec:
        return spec['library'], dict(spec['cfg'])
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(spec['config'])
    library = cfg.get('default_scope', 'mmpretrain')
    if library not in LIBRARIES:
        raise ValueError(f'{spec["config"]}: default_scope {library!r} not supported')
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    backbone = cfg.model.backbone.to_dict()
    _strip_for_benchmark(backbone)
    return library, backbone


def is_mmscope(library: str, cfg: Dict) -> bool:
    typ = str(cfg.get('type', ''))
    return library == 'mmscope' or typ.startswith('mmscope.') or typ in ('ScopeViT',
                                                                         'ScalableViT')


def build_backbone(library: str, cfg: Dict):
    import mmscope  # noqa: F401  (registers mmscope.* types for config files)
    model = _registry(library).build(cfg)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    return model


# ---------------------------------------------------------------------------------------
# measurement (runs inside a fresh subprocess per case)
# ---------------------------------------------------------------------------------------
def _proc_status() -> Dict[str, int]:
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(('VmHWM', 'VmRSS')):
                out[line.split(':')[0]] = int(line.split()[1]) * 1024
    return out


def _reset_cpu_peak() -> Optional[int]:
    """Release free heap pages, reset VmHWM; the resident set now (None if unsupported)."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return _proc_status()['VmRSS']
    except (OSError, KeyError):
        return None


def _sdpa_flop_jit(inputs, outputs):
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(t) for t in inputs[:3])
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def count_flops(model, size: Tuple[int, int], reference: bool) -> int:
    """Multiply-adds of one ``1 x 3 x H x W`` forward (eval mode)."""
    import contextlib

    import torch
    from mmengine.analysis import FlopAnalyzer
    ctx = contextlib.nullcontext()
    if reference:
        from mmscope.models.layers import attention_impl
        ctx = attention_impl('reference')
    model.eval()
    with torch.no_grad(), ctx:
        analyzer = FlopAnalyzer(model, torch.randn(1, 3, *size))
        analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flop_jit)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analyzer.total())


def _loss(outputs):
    import torch
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    return sum(o.float().mean() for o in outputs if isinstance(o, torch.Tensor))


def twin_of(library: str, cfg: Dict) -> Optional[str]:
    """``'family-arch'`` (released arch name) of an mmscope arch or a released model, the
    key that pairs the two in ``--vs-official`` tables; None for anything else."""
    from mmscope.converters.official_code import OFFICIAL_SOURCES, official_arch
    if library == 'official':
        family, arch = cfg['family'], cfg['arch']
    elif is_mmscope(library, cfg) and isinstance(cfg.get('arch', 'x'), str):
        family = str(cfg.get('type', '')).rpartition('.')[2].lower()
        arch = cfg.get('arch')
        if family not in OFFICIAL_SOURCES or arch is None:
            return None
    else:
        return None
    try:
        return f'{family}-{official_arch(family, arch)}'
    except ValueError:
        return None


def build_official(cfg: Dict, out_indices: Optional[Sequence[int]], extra: Dict,
                   folder: Optional[str], deps: Optional[str]):
    """The released model as a backbone: its ``forward_features`` with the head dropped.

    The released ScalableViT returns its final LayerNorm's tokens mean-pooled, the released
    ScopeViT its last normalised map, or with ``out_indices`` 0-3 the four normalised stage
    maps (its own ``fork_feat=True`` mode for dense prediction).
    """
    import torch.nn as nn
    from mmscope.converters.official_code import build_official_model
    kwargs = {k: v for k, v in cfg.items() if k not in ('family', 'arch')}
    kwargs.update(extra)
    family = cfg['family']
    if out_indices is not None and sorted(out_indices) not in ([3], [-1]):
        if family == 'scopevit' and sorted(out_indices) == [0, 1, 2, 3]:
            kwargs['fork_feat'] = True
        else:
            raise ValueError(
                f'the released {family} code outputs the last stage only' +
                (' or all four stages (out_indices 0 1 2 3)' if family == 'scopevit' else '') +
                f'; got out_indices {list(out_indices)}')
    model = build_official_model(family, cfg['arch'], folder, deps, **kwargs)
    model.head = nn.Identity()  # backbone only, as for every other model

    class ReleasedFeatures(nn.Module):

        def __init__(self, released):
            super().__init__()
            self.released = released

        def forward(self, x):
            return self.released.forward_features(x)

    return ReleasedFeatures(model)


def _build_case_model(case: Dict, spec: Dict, attn: str):
    """``(model, is_mmscope)`` of one benchmarked model, built as the case asks."""
    library, cfg = resolve_backbone(spec)
    train = case['mode'] == 'train'
    if library == 'official':
        if train and case['with_cp']:
            raise ValueError('the released code has no gradient checkpointing (with_cp)')
        return build_official(cfg, case.get('out_indices'), case.get('backbone_args') or {},
                              case.get('official_code'), case.get('official_deps')), False
    ours = is_mmscope(library, cfg)
    if ours and attn not in ('-', 'paired'):
        from mmscope.models.layers import set_attention_impl
        set_attention_impl(attn)
        cfg['attn_impl'] = attn
    elif ours:
        cfg['attn_impl'] = None  # follow the process default, switched per step
    if train and case['with_cp']:
        cls = _registry(library).get(cfg['type'])
        if cls is not None and 'with_cp' not in inspect.signature(cls.__init__).parameters:
            raise ValueError(f'{cfg["type"]} has no with_cp argument')
        cfg['with_cp'] = True
    if case.get('out_indices') is not None:
        cfg['out_indices'] = tuple(case['out_indices'])
    if case.get('backbone_args'):
        cfg.update(case['backbone_args'])
    return build_backbone(library, cfg), ours


def _make_step(case: Dict, model, device):
    """``(model, step, optimizer)``: the model moved to the case's device and format, and
    one inference or training step of it as a closure."""
    import contextlib

    import torch
    memory_format = torch.channels_last if case['channels_last'] else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    train = case['mode'] == 'train'
    model.train(train)  # some backbones' train() returns None: do not chain
    x = torch.randn(case['batch'], 3, *case['size'], device=device)
    x = x.contiguous(memory_format=memory_format)
    step_model = torch.compile(model) if case['compile'] else model
    dtype = DTYPES[case['dtype']]
    autocast = (torch.autocast(device.type, dtype=getattr(torch, dtype))
                if dtype else contextlib.nullcontext())
    optimizer = scaler = None
    if train:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=1e-4)
        if case['dtype'] == 'fp16' and device.type == 'cuda':
            scaler = torch.amp.GradScaler('cuda')

    def step():
        if train:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = _loss(step_model(x))
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
        else:
            with torch.no_grad(), autocast:
                step_model(x)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    return model, step, optimizer


def run_case(case: Dict) -> Dict:
    """Measure one case in this process (call it in a fresh process)."""
    import gc

    import torch
    torch.manual_seed(0)
    if case.get('threads'):
        torch.set_num_threads(case['threads'])
    device = torch.device(case['device'])
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda but torch.cuda.is_available() is False')
    if case['attn'] == 'vs-official':
        ours = _make_step(case, _build_case_model(case, case['spec'], 'fused')[0], device)
        released = _make_step(case, _build_case_model(case, case['twin_spec'], '-')[0], device)
        return _alternate(case, {'mmscope': ours[1], 'official': released[1]}, ours[0])
    model, ours = _build_case_model(case, case['spec'], case['attn'])
    params = sum(p.numel() for p in model.parameters())
    flops = None
    if case.get('flops'):
        flops = count_flops(model, tuple(case['size']), reference=ours)
        gc.collect()
    model, step, optimizer = _make_step(case, model, device)
    if case['attn'] == 'paired':
        from mmscope.models.layers import attention_impl

        def in_mode(impl):
            def run():
                with attention_impl(impl):
                    step()
            return run

        return _alternate(case, {impl: in_mode(impl) for impl in ('fused', 'reference')},
                          model)
    step()  # priming: optimizer state, kernel/bias caches, torch.compile
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _reset_cpu_peak()
    for _ in range(case['warmup']):
        step()
    times, cpu_times = [], []
    for _ in range(case['repeat']):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(device) - base
        mem_method = 'cuda.max_memory_allocated - allocated before the steps'
    elif base is not None:
        peak = _proc_status()['VmHWM'] - base
        mem_method = 'VmHWM - VmRSS before the steps (fresh process, HWM reset)'
    else:
        peak, mem_method = None, 'unavailable'
    state = 0
    if optimizer is not None:
        state = sum(t.numel() * t.element_size() for s in optimizer.state.values()
                    for t in s.values() if torch.is_tensor(t))
    weights = sum(t.numel() * t.element_size()
                  for t in list(model.parameters()) + list(model.buffers()))
    return dict(
        params_m=params / 1e6, gflops=None if flops is None else flops / 1e9,
        times_s=times, cpu_times_s=cpu_times, peak_mem_mb=None if peak is None else
        peak / 2**20, mem_method=mem_method, weights_mb=weights / 2**20,
        optimizer_state_mb=state / 2**20, threads=torch.get_num_threads(), mmscope=ours)


def _alternate(case: Dict, arms: Dict, model) -> Dict:
    """Time two steps alternately in one process (ABBA order), so both see the same
    machine load: the default attention against the reference one (``paired``), or
    mmscope against the released code (``vs-official``). The speed-up of each round is
    ``t(second arm) / t(first arm)``."""
    times = {name: [] for name in arms}
    cpu = {name: [] for name in arms}
    for run in arms.values():  # priming, untimed
        for _ in range(1 + case['warmup']):
            run()
    first, second = list(arms)
    for i in range(case['repeat']):
        for name in ((first, second) if i % 2 == 0 else (second, first)):
            t0, c0 = time.perf_counter(), time.process_time()
            arms[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return dict(params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                paired_times_s=times, paired_cpu_times_s=cpu,
                paired_speedups=[b / a for a, b in zip(times[first], times[second])],
                paired_cpu_speedups=[b / a for a, b in zip(cpu[first], cpu[second])])


# ---------------------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------------------
def parse_size(text: str) -> Tuple[int, int]:
    h, _, w = text.lower().partition('x')
    return int(h), int(w or h)


def summarize(times: Sequence[float]) -> Dict:
    if not times:
        return {}
    med = statistics.median(times)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [med, med, med]
    return dict(median_s=med, min_s=min(times), max_s=max(times),
                spread_pct=100 * (q[2] - q[0]) / med if med else 0.)


def machine_info(device: str) -> Dict:
    import torch
    info = dict(python=platform.python_version(), torch=torch.__version__,
                platform=platform.platform(), cpu_count=os.cpu_count(), device=device)
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(':')
            if key.strip() in ('Model name', 'CPU(s)', 'Thread(s) per core',
                               'Core(s) per socket', 'Socket(s)'):
                info['lscpu ' + key.strip()] = value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open('/proc/meminfo') as f:
            info['mem_total_gb'] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if device == 'cuda' and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
    for lib in ('mmengine', 'mmcv', 'mmpretrain', 'mmdet', 'mmseg'):
        try:
            info[lib] = __import__(lib).__version__
        except Exception:  # noqa: BLE001  (optional libraries)
            info[lib] = None
    return info


def _spawn(case: Dict, timeout: Optional[float]) -> Dict:
    env = dict(os.environ)
    if case.get('threads'):
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(case['threads'])
    cmd = [sys.executable, osp.abspath(__file__), '--worker', json.dumps(case)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        return dict(status='timeout', error=f'no result within {timeout} s')
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return dict(status='error', error=f'exit code {proc.returncode}: ' + ' | '.join(tail))


def check_official_code(cases: List[Dict]) -> None:
    """Fail early (OfficialCodeUnavailable) when released models are asked for and their
    code cannot be imported, instead of one error row per case."""
    from mmscope.converters.official_code import import_official_module
    for family in sorted({c['twin'].split('-')[0] for c in cases
                          if c['library'] == 'official'}):
        case = next(c for c in cases if c['library'] == 'official')
        import_official_module(family, case['official_code'], case['official_deps'])


def build_cases(args) -> List[Dict]:
    specs = []
    for name in args.model:
        spec = parse_model(name)
        if 'config' in spec:
            library, cfg = resolve_backbone(spec)
        else:
            library, cfg = spec['library'], spec['cfg']
        specs.append((spec, library, is_mmscope(library, cfg), twin_of(library, cfg)))
    if args.vs_official:
        given = {twin for _, library, _, twin in specs if library == 'official'}
        with_twins = []
        for item in specs:
            with_twins.append(item)
            _, _, ours, twin = item
            if ours and twin and twin not in given:
                given.add(twin)
                with_twins.append((parse_model(f'official:{twin}'), 'official', False, twin))
        specs = with_twins
        if not any(library == 'official' for _, library, _, _ in specs):
            raise ValueError('--vs-official needs at least one mmscope arch model '
                             '(scopevit-xt|t|s, scalablevit-s|b|l)')
    official_specs = {twin: spec for spec, library, _, twin in specs if library == 'official'}
    sizes = []
    for s in args.sizes:
        sizes += SIZE_PRESETS.get(s, [s])
    cases = []
    for spec, library, ours, twin in specs:
        for size in sizes:
            for batch in args.batch_sizes:
                for mode in args.modes:
                    cps = [False]
                    if mode == 'train':
                        cps = {'off': [False], 'on': [True], 'both': [False, True]}[args.with_cp]
                    if library == 'official':
                        cps = [False]  # the released code has no with_cp
                    for cp in cps:
                        attns = list(args.attn) if ours else ['-']
                        if ours and args.paired and {'fused', 'reference'} <= set(attns):
                            attns.append('paired')
                        if (ours and args.vs_official and twin in official_specs
                                and not cp):
                            attns.append('vs-official')
                        for attn in attns:
                            repeat = args.repeat
                            if attn in ('paired', 'vs-official') and args.paired_repeat:
                                repeat = args.paired_repeat
                            cases.append(dict(
                                spec=spec, model=spec['name'], library=library, twin=twin,
                                size=list(parse_size(size)),
                                batch=batch, mode=mode, attn=attn, with_cp=cp,
                                device=args.device, dtype=args.dtype,
                                channels_last=args.channels_last, compile=args.compile,
                                threads=args.threads, warmup=args.warmup, repeat=repeat,
                                out_indices=args.out_indices,
                                backbone_args=_kwargs(args.backbone_args or ''),
                                official_code=args.official_code,
                                official_deps=args.official_deps))
                            if attn == 'vs-official':
                                cases[-1]['twin_spec'] = official_specs[twin]
    return cases


#: case entries not copied into result rows (specs and paths)
HIDDEN = ('spec', 'twin_spec', 'backbone_args', 'official_code', 'official_deps')


def finish_row(case: Dict, res: Dict, flops_cache: Dict, peak_tflops: Optional[float]) -> Dict:
    row = {k: v for k, v in case.items() if k not in HIDDEN}
    row['size'] = 'x'.join(map(str, case['size']))
    row.update(status=res.pop('status', 'ok'), error=res.pop('error', None))
    row.update(res)
    key = (case['model'], row['size'])
    if row.get('gflops') is not None:
        flops_cache[key] = row['gflops']
    row['gflops'] = flops_cache.get(key, row.get('gflops'))
    row.update(summarize(res.get('times_s', [])))
    cpu = res.get('cpu_times_s') or []
    row['cpu_median_s'] = statistics.median(cpu) if cpu else None
    row['images_per_s'] = case['batch'] / row['median_s'] if row.get('median_s') else None
    row['mfu'] = None
    if peak_tflops and row['images_per_s'] and row.get('gflops'):
        k = 3 if case['mode'] == 'train' else 1
        row['mfu'] = 2 * row['gflops'] * 1e9 * k * row['images_per_s'] / (peak_tflops * 1e12)
    return row


def ratios(rows: List[Dict], paired: Sequence[Dict] = ()) -> Dict[str, List[Dict]]:
    """Fused / reference (with the paired run's ratios) and with_cp on / off pairs."""
    ok = [r for r in rows if r['status'] == 'ok']
    paired = [p for p in paired if p['status'] == 'ok']
    base = ('model', 'size', 'batch', 'mode', 'dtype', 'device', 'channels_last', 'compile')
    attn, cp = [], []
    for r in ok:
        if r['attn'] == 'fused':
            ref = [o for o in ok if o['attn'] == 'reference' and o['with_cp'] == r['with_cp']
                   and all(o[k] == r[k] for k in base)]
            if ref:
                o = ref[0]
                attn.append(dict(
                    **{k: r[k] for k in base}, with_cp=r['with_cp'],
                    fused_images_per_s=r['images_per_s'],
                    reference_images_per_s=o['images_per_s'],
                    speedup=r['images_per_s'] / o['images_per_s'],
                    cpu_speedup=(o['cpu_median_s'] / r['cpu_median_s']
                                 if r['cpu_median_s'] else None),
                    fused_peak_mb=r['peak_mem_mb'], reference_peak_mb=o['peak_mem_mb'],
                    memory_ratio=(o['peak_mem_mb'] / r['peak_mem_mb']
                                  if r['peak_mem_mb'] and o['peak_mem_mb'] else None)))
                same = [p for p in paired if p['attn'] == 'paired'
                        and p['with_cp'] == r['with_cp'] and all(p[k] == r[k] for k in base)]
                attn[-1].update(paired_speedup=same[0]['speedup_median'] if same else None,
                                paired_cpu_speedup=(same[0]['cpu_speedup_median']
                                                    if same else None))
        if r['mode'] == 'train' and r['with_cp']:
            off = [o for o in ok if not o['with_cp'] and o['mode'] == 'train'
                   and o['attn'] == r['attn'] and all(o[k] == r[k] for k in base)]
            if off:
                o = off[0]
                cp.append(dict(
                    **{k: r[k] for k in base}, attn=r['attn'], peak_mb_without_cp=o['peak_mem_mb'],
                    peak_mb_with_cp=r['peak_mem_mb'],
                    memory_factor=(o['peak_mem_mb'] / r['peak_mem_mb']
                                   if r['peak_mem_mb'] and o['peak_mem_mb'] else None),
                    time_overhead=r['median_s'] / o['median_s']))
    official = []
    for o in ok:
        if o.get('library') != 'official':
            continue
        mine = [r for r in ok if r.get('library') != 'official' and r.get('twin') == o['twin']
                and r['attn'] in ('fused', '-') and not r['with_cp']
                and all(r[k] == o[k] for k in base if k != 'model')]
        if not mine:
            continue
        r = mine[0]
        same = [p for p in paired if p['attn'] == 'vs-official' and p['model'] == r['model']
                and all(p[k] == r[k] for k in base)]
        official.append(dict(
            **{k: r[k] for k in base}, official_model=o['model'],
            mmscope_images_per_s=r['images_per_s'], official_images_per_s=o['images_per_s'],
            speedup=r['images_per_s'] / o['images_per_s'],
            paired_speedup=same[0]['speedup_median'] if same else None,
            paired_cpu_speedup=same[0]['cpu_speedup_median'] if same else None,
            paired_min=min(same[0]['paired_speedups']) if same else None,
            paired_max=max(same[0]['paired_speedups']) if same else None,
            mmscope_peak_mb=r['peak_mem_mb'], official_peak_mb=o['peak_mem_mb'],
            memory_ratio=(o['peak_mem_mb'] / r['peak_mem_mb']
                          if r['peak_mem_mb'] and o['peak_mem_mb'] else None)))
    return dict(attention=attn, with_cp=cp, official=official)


def _fmt(value, spec='.1f'):
    return '-' if value is None else format(value, spec)


def format_tables(rows: List[Dict], pairs: Dict[str, List[Dict]]) -> str:
    show_mfu = any(r.get('mfu') is not None for r in rows)
    show_flops = any(r.get('gflops') is not None for r in rows)
    head = ['model', 'size', 'bs', 'mode', 'attn', 'cp', 'dtype', 'img/s', 'ms/step',
            'spread%', 'cpu s/step', 'peak MB'] + (['GFLOPs'] if show_flops else []) + (
                ['MFU%'] if show_mfu else [])
    body = []
    for r in rows:
        if r['status'] != 'ok':
            body.append([r['model'], r['size'], str(r['batch']), r['mode'], r['attn'],
                         'on' if r['with_cp'] else 'off', r['dtype'],
                         f"{r['status']}: {str(r['error'])[:70]}"])
            continue
        line = [r['model'], r['size'], str(r['batch']), r['mode'], r['attn'],
                'on' if r['with_cp'] else 'off', r['dtype'], _fmt(r['images_per_s'], '.2f'),
                _fmt(1e3 * r['median_s']), _fmt(r['spread_pct']), _fmt(r['cpu_median_s'], '.3f'),
                _fmt(r['peak_mem_mb'], '.0f')]
        if show_flops:
            line.append(_fmt(r.get('gflops'), '.2f'))
        if show_mfu:
            line.append(_fmt(None if r['mfu'] is None else 100 * r['mfu'], '.2f'))
        body.append(line)
    out = [_table(head, body)]
    if pairs['attention']:
        head = ['model', 'size', 'bs', 'mode', 'cp', 'fused img/s', 'ref img/s', 'speed-up',
                'cpu-time speed-up', 'paired speed-up', 'paired cpu speed-up', 'fused MB',
                'ref MB', 'memory ratio']
        body = [[p['model'], p['size'], str(p['batch']), p['mode'],
                 'on' if p['with_cp'] else 'off', _fmt(p['fused_images_per_s'], '.2f'),
                 _fmt(p['reference_images_per_s'], '.2f'), _fmt(p['speedup'], '.2f') + 'x',
                 _fmt(p['cpu_speedup'], '.2f') + 'x',
                 _fmt(p.get('paired_speedup'), '.2f') + 'x',
                 _fmt(p.get('paired_cpu_speedup'), '.2f') + 'x', _fmt(p['fused_peak_mb'], '.0f'),
                 _fmt(p['reference_peak_mb'], '.0f'), _fmt(p['memory_ratio'], '.2f') + 'x']
                for p in pairs['attention']]
        out.append('fused (default) vs reference attention:\n' + _table(head, body))
    if pairs.get('official'):
        head = ['model', 'size', 'bs', 'mode', 'mmscope img/s', 'released img/s', 'speed-up',
                'paired speed-up', 'paired cpu speed-up', 'mmscope MB', 'released MB',
                'memory ratio']
        body = [[p['model'], p['size'], str(p['batch']), p['mode'],
                 _fmt(p['mmscope_images_per_s'], '.2f'), _fmt(p['official_images_per_s'], '.2f'),
                 _fmt(p['speedup'], '.2f') + 'x', _fmt(p['paired_speedup'], '.2f') + 'x',
                 _fmt(p['paired_cpu_speedup'], '.2f') + 'x', _fmt(p['mmscope_peak_mb'], '.0f'),
                 _fmt(p['official_peak_mb'], '.0f'), _fmt(p['memory_ratio'], '.2f') + 'x']
                for p in pairs['official']]
        out.append('mmscope (default attention) vs the released code:\n' + _table(head, body))
    if pairs['with_cp']:
        head = ['model', 'size', 'bs', 'attn', 'peak MB cp off', 'peak MB cp on',
                'memory factor', 'time cp on / off']
        body = [[p['model'], p['size'], str(p['batch']), p['attn'],
                 _fmt(p['peak_mb_without_cp'], '.0f'), _fmt(p['peak_mb_with_cp'], '.0f'),
                 _fmt(p['memory_factor'], '.2f') + 'x', _fmt(p['time_overhead'], '.2f') + 'x']
                for p in pairs['with_cp']]
        out.append('training step with_cp=True vs False:\n' + _table(head, body))
    return '\n\n'.join(out)


def _table(head: List[str], body: List[List[str]]) -> str:
    widths = [len(h) for h in head]
    for line in body:
        for i, cell in enumerate(line[:len(head)]):
            widths[i] = max(widths[i], len(cell))
    fmt = lambda cells: ' | '.join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    lines = [fmt(head), '-+-'.join('-' * w for w in widths)]
    for line in body:
        if len(line) < len(head):  # an error row: the message spans the rest
            lines.append(' | '.join(c.ljust(w) for c, w in zip(line[:-1], widths)) + ' | ' +
                         line[-1])
        else:
            lines.append(fmt(line))
    return '\n'.join(lines)


CSV_FIELDS = ('model', 'size', 'batch', 'mode', 'attn', 'with_cp', 'device', 'dtype',
              'channels_last', 'compile', 'threads', 'warmup', 'repeat', 'status',
              'images_per_s', 'median_s', 'min_s', 'max_s', 'spread_pct', 'cpu_median_s',
              'peak_mem_mb', 'weights_mb', 'optimizer_state_mb', 'params_m', 'gflops', 'mfu',
              'load_before', 'load_after', 'library', 'twin', 'error')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Throughput and peak memory of backbones (inference and training '
        'steps); mmscope attention modes side by side.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', nargs='+', help='mmscope arch (scopevit-t), LIB:Type[:arch] '
                   '(mmpretrain:SwinTransformer:tiny), pvtv2-b2 or a config .py')
    p.add_argument('--sizes', nargs='+', default=['224'],
                   help='H or HxW (e.g. 224 800x1344); presets: cls=224 256, '
                   'dense=512 800x1344')
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    p.add_argument('--modes', nargs='+', choices=['infer', 'train'], default=['infer'])
    p.add_argument('--attn', nargs='+', choices=['fused', 'reference'],
                   default=['fused', 'reference'],
                   help='attention modes of mmscope backbones (others run once)')
    p.add_argument('--no-paired', dest='paired', action='store_false',
                   help='with both attention modes, do not add the paired run that '
                   'alternates the modes step by step in one process')
    p.add_argument('--paired-repeat', type=int, default=None,
                   help='timed rounds (one step per mode) of the paired run; '
                   'default --repeat')
    p.add_argument('--vs-official', action='store_true',
                   help='also run the released code of every mmscope arch model '
                   '(official:FAMILY-ARCH), and a run that alternates the two step by step')
    p.add_argument('--official-code', default=os.environ.get('MMSCOPE_OFFICIAL_CODE'),
                   help='folder with the released scopevit.py / scalablevit.py (default: '
                   '$MMSCOPE_OFFICIAL_CODE); see mmscope/converters/official_code.py')
    p.add_argument('--official-deps', default=os.environ.get('MMSCOPE_OFFICIAL_DEPS'),
                   help='extra sys.path folder with timm and einops for the released code '
                   '(default: $MMSCOPE_OFFICIAL_DEPS)')
    p.add_argument('--with-cp', choices=['off', 'on', 'both'], default='off',
                   help='gradient checkpointing in training cases')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    p.add_argument('--dtype', choices=list(DTYPES), default='fp32',
                   help='bf16/fp16 run the forward under torch.autocast')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--compile', action='store_true', help='torch.compile the backbone')
    p.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps after priming')
    p.add_argument('--repeat', type=int, default=5, help='timed steps')
    p.add_argument('--out-indices', nargs='+', type=int, default=None,
                   help='override the backbones\' out_indices')
    p.add_argument('--backbone-args', default=None,
                   help='extra constructor arguments for every model, "k=v,k=v"')
    p.add_argument('--flops', action='store_true', help='count FLOPs (one image per size)')
    p.add_argument('--peak-tflops', type=float, default=None,
                   help='device peak TFLOPS for the dtype; prints MFU (implies --flops)')
    p.add_argument('--timeout', type=float, default=None, help='seconds per case')
    p.add_argument('--json', default=None, help='write results to this JSON file')
    p.add_argument('--csv', default=None, help='write one row per case to this CSV file')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None and not args.model:
        p.error('--model is required')
    if args.warmup < 0 or args.repeat < 1:
        p.error('--warmup must be >= 0 and --repeat >= 1')
    if args.peak_tflops:
        args.flops = True
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker is not None:
        case = json.loads(args.worker)
        try:
            res = run_case(case)
        except Exception as e:  # noqa: BLE001  (reported, the run goes on)
            msg = str(e).splitlines()[0].strip() if str(e).strip() else ''
            where = 'released code: ' if case.get('library') == 'official' else ''
            res = dict(status='error', error=f'{where}{type(e).__name__}: {msg}'[:300])
        print(RESULT_TAG + json.dumps(res), flush=True)
        return 0

    try:
        cases = build_cases(args)
        check_official_code(cases)
    except (ValueError, RuntimeError) as e:
        print(f'benchmark.py: error: {e}', file=sys.stderr)
        return 2
    started = datetime.datetime.now(datetime.timezone.utc)
    meta = dict(command='python ' + ' '.join([osp.relpath(__file__, os.getcwd())] +
                                              (sys.argv[1:] if argv is None else list(argv))),
                date=started.isoformat(timespec='seconds'), load_before=os.getloadavg(),
                **machine_info(args.device))
    print(f'{len(cases)} cases on {meta.get("lscpu Model name", platform.processor())} '
          f'(torch {meta["torch"]}, load {meta["load_before"][0]:.2f})', flush=True)
    if meta['load_before'][0] > (meta['cpu_count'] or 1) and not args.threads:
        print('note: the load average exceeds the CPU count; on a shared CPU, --threads 1 '
              'avoids the wait of multi-threaded kernels for descheduled threads', flush=True)
    rows, paired, flops_cache = [], [], {}
    for i, case in enumerate(cases):
        key = (case['model'], 'x'.join(map(str, case['size'])))
        alternating = case['attn'] in ('paired', 'vs-official')
        case['flops'] = bool(args.flops and key not in flops_cache and not alternating)
        load0 = os.getloadavg()[0]
        res = _spawn(case, args.timeout)
        head = (f"[{i + 1}/{len(cases)}] {case['model']} {key[1]} bs{case['batch']} "
                f"{case['mode']} attn={case['attn']} cp={'on' if case['with_cp'] else 'off'}: ")
        if alternating:
            row = {k: v for k, v in case.items() if k not in HIDDEN}
            row['size'] = key[1]
            row.update(status=res.pop('status', 'ok'), error=res.pop('error', None), **res)
            row.update(load_before=load0, load_after=os.getloadavg()[0])
            paired.append(row)
            if row['status'] == 'ok':
                row['speedup_median'] = statistics.median(row['paired_speedups'])
                row['cpu_speedup_median'] = statistics.median(row['paired_cpu_speedups'])
                done = (f"speed-up {row['speedup_median']:.2f}x (per-round "
                        f"{min(row['paired_speedups']):.2f}-{max(row['paired_speedups']):.2f}), "
                        f"CPU time {row['cpu_speedup_median']:.2f}x")
            else:
                done = f"{row['status']}: {row['error']}"
            print(head + done, flush=True)
            continue
        row = finish_row(case, res, flops_cache, args.peak_tflops)
        row.update(load_before=load0, load_after=os.getloadavg()[0])
        rows.append(row)
        done = (f"{_fmt(row['images_per_s'], '.2f')} img/s, "
                f"peak {_fmt(row.get('peak_mem_mb'), '.0f')} MB"
                if row['status'] == 'ok' else f"{row['status']}: {row['error']}")
        print(head + done, flush=True)
    meta['load_after'] = os.getloadavg()
    meta['elapsed_s'] = round(time.time() - started.timestamp(), 1)
    pairs = ratios(rows, paired)
    print()
    print(format_tables(rows, pairs))
    print(f"\nload average before {meta['load_before'][0]:.2f}, after "
          f"{meta['load_after'][0]:.2f} ({meta['cpu_count']} CPUs); "
          f"elapsed {meta['elapsed_s']} s")
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, results=rows, paired=paired, ratios=pairs), f, indent=1)
    if args.csv:
        os.makedirs(osp.dirname(osp.abspath(args.csv)), exist_ok=True)
        with open(args.csv, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction='ignore')
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k) for k in CSV_FIELDS})
    return 0 if all(r['status'] == 'ok' for r in rows + paired) else 1


if __name__ == '__main__':
    sys.exit(main())
