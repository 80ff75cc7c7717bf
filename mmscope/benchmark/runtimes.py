"""Eager, bf16 autocast, ``torch.compile`` and onnxruntime side by side (``benchmark.py
--runtimes``).

One case (model x size x batch, inference) runs in one worker process: the backbone in
eval mode, the same under ``torch.autocast(device, torch.bfloat16)`` (``bf16``), its
compiled form (:func:`mmscope.deploy.compile_backbone` options: inductor,
``dynamic=True``, the form the tests check), the same with ``dynamic=False``
(``compile-static``: kernels generated for the one input size, which inductor's CPU
code generator vectorises; a new compilation for every other size), the compiled form
(``dynamic=True``) with inductor's ``freezing`` (``compile-freezing``: the weights become
constants of the graph, so that inductor folds them and pre-packs them for oneDNN's
convolutions and matmuls; inference only) and its ONNX export (TorchScript exporter,
dynamic H/W, run by an onnxruntime session with the same thread count). Each runtime is
primed (compilation, session creation and the first run are not timed) and checked
against eager (largest relative error of the outputs); then the timed rounds alternate
the runtimes, rotating their order, so that all of them see the same machine load. The
speed-up of a runtime in a round is ``t(eager) / t(runtime)``; the row reports medians.

A training case (``--modes train``) takes ``eager`` and ``bf16`` only: a step is the
forward in train mode (under autocast for ``bf16``), a loss and its backward, without the
optimizer (the weights stay the same). The loss is a fixed random projection of the
outputs (not the benchmark's mean of the outputs: after a BatchNorm in train mode that
mean does not depend on the input, and its gradient would reach only the last norm);
dropout and stochastic depth are switched off, so that the error reported is that of the
parameter gradients (all of them, as one vector) against fp32's.
"""
import statistics
import time
from typing import Callable, Dict, List

__all__ = [
    'RUNTIMES', 'TRAIN_RUNTIMES', 'measure_runtimes', 'finish_runtimes', 'runtime_table',
    'runtimes_done'
]

RUNTIMES = ('eager', 'bf16', 'compile', 'compile-static', 'compile-freezing', 'onnxruntime')
#: The runtimes of a training case.
TRAIN_RUNTIMES = ('eager', 'bf16')


def _train_arms(case: Dict, model, x) -> Dict[str, Callable]:
    """Training steps (forward, loss, backward; no optimizer step) per runtime."""
    import contextlib

    import torch
    wrong = [n for n in case['runtimes'] if n not in TRAIN_RUNTIMES]
    if wrong:
        raise ValueError(f'training cases take the runtimes {list(TRAIN_RUNTIMES)}, got {wrong}')
    params = [p for p in model.parameters() if p.requires_grad]
    weights = []  # the fixed projection, one tensor per output (made by the first step)

    def loss_of(outputs):
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs, )
        if not weights:
            g = torch.Generator().manual_seed(0)
            weights.extend(torch.randn(o.shape, generator=g).to(o.device) for o in outputs)
        return sum((o.float() * w).sum() / o.numel() for o, w in zip(outputs, weights))

    def arm(autocast):

        def run():
            for p in params:
                p.grad = None
            with autocast:
                out = model(x)
            loss_of(out).backward()

        return run

    device = next(iter(params)).device.type
    return {
        n:
        arm(
            torch.autocast(device, dtype=torch.bfloat16) if n ==
            'bf16' else contextlib.nullcontext())
        for n in case['runtimes']
    }


def _arms(case: Dict, model) -> Dict[str, Callable]:
    import torch

    from mmscope.deploy import OnnxModel, TensorWrapper, export_onnx
    x = torch.randn(case['batch'], 3, *case['size'], generator=torch.Generator().manual_seed(0))
    if case.get('mode') == 'train':
        return _train_arms(case, model, x)
    arms = {}
    for name in case['runtimes']:
        if name == 'eager':
            arms[name] = lambda: model(x)
        elif name == 'bf16':

            def run_bf16():
                with torch.autocast(x.device.type, dtype=torch.bfloat16):
                    return model(x)

            arms[name] = run_bf16
        elif name in ('compile', 'compile-static', 'compile-freezing'):
            options = {'freezing': True} if name == 'compile-freezing' else None
            compiled = torch.compile(model, dynamic=name != 'compile-static', options=options)
            arms[name] = lambda compiled=compiled: compiled(x)
        elif name == 'onnxruntime':
            data = export_onnx(TensorWrapper(model, 'backbone'), x, check_inputs=[])['onnx']
            session = OnnxModel(data, threads=torch.get_num_threads())
            arms[name] = lambda session=session: session(x)
        else:
            raise ValueError(f'runtime must be one of {RUNTIMES}, got {name!r}')
    return arms


def measure_runtimes(case: Dict, model) -> Dict:
    """Prime, check and time every runtime of ``case['runtimes']`` on ``model`` (see the
    module docstring): per-runtime times, CPU times, speed-ups against eager per round,
    priming seconds and the relative error against eager."""
    import torch

    from mmscope.deploy.onnx import relative_error
    train = case.get('mode') == 'train'
    model.train(train)
    if train:
        for m in model.modules():  # dropout off: a deterministic step to compare
            if isinstance(m, torch.nn.Dropout) or type(m).__name__ == 'DropPath':
                m.eval()
    with torch.set_grad_enabled(train):
        arms = _arms(case, model)
        prime, outputs = {}, {}
        for name, run in arms.items():
            t0 = time.perf_counter()
            out = run()
            prime[name] = time.perf_counter() - t0
            if train:
                out = torch.cat(
                    [p.grad.flatten() for p in model.parameters() if p.grad is not None])
            outputs[name] = [
                o.detach().float().numpy()
                for o in (out if isinstance(out, (tuple, list)) else (out, ))
            ]
            for _ in range(case['warmup']):
                run()
        ref = outputs.get('eager', next(iter(outputs.values())))
        errors = {n: max(relative_error(a, b) for a, b in zip(o, ref)) for n, o in outputs.items()}
        names = list(arms)
        times = {n: [] for n in names}
        cpu = {n: [] for n in names}
        for i in range(case['repeat']):
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                t0, c0 = time.perf_counter(), time.process_time()
                arms[name]()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    base = times.get('eager')
    speedups = {n: [b / t for b, t in zip(base, times[n])] for n in names} if base else {}
    return dict(
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        runtime_times_s=times,
        runtime_cpu_times_s=cpu,
        runtime_speedups=speedups,
        prime_s=prime,
        rel_err_vs_eager=errors,
        threads=torch.get_num_threads())


def finish_runtimes(case: Dict, res: Dict, **extra) -> Dict:
    """The result row of a runtimes case: medians per runtime."""
    row = {
        k: v
        for k, v in case.items()
        if k not in ('spec', 'twin_spec', 'backbone_args', 'official_code', 'official_deps')
    }
    row['size'] = 'x'.join(map(str, case['size']))
    row.update(status=res.pop('status', 'ok'), error=res.pop('error', None), **res)
    row.update(extra)
    if row['status'] == 'ok':
        row['median_s'] = {n: statistics.median(t) for n, t in row['runtime_times_s'].items()}
        row['images_per_s'] = {n: case['batch'] / t for n, t in row['median_s'].items()}
        row['speedup_median'] = {
            n: statistics.median(s)
            for n, s in row['runtime_speedups'].items()
        }
    return row


def runtime_table(rows: List[Dict]) -> str:
    """Markdown table: one line per case and runtime."""
    from .report import fmt, format_table
    body = []
    for r in rows:
        if r['status'] != 'ok':
            body.append([
                r['model'], r['size'],
                str(r['batch']),
                r.get('mode', 'infer'), f"{r['status']}: {r.get('error') or ''}"
            ])
            continue
        for n in r['median_s']:
            s = r['speedup_median'].get(n)
            body.append([
                r['model'], r['size'],
                str(r['batch']),
                r.get('mode', 'infer'), n,
                fmt(r['median_s'][n] * 1e3, '.0f'),
                fmt(r['images_per_s'][n], '.2f'), '-' if s is None else f'{s:.2f}x',
                f"{r['prime_s'][n]:.1f}", f"{r['rel_err_vs_eager'][n]:.1e}"
            ])
    head = [
        'model', 'size', 'batch', 'mode', 'runtime', 'ms/step (median)', 'images/s',
        'speed-up vs eager (median of rounds)', 'priming s', 'rel. err vs eager (train: gradients)'
    ]
    return format_table(head, body)


def runtimes_done(row: Dict) -> str:
    """The end of the progress line of a runtimes case."""
    if row['status'] != 'ok':
        return f"{row['status']}: {row['error']}"
    return ', '.join(f"{n} {row['images_per_s'][n]:.2f} img/s" +
                     (f" ({row['speedup_median'][n]:.2f}x)"
                      if n != 'eager' and n in row['speedup_median'] else '')
                     for n in row['median_s'])
