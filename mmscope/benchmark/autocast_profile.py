"""Where a backbone's time goes in fp32 and under bf16 autocast, operator by operator
(``tools/analysis_tools/autocast_profile.py`` is its command line).

The backbone runs the same input in fp32 and under ``torch.autocast(device,
torch.bfloat16)`` (a forward under ``no_grad`` for ``infer``; forward + backward of a fixed
random projection of the outputs for ``train``), both primed, then profiled with
``torch.profiler`` over ``repeat`` steps each, fp32 and bf16 steps alternating. Per ATen
operator: calls and self CPU time per step in each precision, and, from one more bf16 step
watched by a dispatch mode, the dtype its floating outputs had under autocast (``bf16``,
``fp32`` or ``mixed`` over its calls). Casts are the ``aten::_to_copy`` calls that change a
floating dtype; their count and the megabytes they write per step are the cost autocast
adds. Operators whose bf16 time exceeds their fp32 time are the slow kernels of this
machine; operators that stay fp32 under autocast are those the autocast policy keeps in
fp32 or that take an fp32 input (a residual stream, a parameter).
"""
import contextlib
import time
from collections import defaultdict
from typing import Dict, List, Tuple

from .cases import parse_size
from .specs import build_backbone, parse_model, resolve_backbone

__all__ = ['dtype_census', 'profile_precisions', 'markdown']


def _floating_dtypes(out) -> List:
    import torch
    outs = out if isinstance(out, (tuple, list)) else (out, )
    return [o.dtype for o in outs if isinstance(o, torch.Tensor) and o.is_floating_point()]


def dtype_census(step) -> Tuple[Dict[str, Dict[str, int]], Dict[str, float]]:
    """Run ``step`` once under a dispatch mode: per ATen op, how many of its calls had bf16
    floating outputs, fp32 ones or both; and the casts (``_to_copy`` between floating
    dtypes): count and megabytes written."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    ops = defaultdict(lambda: defaultdict(int))
    casts = dict(count=0, mb=0.)

    class Census(TorchDispatchMode):

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = str(func.overloadpacket).replace('aten.', 'aten::')
            kinds = {str(d).replace('torch.', '') for d in _floating_dtypes(out)}
            if kinds:
                ops[name]['bf16' if kinds == {'bfloat16'} else 'fp32' if kinds ==
                          {'float32'} else 'mixed'] += 1
            if name == 'aten::_to_copy' and isinstance(args[0], torch.Tensor) and \
                    args[0].is_floating_point() and isinstance(out, torch.Tensor) and \
                    out.is_floating_point() and out.dtype != args[0].dtype:
                casts['count'] += 1
                casts['mb'] += out.numel() * out.element_size() / 2**20
            return out

    with Census():
        step()
    return {k: dict(v) for k, v in ops.items()}, casts


def profile_precisions(model_spec: str,
                       size: str = '224',
                       batch: int = 8,
                       mode: str = 'infer',
                       repeat: int = 3,
                       threads=None,
                       device: str = 'cpu') -> Dict:
    """The profile of the module doc for one benchmark model spec (``scopevit-t``,
    ``mmpretrain:SwinTransformer:tiny``, a config, ...). Returns ``dict(rows=[...],
    step_ms={fp32, bf16}, casts=...)``; ``rows`` are sorted by bf16 time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from mmscope.apis.allocator import tune_cpu_allocator
    tune_cpu_allocator()  # as the benchmark's workers
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    library, cfg = resolve_backbone(parse_model(model_spec))
    model = build_backbone(library, cfg).to(device)
    train = mode == 'train'
    model.train(train)
    x = torch.randn(batch, 3, *parse_size(size), device=device)
    weights = []

    def step(bf16: bool):
        autocast = (
            torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
        with torch.set_grad_enabled(train), autocast:
            out = model(x)
        if train:
            outs = out if isinstance(out, (tuple, list)) else (out, )
            if not weights:
                g = torch.Generator().manual_seed(0)
                weights.extend(torch.randn(o.shape, generator=g).to(device) for o in outs)
            model.zero_grad(set_to_none=True)
            sum((o.float() * w).sum() for o, w in zip(outs, weights)).backward()

    for bf16 in (False, True, False, True):  # priming
        step(bf16)
    wall = {'fp32': [], 'bf16': []}
    for _ in range(repeat):
        for name in ('fp32', 'bf16'):
            t0 = time.perf_counter()
            step(name == 'bf16')
            wall[name].append(time.perf_counter() - t0)
    per_op = {}
    for name in ('fp32', 'bf16'):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeat):
                step(name == 'bf16')
        per_op[name] = {
            e.key: (e.self_cpu_time_total / repeat / 1e3, e.count / repeat)
            for e in prof.key_averages()
        }
    census, casts = dtype_census(lambda: step(True))
    rows = []
    for op in set(per_op['fp32']) | set(per_op['bf16']):
        t32, n32 = per_op['fp32'].get(op, (0., 0.))
        t16, n16 = per_op['bf16'].get(op, (0., 0.))
        kinds = census.get(op, {})
        rows.append(
            dict(
                op=op,
                fp32_ms=t32,
                fp32_calls=n32,
                bf16_ms=t16,
                bf16_calls=n16,
                under_autocast=', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))))
    rows.sort(key=lambda r: -r['bf16_ms'])
    return dict(
        model=model_spec,
        size=size,
        batch=batch,
        mode=mode,
        repeat=repeat,
        threads=torch.get_num_threads(),
        rows=rows,
        casts=casts,
        step_ms={
            k: 1e3 * min(v)
            for k, v in wall.items()
        })


def markdown(result: Dict, top: int = 25) -> str:
    """The ``top`` operators by bf16 time, and the totals."""
    from .report import format_table
    body = []
    for r in result['rows'][:top]:
        ratio = r['bf16_ms'] / r['fp32_ms'] if r['fp32_ms'] else float('inf')
        body.append([
            r['op'], f"{r['fp32_calls']:.0f}", f"{r['fp32_ms']:.1f}", f"{r['bf16_calls']:.0f}",
            f"{r['bf16_ms']:.1f}", f'{ratio:.2f}' if r['fp32_ms'] else '-', r['under_autocast']
            or '-'
        ])
    head = [
        'op', 'fp32 calls', 'fp32 ms', 'bf16 calls', 'bf16 ms', 'bf16 / fp32',
        'outputs under autocast (calls)'
    ]
    s, c = result['step_ms'], result['casts']
    return (format_table(head, body) + '\n\n' +
            f"{result['model']} {result['size']} batch {result['batch']} {result['mode']}, "
            f"{result['threads']} thread(s): step {s['fp32']:.1f} ms fp32, {s['bf16']:.1f} ms "
            f"bf16 ({s['fp32'] / s['bf16']:.2f}x); casts under autocast: {c['count']} per "
            f"step, {c['mb']:.1f} MB written")
