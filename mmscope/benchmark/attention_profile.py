"""Every attention call of an mmscope backbone, timed with both kernels, one call at a time
(``tools/analysis_tools/attention_profile.py`` is its command line).

One forward of the backbone (train mode with gradients for ``mode='train'``) records the
arguments of every :func:`mmscope.models.layers.scaled_dot_attention` call
(:func:`record_calls`, through :func:`record_attention_calls`). Calls with the same
shapes, bias and scale are grouped. Each group is then replayed on its recorded tensors
(:func:`make_replay`) with the default path (``fused``) and with the reference path (plain
matmul + softmax), one call of each per round in ABBA order so that both see the same
machine load (:func:`alternate`): a forward under ``no_grad`` for ``infer``, forward +
backward for ``train``. Per group (:func:`profile`): the query / key / value shapes, the
bias, how many calls the backbone makes, the median time of one call with each path, the
median and range of the per-round ratio ``t(reference) / t(fused)``, and what the default
path runs on this device (the ``'auto'`` dispatch of ``mmscope/models/layers/dispatch.py``:
measured on this machine, or its fixed CPU rules when the measurement is off; ``flash``:
SDPA's CPU flash kernel, ``matmul``: the plain matmuls, ``sdpa``: on CUDA, whichever
kernel SDPA picks).

The summary weighs each group by its number of calls and compares the totals with a whole
step of the backbone (forward, or forward + backward, default path), also timed:
attention's share of the step, and the whole-step speed-up of the default path that the
per-call times predict. Times are process CPU time on CPU (steady on a shared machine) and
synchronised wall time on CUDA.
"""
import contextlib
import functools
import logging
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .cases import parse_size
from .measure import step_loss
from .specs import build_backbone, is_mmscope, parse_model, resolve_backbone

__all__ = [
    'record_attention_calls', 'record_calls', 'make_replay', 'alternate', 'profile', 'row_text',
    'markdown'
]

# ---------------------------------------------------------------------------- recording
_recording = threading.local()  # .calls: the list of this thread's innermost recorder
_patch_lock = threading.Lock()
_patch = dict(depth=0, kernel=None, wrapper=None)


def _bindings(obj) -> List[Tuple[Dict, str]]:
    """``(module dict, name)`` of every loaded module that binds ``obj`` by some name: the
    backbones call the kernel through the name their module imported
    (``from ..layers import scaled_dot_attention``), so that is where it is replaced."""
    found = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, '__dict__', None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            if value is obj:
                found.append((namespace, name))
    return found


def _recording_kernel(kernel):
    """``kernel`` that also appends its arguments to this thread's recorder, if any."""
    from mmscope.models.layers.attention import attention_path, resolve_attention_impl
    from mmscope.models.layers.padding import symbolic_shapes

    @functools.wraps(kernel)
    def scaled_dot_attention(q, k, v, bias=None, scale=None, dropout_p=0., impl=None):
        calls = getattr(_recording, 'calls', None)
        if calls is not None and not symbolic_shapes():
            record = dict(
                q=q.detach(),
                k=k.detach(),
                v=v.detach(),
                bias=None if bias is None else bias.detach(),
                bias_requires_grad=bias is not None and bias.requires_grad,
                requires_grad=q.requires_grad or k.requires_grad or v.requires_grad,
                scale=q.shape[-1]**-0.5 if scale is None else scale,
                dropout_p=dropout_p,
                impl=resolve_attention_impl(impl),
                # the kernel's own choice (attention.py; 'auto': measured now or cached)
                path=attention_path(q, k, v, bias, scale, dropout_p, impl))
            calls.append(record)
        return kernel(q, k, v, bias, scale, dropout_p, impl)

    return scaled_dot_attention


@contextlib.contextmanager
def record_attention_calls():
    """Context manager yielding a list that receives one dict per
    :func:`mmscope.models.layers.scaled_dot_attention` call made inside it (this thread;
    the innermost of nested recorders takes the calls): the detached ``q``, ``k``, ``v``,
    ``bias``, whether the inputs (``requires_grad``) and the bias (``bias_requires_grad``)
    needed gradients, ``scale``, ``dropout_p``, ``impl`` and the ``path`` the call took
    (``'sdpa'``: ``F.scaled_dot_product_attention``, ``'matmul'``: the plain matmuls,
    ``'chunked'``: the plain matmuls one chunk at a time).
    Calls under symbolic sizes (tracing, export) are not recorded.

    While any recorder is open, every loaded module's binding of the kernel (the
    backbones', ``mmscope.models.layers``', a test module's) is replaced by a recording
    wrapper, restored when the last one closes; a name bound inside a function before the
    recorder opened is not replaced (call it through its module there)."""
    with _patch_lock:
        if _patch['depth'] == 0:
            from mmscope.models.layers import attention
            kernel = attention.scaled_dot_attention
            wrapper = _recording_kernel(kernel)
            for namespace, name in _bindings(kernel):
                namespace[name] = wrapper
            _patch.update(kernel=kernel, wrapper=wrapper)
        _patch['depth'] += 1
    calls, old = [], getattr(_recording, 'calls', None)
    _recording.calls = calls
    try:
        yield calls
    finally:
        _recording.calls = old
        with _patch_lock:
            _patch['depth'] -= 1
            if _patch['depth'] == 0:
                for namespace, name in _bindings(_patch['wrapper']):
                    namespace[name] = _patch['kernel']
                _patch.update(kernel=None, wrapper=None)


def _print(line: str) -> None:
    print(line, flush=True)


def _signature(call):
    """What groups calls: the shapes, the bias, the scale and whether grads flow."""
    bias = call['bias']
    return (tuple(call['q'].shape), tuple(call['k'].shape), tuple(call['v'].shape),
            None if bias is None else
            (tuple(bias.shape), str(bias.dtype).replace('torch.', ''), call['bias_requires_grad']),
            round(float(call['scale']), 8), call['requires_grad'])


def record_calls(model, x, train):
    """One forward (with gradients when ``train``): the grouped attention calls in order of
    first appearance, each ``dict(call=first call's arguments, count=n)``."""
    import torch

    model.train(train)
    with record_attention_calls() as calls, torch.set_grad_enabled(train):
        model(x)
    groups = {}
    for call in calls:
        groups.setdefault(_signature(call), dict(call=call, count=0))['count'] += 1
    return list(groups.values())


def make_replay(call, train):
    """``run(impl)``: one call of the recorded arguments with that path (and its backward
    when ``train``), on fresh leaf copies so that every run does the same work."""
    import torch

    from mmscope.models.layers import scaled_dot_attention
    leaves = [call[name].clone() for name in ('q', 'k', 'v')]
    bias = None if call['bias'] is None else call['bias'].clone()
    grad_bias = train and call['bias_requires_grad']
    for t in leaves:
        t.requires_grad_(train and call['requires_grad'])
    if grad_bias:
        bias.requires_grad_(True)
    inputs = leaves + ([bias] if grad_bias else [])
    needs_grad = [t for t in inputs if t.requires_grad]

    def run(impl):
        with torch.set_grad_enabled(train):
            out = scaled_dot_attention(*leaves, bias=bias, scale=call['scale'], impl=impl)
            if train and needs_grad:
                torch.autograd.grad(out.sum(), needs_grad)

    def default_kernel():
        from mmscope.models.layers import attention_path
        with torch.set_grad_enabled(train):
            path = attention_path(*leaves, bias, call['scale'], call['dropout_p'])
        if path == 'sdpa':  # on CUDA, whichever kernel SDPA picks there
            return 'flash' if leaves[0].device.type == 'cpu' else 'sdpa'
        return path  # 'matmul' or 'chunked'

    return run, default_kernel


def _timer(device):
    """``timed(fn, *args)``: seconds of one call, process CPU time on CPU, synchronised
    wall time on CUDA."""
    import torch

    def timed(fn, *args):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            fn(*args)
            torch.cuda.synchronize(device)
            return time.perf_counter() - t0
        t0 = time.process_time()
        fn(*args)
        return time.process_time() - t0

    return timed


def alternate(run, repeat, timed):
    """ABBA rounds of ``run('fused')`` / ``run('reference')``: per-path times and ratios."""
    for impl in ('fused', 'reference'):  # warm-up, untimed
        run(impl)
        run(impl)
    fused, ref, ratios = [], [], []
    for i in range(repeat):
        order = ('fused', 'reference') if i % 2 == 0 else ('reference', 'fused')
        t = {impl: timed(run, impl) for impl in order}
        fused.append(t['fused'])
        ref.append(t['reference'])
        ratios.append(t['reference'] / t['fused'])
    return fused, ref, ratios


def profile(name: str,
            size: str = '224',
            batch: int = 8,
            mode: str = 'infer',
            repeat: int = 15,
            step_repeat: int = 3,
            threads: Optional[int] = None,
            device: str = 'cpu',
            log: Callable[[str], None] = _print) -> Tuple[List, Dict]:
    """Profile the attention calls of the backbone ``name`` (a benchmark model spec) at
    ``size`` (``'H'`` or ``'HxW'``) and ``batch``: ``(rows, summary)``, one row per call
    group (logged as it is measured) and the totals against a whole step. ValueError for
    a model that is not an mmscope backbone or makes no attention call."""
    import torch

    from mmscope.apis.allocator import tune_cpu_allocator
    tune_cpu_allocator()  # as the benchmark's workers
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(device)
    spec = parse_model(name)
    library, cfg = resolve_backbone(spec)
    if not is_mmscope(library, cfg):
        raise ValueError(f'{name}: not an mmscope backbone; only mmscope attention '
                         'calls can be recorded')
    cfg['attn_impl'] = None  # every replay names its path
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)  # init_weights' report
    model = build_backbone(library, cfg).to(device)
    train = mode == 'train'
    h, w = parse_size(size)
    x = torch.randn(batch, 3, h, w, device=device)
    groups = record_calls(model, x, train)
    if not groups:
        raise ValueError(f'{name} made no scaled_dot_attention call')
    timed = _timer(device)
    rows = []
    for g in groups:
        call = g['call']
        run, default_kernel = make_replay(call, train)
        fused, ref, ratios = alternate(run, repeat, timed)
        bias = call['bias']
        rows.append(
            dict(
                q=list(call['q'].shape),
                k=list(call['k'].shape),
                v=list(call['v'].shape),
                bias=None if bias is None else dict(
                    shape=list(bias.shape),
                    dtype=str(bias.dtype).replace('torch.', ''),
                    requires_grad=call['bias_requires_grad']),
                count=g['count'],
                default_kernel=default_kernel(),
                fused_ms=1e3 * statistics.median(fused),
                reference_ms=1e3 * statistics.median(ref),
                ratio=statistics.median(ratios),
                ratio_min=min(ratios),
                ratio_max=max(ratios)))
        log(row_text(rows[-1]))

    def whole_step():
        if train:
            model.zero_grad(set_to_none=True)
            step_loss(model(x)).backward()
        else:
            with torch.no_grad():
                model(x)

    model.train(train)
    whole_step()
    steps = [timed(whole_step) for _ in range(step_repeat)]
    totals = {p: sum(r['count'] * r[f'{p}_ms'] for r in rows) for p in ('fused', 'reference')}
    best = sum(r['count'] * min(r['fused_ms'], r['reference_ms']) for r in rows)
    step_ms = 1e3 * statistics.median(steps)
    summary = dict(
        attention_fused_ms=totals['fused'],
        attention_reference_ms=totals['reference'],
        attention_best_ms=best,
        step_ms=step_ms,
        attention_share=totals['fused'] / step_ms,
        calls=sum(r['count'] for r in rows),
        # t(step, every call on the reference path) / t(step, default path): what the
        # benchmark's whole-step speed-up should be, the rest of the step being shared
        predicted_speedup=(step_ms - totals['fused'] + totals['reference']) / step_ms)
    return rows, summary


def row_text(r: Dict) -> str:
    """The progress line of one call group."""
    bias = '-' if r['bias'] is None else (
        f"{'x'.join(map(str, r['bias']['shape']))} {r['bias']['dtype']}" +
        (' (grad)' if r['bias']['requires_grad'] else ''))
    return (f"q {'x'.join(map(str, r['q']))} k {'x'.join(map(str, r['k']))} "
            f"v {'x'.join(map(str, r['v']))} bias {bias} x{r['count']}: "
            f"fused {r['fused_ms']:.2f} ms, reference {r['reference_ms']:.2f} ms, "
            f"ref/fused {r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}), "
            f"default runs {r['default_kernel']}")


def markdown(rows: List[Dict], summary: Dict) -> str:
    """The markdown table of the call groups and the summary line."""
    head = [
        'q (..., N, D)', 'k', 'v', 'bias', 'calls', 'fused ms', 'reference ms',
        'ref / fused (range)', 'default runs'
    ]
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        bias = '-' if r['bias'] is None else (
            f"{r['bias']['dtype']} {'x'.join(map(str, r['bias']['shape']))}" +
            (', grad' if r['bias']['requires_grad'] else ''))
        out.append('| ' + ' | '.join([
            'x'.join(map(str, r['q'])), 'x'.join(map(str, r['k'][-2:])), 'x'.join(
                map(str, r['v'][-2:])), bias,
            str(r['count']), f"{r['fused_ms']:.2f}", f"{r['reference_ms']:.2f}",
            f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-"
            f"{r['ratio_max']:.2f})", r['default_kernel']
        ]) + ' |')
    s = summary
    out.append('')
    out.append(f"{s['calls']} calls; attention {s['attention_fused_ms']:.0f} ms with the "
               f"default path, {s['attention_reference_ms']:.0f} ms with the reference path, "
               f"{s['attention_best_ms']:.0f} ms with the faster path per call; whole step "
               f"{s['step_ms']:.0f} ms; attention share {100 * s['attention_share']:.1f}%; "
               f"predicted whole-step speed-up of the default path: "
               f"{s['predicted_speedup']:.3f}x")
    return '\n'.join(out)
