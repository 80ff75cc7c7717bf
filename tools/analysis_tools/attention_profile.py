"""Every attention call of an mmscope backbone, timed with both kernels, one call at a time.

    python tools/analysis_tools/attention_profile.py --model scalablevit-s
        [--size 224] [--batch 8] [--mode infer|train] [--repeat 15] [--threads 1]
        [--device cpu|cuda] [--json FILE]

One forward of the backbone (train mode with gradients for ``--mode train``) records the
arguments of every :func:`mmscope.models.layers.scaled_dot_attention` call. Calls with the
same shapes, bias and scale are grouped. Each group is then replayed on its recorded
tensors with the default path (``fused``) and with the reference path (plain matmul +
softmax), one call of each per round in ABBA order so that both see the same machine load:
a forward under ``no_grad`` for ``infer``, forward + backward for ``train``. Printed per
group: the query / key / value shapes, the bias, how many calls the backbone makes, the
median time of one call with each path, the median and range of the per-round ratio
``t(reference) / t(fused)``, and what the default path runs on this device
(``flash``: SDPA's CPU flash kernel, ``matmul``: the plain matmuls picked by the CPU
dispatch rules of ``attention.py``, ``sdpa``: on CUDA, whichever kernel SDPA picks).

The totals weigh each group by its number of calls and compare them with a whole step of
the backbone (forward, or forward + backward, default path), also timed here. Attention's
share of the step bounds what any attention kernel can change in the step: the benchmark's
``fused`` / ``reference`` ratio of a whole step cannot move by more than that share times
the kernels' difference.

MODEL is any model of ``benchmark.py`` whose attention goes through mmscope (an mmscope
arch such as ``scopevit-t`` or ``scalablevit-s``, with ``:k=v`` constructor arguments, or a
config file with an mmscope backbone). Times are process CPU time on CPU (steady on a
shared machine) and synchronised wall time on CUDA.
"""
import argparse
import json
import logging
import os
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import benchmark  # noqa: E402  (same folder: model specs and machine description)


def _signature(call):
    bias = call['bias']
    return (tuple(call['q'].shape), tuple(call['k'].shape), tuple(call['v'].shape),
            None if bias is None else (tuple(bias.shape), str(bias.dtype).replace('torch.', ''),
                                       call['bias_requires_grad']),
            round(float(call['scale']), 8), call['requires_grad'])


def record_calls(model, x, train):
    """One forward (with gradients when ``train``): the grouped attention calls in order of
    first appearance, each ``dict(call=first call's arguments, count=n)``."""
    import torch

    from mmscope.models.layers import record_attention_calls
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
        from mmscope.models.layers.attention import _broadcast_lead, _cpu_matmul_is_faster
        if leaves[0].device.type != 'cpu':
            return 'sdpa'  # whichever kernel SDPA picks on that device
        with torch.set_grad_enabled(train):
            lead = _broadcast_lead(*leaves)
            return 'matmul' if _cpu_matmul_is_faster(*leaves, bias, lead) else 'flash'

    return run, default_kernel


def _timer(device):
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


def profile(args):
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    spec = benchmark.parse_model(args.model)
    library, cfg = benchmark.resolve_backbone(spec)
    if not benchmark.is_mmscope(library, cfg):
        raise ValueError(f'{args.model}: not an mmscope backbone; only mmscope attention '
                         'calls can be recorded')
    cfg['attn_impl'] = None  # every replay names its path
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)  # init_weights' report
    model = benchmark.build_backbone(library, cfg).to(device)
    train = args.mode == 'train'
    h, w = benchmark.parse_size(args.size)
    x = torch.randn(args.batch, 3, h, w, device=device)
    groups = record_calls(model, x, train)
    if not groups:
        raise ValueError(f'{args.model} made no scaled_dot_attention call')
    timed = _timer(device)
    rows = []
    for g in groups:
        call = g['call']
        run, default_kernel = make_replay(call, train)
        fused, ref, ratios = alternate(run, args.repeat, timed)
        bias = call['bias']
        rows.append(dict(
            q=list(call['q'].shape), k=list(call['k'].shape), v=list(call['v'].shape),
            bias=None if bias is None else dict(
                shape=list(bias.shape), dtype=str(bias.dtype).replace('torch.', ''),
                requires_grad=call['bias_requires_grad']),
            count=g['count'], default_kernel=default_kernel(),
            fused_ms=1e3 * statistics.median(fused), reference_ms=1e3 * statistics.median(ref),
            ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios)))
        print(_row_text(rows[-1]), flush=True)

    def whole_step():
        if train:
            model.zero_grad(set_to_none=True)
            benchmark._loss(model(x)).backward()
        else:
            with torch.no_grad():
                model(x)

    model.train(train)
    whole_step()
    steps = [timed(whole_step) for _ in range(args.step_repeat)]
    totals = {p: sum(r['count'] * r[f'{p}_ms'] for r in rows) for p in ('fused', 'reference')}
    best = sum(r['count'] * min(r['fused_ms'], r['reference_ms']) for r in rows)
    step_ms = 1e3 * statistics.median(steps)
    summary = dict(
        attention_fused_ms=totals['fused'], attention_reference_ms=totals['reference'],
        attention_best_ms=best, step_ms=step_ms, attention_share=totals['fused'] / step_ms,
        calls=sum(r['count'] for r in rows),
        # t(step, every call on the reference path) / t(step, default path): what the
        # benchmark's whole-step speed-up should be, the rest of the step being shared
        predicted_speedup=(step_ms - totals['fused'] + totals['reference']) / step_ms)
    return rows, summary


def _row_text(r):
    bias = '-' if r['bias'] is None else (
        f"{'x'.join(map(str, r['bias']['shape']))} {r['bias']['dtype']}" +
        (' (grad)' if r['bias']['requires_grad'] else ''))
    return (f"q {'x'.join(map(str, r['q']))} k {'x'.join(map(str, r['k']))} "
            f"v {'x'.join(map(str, r['v']))} bias {bias} x{r['count']}: "
            f"fused {r['fused_ms']:.2f} ms, reference {r['reference_ms']:.2f} ms, "
            f"ref/fused {r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}), "
            f"default runs {r['default_kernel']}")


def markdown(rows, summary):
    head = ['q (..., N, D)', 'k', 'v', 'bias', 'calls', 'fused ms', 'reference ms',
            'ref / fused (range)', 'default runs']
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        bias = '-' if r['bias'] is None else (
            f"{r['bias']['dtype']} {'x'.join(map(str, r['bias']['shape']))}" +
            (', grad' if r['bias']['requires_grad'] else ''))
        out.append('| ' + ' | '.join([
            'x'.join(map(str, r['q'])), 'x'.join(map(str, r['k'][-2:])),
            'x'.join(map(str, r['v'][-2:])), bias, str(r['count']), f"{r['fused_ms']:.2f}",
            f"{r['reference_ms']:.2f}", f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-"
            f"{r['ratio_max']:.2f})", r['default_kernel']]) + ' |')
    s = summary
    out.append('')
    out.append(f"{s['calls']} calls; attention {s['attention_fused_ms']:.0f} ms with the "
               f"default path, {s['attention_reference_ms']:.0f} ms with the reference path, "
               f"{s['attention_best_ms']:.0f} ms with the faster path per call; whole step "
               f"{s['step_ms']:.0f} ms; attention share {100 * s['attention_share']:.1f}%; "
               f"predicted whole-step speed-up of the default path: "
               f"{s['predicted_speedup']:.3f}x")
    return '\n'.join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Time every attention call of an mmscope backbone with the default and '
        'the reference path.', formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help='mmscope arch (scalablevit-s) or config')
    p.add_argument('--size', default='224', help='H or HxW')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--mode', choices=['infer', 'train'], default='infer')
    p.add_argument('--repeat', type=int, default=15, help='ABBA rounds per call group')
    p.add_argument('--step-repeat', type=int, default=3, help='timed whole steps')
    p.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    p.add_argument('--json', default=None, help='write rows, summary and machine here')
    args = p.parse_args(argv)
    if args.repeat < 1 or args.step_repeat < 1 or args.batch < 1:
        p.error('--repeat, --step-repeat and --batch must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        rows, summary = profile(args)
    except ValueError as e:
        print(f'attention_profile.py: error: {e}', file=sys.stderr)
        return 2
    print()
    print(markdown(rows, summary))
    if args.json:
        meta = dict(command='python ' + ' '.join(
            [osp.relpath(__file__, os.getcwd())] + (sys.argv[1:] if argv is None else argv)),
            date=time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime()),
            load=os.getloadavg(), **benchmark.machine_info(args.device))
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, args=vars(args), rows=rows, summary=summary), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
