"""Eager, ``torch.compile`` and onnxruntime side by side (``benchmark.py --runtimes``).

One case (model x size x batch, inference) runs in one worker process: the backbone in
eval mode, its compiled form (:func:`mmscope.deploy.compile_backbone` options: inductor,
``dynamic=True``, the form the tests check), the same with ``dynamic=False``
(``compile-static``: kernels generated for the one input size, which inductor's CPU
code generator vectorises; a new compilation for every other size), the compiled form
(``dynamic=True``) with inductor's ``freezing`` (``compile-freezing``: the weights become constants of the graph, so that
inductor folds them and pre-packs them for oneDNN's convolutions and matmuls; inference
only) and its ONNX export (TorchScript exporter, dynamic H/W, run by an onnxruntime
session with the same thread count). Each runtime is
primed (compilation, session creation and the first run are not timed) and checked
against eager (largest relative error of the outputs); then the timed rounds alternate
the runtimes, rotating their order, so that all of them see the same machine load. The
speed-up of a runtime in a round is ``t(eager) / t(runtime)``; the row reports medians.
"""
import statistics
import time
from typing import Callable, Dict, List

__all__ = ['RUNTIMES', 'measure_runtimes', 'finish_runtimes', 'runtime_table', 'runtimes_done']

RUNTIMES = ('eager', 'compile', 'compile-static', 'compile-freezing', 'onnxruntime')


def _arms(case: Dict, model) -> Dict[str, Callable]:
    import torch

    from mmscope.deploy import OnnxModel, TensorWrapper, export_onnx
    x = torch.randn(case['batch'], 3, *case['size'], generator=torch.Generator().manual_seed(0))
    arms = {}
    for name in case['runtimes']:
        if name == 'eager':
            arms[name] = lambda: model(x)
        elif name in ('compile', 'compile-static', 'compile-freezing'):
            options = {'freezing': True} if name == 'compile-freezing' else None
            compiled = torch.compile(model, dynamic=name != 'compile-static',
                                     options=options)
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
    model.eval()
    with torch.no_grad():
        arms = _arms(case, model)
        prime, outputs = {}, {}
        for name, run in arms.items():
            t0 = time.perf_counter()
            out = run()
            prime[name] = time.perf_counter() - t0
            outputs[name] = [o.detach().numpy() for o in (out if isinstance(out, (tuple, list))
                                                          else (out, ))]
            for _ in range(case['warmup']):
                run()
        ref = outputs.get('eager', next(iter(outputs.values())))
        errors = {n: max(relative_error(a, b) for a, b in zip(o, ref))
                  for n, o in outputs.items()}
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
    return dict(params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                runtime_times_s=times, runtime_cpu_times_s=cpu, runtime_speedups=speedups,
                prime_s=prime, rel_err_vs_eager=errors, threads=torch.get_num_threads())


def finish_runtimes(case: Dict, res: Dict, **extra) -> Dict:
    """The result row of a runtimes case: medians per runtime."""
    row = {k: v for k, v in case.items() if k not in ('spec', 'twin_spec', 'backbone_args',
                                                      'official_code', 'official_deps')}
    row['size'] = 'x'.join(map(str, case['size']))
    row.update(status=res.pop('status', 'ok'), error=res.pop('error', None), **res)
    row.update(extra)
    if row['status'] == 'ok':
        row['median_s'] = {n: statistics.median(t) for n, t in row['runtime_times_s'].items()}
        row['images_per_s'] = {n: case['batch'] / t for n, t in row['median_s'].items()}
        row['speedup_median'] = {n: statistics.median(s)
                                 for n, s in row['runtime_speedups'].items()}
    return row


def runtime_table(rows: List[Dict]) -> str:
    """Markdown table: one line per case and runtime."""
    from .report import fmt, format_table
    body = []
    for r in rows:
        if r['status'] != 'ok':
            body.append([r['model'], r['size'], str(r['batch']),
                         f"{r['status']}: {r.get('error') or ''}"])
            continue
        for n in r['median_s']:
            s = r['speedup_median'].get(n)
            body.append([r['model'], r['size'], str(r['batch']), n,
                         fmt(r['median_s'][n] * 1e3, '.0f'), fmt(r['images_per_s'][n], '.2f'),
                         '-' if s is None else f'{s:.2f}x', f"{r['prime_s'][n]:.1f}",
                         f"{r['rel_err_vs_eager'][n]:.1e}"])
    head = ['model', 'size', 'batch', 'runtime', 'ms/step (median)', 'images/s',
            'speed-up vs eager (median of rounds)', 'priming s', 'rel. err vs eager']
    return format_table(head, body)


def runtimes_done(row: Dict) -> str:
    """The end of the progress line of a runtimes case."""
    if row['status'] != 'ok':
        return f"{row['status']}: {row['error']}"
    return ', '.join(f"{n} {row['images_per_s'][n]:.2f} img/s"
                     + (f" ({row['speedup_median'][n]:.2f}x)" if n != 'eager' and
                        n in row['speedup_median'] else '') for n in row['median_s'])
