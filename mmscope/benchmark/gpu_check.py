"""The checks of the GPU check: what only a GPU run can tell, in one short run, with a CPU
dry run (small sizes) in the tests. ``tools/analysis_tools/gpu_check.py`` (and
``gpu_check.sh`` around it) is the command line: it holds the plans (which configs, models
and sizes per device) and starts the benchmark for checks 4 and 5; :func:`run` runs the
checks it names.

1. attention equivalence: each backbone family with the fused path (every call through
   ``F.scaled_dot_product_attention``, counted) against the reference path, same weights,
   fp32 / bf16 autocast / fp16 autocast, a padded and an unpadded size, outputs and the
   gradients of input and weights;
2. mixed-precision training steps of a Mask R-CNN and an UperNet config: autocast (fp16
   with a dynamic GradScaler, as ``--amp`` / ``AmpOptimWrapper``; bf16), finite losses and
   unscaled gradients;
3. ``torch.compile`` of one backbone: output and gradients against eager, graph breaks,
   compile time, step-time ratio;
4. classification throughput (bf16 inference) at the given batch sizes with model FLOPs
   utilisation, measured by the benchmark (``run_benchmark``, given by the caller);
5. fp32 against bf16 autocast, inference and a training step, our backbones and the
   same-FLOPs peers side by side in one process (the benchmark's ``--runtimes eager bf16``):
   the speed-up and the output (training: gradient) difference, the CUDA counterpart of
   the CPU table in docs/benchmarks.md.

Every check records its figures; the run fails (exit 1) if any check fails.
"""
import json
import math
import os
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

#: ``run_benchmark(args)``: runs the benchmark's command line with ``args``, returns
#: ``(exit code, output)``
RunBenchmark = Callable[[Sequence[str]], Tuple[int, str]]

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
#: relative L2 error allowed between fused and reference (outputs; gradients twice it)
ATTN_TOL = {'fp32': 1e-4, 'bf16': 5e-2, 'fp16': 1e-2}
#: dense bf16 peak TFLOP/s by device name (for MFU); other devices: --peak-tflops
PEAK_BF16_TFLOPS = {'H100': 989., 'H200': 989., 'A100': 312., 'L40S': 362., 'A10': 125.}

#: The keys of a plan (one per device, given by the caller): ``families`` (family, arch,
#: sizes...) and ``attn_batch`` for the attention check; ``train`` (config path, size,
#: dtypes), ``train_batch`` and ``train_steps`` for the training steps; ``compile``
#: (family, arch, size, batch) and ``compile_backend``; ``bench_*`` for the throughput and
#: ``precision_*`` for the fp32 / bf16 check (the benchmark's models, size, batches and
#: repeats).


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _probe_loss(outs, seed: int = 0) -> torch.Tensor:
    """A loss every weight influences: a fixed random projection of every output (the
    outputs are normalised, so ``sum(o ** 2)`` would be constant, its gradient noise)."""
    g = torch.Generator().manual_seed(seed)
    return sum((o.float() * torch.randn(o.shape, generator=g).to(o.device)).mean() for o in outs)


def _autocast(device, dtype: str):
    if dtype == 'fp32':
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=DTYPES[dtype])


# ----------------------------------------------------------------------------- 1
def check_attention(device, plan) -> List[Dict]:
    from mmscope.models.layers import attention_impl, cpu_dispatch_rules
    from mmscope.registry import MODELS
    from .attention_profile import record_attention_calls
    rows = []
    for family, arch, *sizes in plan['families']:
        torch.manual_seed(0)
        model = MODELS.build(
            dict(type=f'mmscope.{family}', arch=arch, drop_path_rate=0.,
                 out_indices=(0, 1, 2, 3))).to(device)
        model.init_weights()
        model.train()
        for size in sizes:
            x = torch.randn(plan['attn_batch'], 3, *size, device=device)
            for dtype in ('fp32', 'bf16', 'fp16'):
                res = {}
                for impl in ('fused', 'reference'):
                    model.zero_grad(set_to_none=True)
                    xi = x.clone().requires_grad_(True)
                    with cpu_dispatch_rules(False), attention_impl(impl), \
                            record_attention_calls() as calls, _autocast(device, dtype):
                        outs = model(xi)
                    _probe_loss(outs).backward()
                    grads = torch.cat([
                        p.grad.flatten().float() for p in model.parameters() if p.grad is not None
                    ])
                    res[impl] = (outs, xi.grad, grads, len(calls),
                                 sum(c['path'] == 'sdpa' for c in calls))
                (fo, fx, fg, n_calls, n_sdpa), (ro, rx, rg, _, ref_sdpa) = \
                    res['fused'], res['reference']
                out_err = max(rel_err(a, b) for a, b in zip(fo, ro))
                grad_err = max(rel_err(fx, rx), rel_err(fg, rg))
                tol = ATTN_TOL[dtype]
                finite = all(torch.isfinite(t).all() for t in (*fo, fx, fg))
                ok = (
                    finite and out_err <= tol and grad_err <= 2 * tol and n_sdpa == n_calls > 0
                    and ref_sdpa == 0)
                rows.append(
                    dict(
                        check='attention',
                        model=f'{family}-{arch}',
                        size='x'.join(map(str, size)),
                        dtype=dtype,
                        out_rel_err=out_err,
                        grad_rel_err=grad_err,
                        tol=tol,
                        sdpa_calls=n_sdpa,
                        attention_calls=n_calls,
                        ok=bool(ok)))
    return rows


# ----------------------------------------------------------------------------- 2
def _build_task_model(path: str, device):
    """The model of a task config, built by its library (the row of its
    ``default_scope`` in :data:`mmscope.apis.libraries.LIBRARIES`), without its
    checkpoint, SyncBN as BN, in train mode on ``device``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmscope  # noqa: F401  (registers the backbones)
    from mmscope.apis.config import sync_bn_to_bn
    from mmscope.apis.libraries import library_of
    cfg = Config.fromfile(path)
    library = library_of(cfg)
    init_default_scope(library.scope)
    cfg.model.backbone.init_cfg = None
    model_cfg = cfg.model
    sync_bn_to_bn(model_cfg)
    model = library.models().build(model_cfg)
    model.init_weights()
    return cfg, model.to(device).train()


def _det_batch(cfg, h: int, w: int, batch: int) -> Dict:
    """mmdet's demo inputs: images with 3 boxes and masks each."""
    from mmdet.testing import demo_mm_inputs
    num_classes = cfg.model.roi_head.bbox_head.num_classes \
        if 'roi_head' in cfg.model else cfg.model.bbox_head.num_classes
    return demo_mm_inputs(
        batch, [(3, h, w)] * batch, num_items=[3] * batch, num_classes=num_classes, with_mask=True)


def _seg_batch(cfg, h: int, w: int, batch: int) -> Dict:
    """Random images with random label maps."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    num_classes = cfg.model.decode_head.num_classes
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


#: a training batch of each task the check trains (keyed by ``Library.task``)
TASK_BATCHES = {'det': _det_batch, 'seg': _seg_batch}


def _task_batch(cfg, size, batch: int):
    """A training batch for the task of ``cfg``'s library at ``size``."""
    from mmscope.apis.libraries import library_of
    task = library_of(cfg).task
    if task not in TASK_BATCHES:
        raise ValueError(f'the GPU check has no training batch for {task!r} configs')
    return TASK_BATCHES[task](cfg, *size, batch)


def check_train_steps(device, plan) -> List[Dict]:
    rows = []
    for path, size, dtypes in plan['train']:
        for dtype in dtypes:
            torch.manual_seed(0)
            cfg, model = _build_task_model(path, device)
            batch = _task_batch(cfg, size, plan['train_batch'])
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            # what --amp builds (AmpOptimWrapper): autocast around data preprocessing and
            # forward, a dynamic GradScaler for fp16
            scaler = torch.amp.GradScaler(device.type, enabled=dtype == 'fp16')
            losses, finite_grads, t0 = [], 0, time.time()
            for _ in range(plan['train_steps']):
                with _autocast(device, dtype):
                    data = model.data_preprocessor(batch, True)
                    loss_dict = model(**data, mode='loss')
                loss, _ = model.parse_losses(loss_dict)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                finite_grads += int(all(torch.isfinite(g).all() for g in grads))
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                losses.append(loss.item())
            # fp16: a skipped first step (overflow, scale halved) is loss scaling at work
            need = plan['train_steps'] - (1 if dtype == 'fp16' else 0)
            ok = all(math.isfinite(v) for v in losses) and finite_grads >= need
            rows.append(
                dict(
                    check='train_step',
                    config=osp.basename(path),
                    size='x'.join(map(str, size)),
                    dtype=dtype,
                    losses=losses,
                    steps_with_finite_grads=finite_grads,
                    seconds=time.time() - t0,
                    ok=bool(ok)))
            del model, opt
    return rows


# ----------------------------------------------------------------------------- 3
def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def check_compile(device, plan, backend: Optional[str] = None) -> List[Dict]:
    import torch._dynamo as dynamo

    from mmscope.registry import MODELS
    family, arch, size, batch = plan['compile']
    backend = backend or plan['compile_backend']
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type=f'mmscope.{family}', arch=arch, drop_path_rate=0., out_indices=(0, 1, 2, 3)))
    model.init_weights()
    model = model.to(device).train()
    x = torch.randn(batch, 3, *size, device=device)
    dynamo.reset()
    explain = dynamo.explain(model)(x)
    compiled = torch.compile(model, backend=backend)

    def step(m):
        model.zero_grad(set_to_none=True)
        outs = m(x)
        _probe_loss(outs).backward()
        return [o.detach() for o in outs
                ], torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    t0 = time.time()
    c_out, c_grad = step(compiled)
    _sync(device)
    compile_s = time.time() - t0
    e_out, e_grad = step(model)
    times = {}
    for name, m in (('eager', model), ('compiled', compiled)):
        step(m)
        _sync(device)
        t0 = time.time()
        for _ in range(3):
            step(m)
        _sync(device)
        times[name] = (time.time() - t0) / 3
    out_err = max(rel_err(a, b) for a, b in zip(c_out, e_out))
    grad_err = rel_err(c_grad, e_grad)
    ok = out_err <= 1e-3 and grad_err <= 1e-2
    return [
        dict(
            check='compile',
            model=f'{family}-{arch}',
            backend=backend,
            size='x'.join(map(str, size)),
            batch=batch,
            graphs=explain.graph_count,
            graph_breaks=explain.graph_break_count,
            compile_seconds=compile_s,
            out_rel_err=out_err,
            grad_rel_err=grad_err,
            speedup=times['eager'] / times['compiled'],
            ok=bool(ok))
    ]


# ----------------------------------------------------------------------------- 4
def peak_tflops(device) -> Optional[float]:
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def check_throughput(device, plan, out_dir: str, peak: Optional[float],
                     run_benchmark: RunBenchmark) -> List[Dict]:
    out = osp.join(out_dir, 'throughput.json')
    cmd = [
        '--device', device.type, '--dtype', 'bf16', '--modes', 'infer', '--attn', 'fused',
        '--sizes', plan['bench_size'], '--warmup',
        str(plan['bench_warmup']), '--repeat',
        str(plan['bench_repeat']), '--json', out, '--flops', '--batch-sizes',
        *map(str, plan['bench_batches']), '--model', *plan['bench_models']
    ]
    if peak:
        cmd += ['--peak-tflops', str(peak)]
    code, output = run_benchmark(cmd)
    if code != 0:
        return [dict(check='throughput', ok=False, error=output[-3000:])]
    with open(out) as f:
        results = json.load(f)
    rows = []
    for r in results['results']:
        ips = r.get('images_per_s')
        rows.append(
            dict(
                check='throughput',
                model=r.get('model'),
                size=r.get('size'),
                batch=r.get('batch'),
                dtype=r.get('dtype'),
                images_per_s=ips,
                gmacs_per_image=r.get('gflops'),
                mfu=r.get('mfu'),
                ok=r.get('status') == 'ok' and bool(ips)))
    return rows


def check_precision(device, plan, out_dir: str, run_benchmark: RunBenchmark) -> List[Dict]:
    """fp32 vs bf16 autocast per model and mode: speed-up (median of the paired rounds)
    and relative error against fp32 (outputs; training: gradients)."""
    out = osp.join(out_dir, 'precision.json')
    cmd = [
        '--device', device.type, '--runtimes', 'eager', 'bf16', '--modes', 'infer', 'train',
        '--sizes', plan['precision_size'], '--batch-sizes',
        str(plan['precision_batch']), '--warmup',
        str(plan['precision_warmup']), '--repeat',
        str(plan['precision_repeat']), '--paired-repeat',
        str(plan['precision_rounds']), '--json', out, '--model', *plan['precision_models']
    ]
    code, output = run_benchmark(cmd)
    if code != 0:
        return [dict(check='precision', ok=False, error=output[-3000:])]
    with open(out) as f:
        results = json.load(f)
    rows = []
    for r in results['paired']:
        ok = r.get('status') == 'ok'
        speedup = (r.get('speedup_median') or {}).get('bf16')
        err = (r.get('rel_err_vs_eager') or {}).get('bf16')
        ips = r.get('images_per_s') or {}
        rows.append(
            dict(
                check='precision',
                model=r.get('model'),
                mode=r.get('mode'),
                size=r.get('size'),
                batch=r.get('batch'),
                fp32_images_per_s=ips.get('eager'),
                bf16_images_per_s=ips.get('bf16'),
                bf16_speedup=speedup,
                rel_err=err,
                # bf16 keeps 8 bits of mantissa: ~1e-2 of the output; far more is
                # a broken kernel, not rounding
                ok=ok and speedup is not None and err is not None and err < 0.1))
    return rows


# ----------------------------------------------------------------------------- run
def run(device: str,
        plan: Dict,
        run_benchmark: RunBenchmark,
        checks=('attention', 'train', 'compile', 'throughput', 'precision'),
        out_dir: str = 'work_dirs/gpu_check',
        peak: Optional[float] = None,
        compile_backend: Optional[str] = None) -> Dict:
    """Run ``checks`` with the sizes and models of ``plan`` (see the plan keys above) on
    ``device``; the report (also written to ``OUT_DIR/gpu_check.json``)."""
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda: no CUDA device is visible (torch.cuda.is_available() '
                           'is False); use --device cpu for the dry run')
    os.makedirs(out_dir, exist_ok=True)
    peak = peak or peak_tflops(dev)
    report = dict(
        device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu',
        torch=torch.__version__,
        peak_bf16_tflops=peak,
        rows=[],
        seconds={})
    steps = dict(
        attention=lambda: check_attention(dev, plan),
        train=lambda: check_train_steps(dev, plan),
        compile=lambda: check_compile(dev, plan, compile_backend),
        throughput=lambda: check_throughput(dev, plan, out_dir, peak, run_benchmark),
        precision=lambda: check_precision(dev, plan, out_dir, run_benchmark))
    for name in checks:
        t0 = time.time()
        try:
            report['rows'] += steps[name]()
        except Exception as exc:  # a crash is a failed check, with its reason
            report['rows'].append(
                dict(check=name, ok=False, error=f'{type(exc).__name__}: '
                     f'{exc}'))
        report['seconds'][name] = time.time() - t0
        print(f'[gpu_check] {name}: {report["seconds"][name]:.0f} s', flush=True)
    report['ok'] = all(r['ok'] for r in report['rows'])
    with open(osp.join(out_dir, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=1, default=str)
    return report


def format_report(report: Dict) -> str:
    lines = [
        f"GPU check on {report['device']} (torch {report['torch']}): "
        f"{'PASS' if report['ok'] else 'FAIL'}"
    ]
    for r in report['rows']:
        fields = ', '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
                           for k, v in r.items() if k not in ('check', 'ok'))
        lines.append(f"  [{'ok' if r['ok'] else 'FAIL'}] {r['check']}: {fields}")
    lines.append('  time: ' + ', '.join(f'{k} {v:.0f} s' for k, v in report['seconds'].items()))
    return '\n'.join(lines)
