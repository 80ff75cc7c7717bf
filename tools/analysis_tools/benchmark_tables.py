"""Markdown tables from the JSON files of ``benchmark.py`` (as in docs/benchmarks.md).

    python tools/analysis_tools/benchmark_tables.py attention RESULT.json [...]
    python tools/analysis_tools/benchmark_tables.py with_cp RESULT.json [...]
    python tools/analysis_tools/benchmark_tables.py compare RESULT.json [...]
    python tools/analysis_tools/benchmark_tables.py official RESULT.json [...]
    python tools/analysis_tools/benchmark_tables.py profile PROFILE.json [...]

* ``attention``: the default (fused) and reference attention of mmscope backbones side by
  side: images/s, the paired speed-up, peak memory of the step and its ratio;
* ``with_cp``: training steps without and with gradient checkpointing;
* ``compare``: every model's params, FLOPs, images/s and peak memory per mode;
* ``official``: mmscope (default attention) against the released code (``--vs-official``):
  images/s, the paired speed-up with its per-round range, peak memory and its ratio;
* ``profile``: one line per ``attention_profile.py --json`` file: attention calls, their
  time with each path, attention's share of the step and the whole-step speed-up it
  predicts for the default path.
"""
import argparse
import json
import sys


def load(paths):
    results, paired, ratios, metas = [], [], {'attention': [], 'official': []}, []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        metas.append(data['meta'])
        results += [r for r in data['results'] if r.get('status') == 'ok']
        paired += data.get('paired', [])
        for kind in ratios:
            ratios[kind] += data.get('ratios', {}).get(kind, [])
    return metas, results, paired, ratios


def table(header, rows):
    out = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    out += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(out)


def f1(x, digits=1):
    return '-' if x is None else f'{x:.{digits}f}'


def attention_table(ratios):
    header = [
        'model', 'size', 'batch', 'step', 'fused img/s', 'reference img/s', 'speed-up (paired)',
        'fused peak MB', 'reference peak MB', 'memory ratio'
    ]
    rows = []
    for r in ratios:
        digits = 2 if r['fused_images_per_s'] < 1 else 1
        rows.append(
            (r['model'], r['size'], r['batch'], r['mode'], f1(r['fused_images_per_s'], digits),
             f1(r['reference_images_per_s'],
                digits), f"**{f1(r.get('paired_speedup') or r['speedup'], 2)}x**",
             f1(r['fused_peak_mb'], 0), f1(r['reference_peak_mb'],
                                           0), f"{f1(r['memory_ratio'], 1)}x"))
    return table(header, rows)


def official_table(ratios):
    header = [
        'model', 'size', 'batch', 'step', 'mmscope img/s', 'released img/s', 'speed-up (paired)',
        'per-round range', 'mmscope peak MB', 'released peak MB', 'memory ratio'
    ]
    rows = []
    for r in ratios:
        digits = 2 if r['mmscope_images_per_s'] < 1 else 1
        paired = r.get('paired_speedup')
        rows.append(
            (r['model'], r['size'], r['batch'], r['mode'], f1(r['mmscope_images_per_s'], digits),
             f1(r['official_images_per_s'], digits), f"**{f1(paired or r['speedup'], 2)}x**",
             f"{f1(r['paired_min'], 2)}-{f1(r['paired_max'], 2)}" if paired else '-',
             f1(r['mmscope_peak_mb'], 0), f1(r['official_peak_mb'],
                                             0), f"{f1(r['memory_ratio'], 1)}x"))
    return table(header, rows)


def with_cp_table(results):
    header = [
        'model', 'size', 'batch', 'peak MB, with_cp off', 'peak MB, with_cp on', 'memory factor',
        's/step off', 's/step on', 'time factor'
    ]
    by_key = {}
    for r in results:
        if r['mode'] != 'train':
            continue
        by_key.setdefault((r['model'], r['size'], r['batch'], r['attn']),
                          {})[bool(r['with_cp'])] = r
    rows = []
    for (model, size, batch, _), pair in by_key.items():
        if set(pair) != {False, True}:
            continue
        off, on = pair[False], pair[True]
        rows.append((model, size, batch, f1(off['peak_mem_mb'], 0), f1(on['peak_mem_mb'], 0),
                     f"**{off['peak_mem_mb'] / on['peak_mem_mb']:.2f}x** lower",
                     f1(off['median_s'], 2), f1(on['median_s'],
                                                2), f"{on['median_s'] / off['median_s']:.2f}x"))
    return table(header, rows)


def compare_table(results):
    modes = sorted({r['mode'] for r in results}, key=['infer', 'train'].index)
    header = ['model', 'params (M)', 'GFLOPs']
    for m in modes:
        header += [f'{m} img/s', f'{m} peak MB']
    rows, order = {}, []
    for r in results:
        if r['attn'] not in ('fused', None, 'n/a') and r.get('mmscope'):
            continue
        key = (r['model'], r['size'], r['batch'])
        if key not in rows:
            rows[key] = {'params': r.get('params_m'), 'gflops': r.get('gflops')}
            order.append(key)
        rows[key][r['mode']] = r
    out = []
    for key in order:
        row = rows[key]
        cells = [key[0], f1(row['params'], 1), f1(row['gflops'], 2)]
        for m in modes:
            r = row.get(m)
            cells += [f1(r['images_per_s'], 1) if r else '-', f1(r['peak_mem_mb'], 0) if r else '-']
        out.append(cells)
    return table(header, out)


def profile_table(paths):
    header = [
        'model', 'size', 'batch', 'step', 'calls', 'attention share', 'attention ms, default',
        'attention ms, reference', 'step ms', 'predicted speed-up'
    ]
    rows, metas = [], []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        a, s = data['args'], data['summary']
        metas.append(data['meta'])
        rows.append((a['model'], a['size'], a['batch'], a['mode'], s['calls'],
                     f"{100 * s['attention_share']:.1f}%", f1(s['attention_fused_ms'], 0),
                     f1(s['attention_reference_ms'],
                        0), f1(s['step_ms'], 0), f"**{s['predicted_speedup']:.3f}x**"))
    return table(header, rows), metas


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('kind', choices=['attention', 'with_cp', 'compare', 'official', 'profile'])
    p.add_argument('json', nargs='+', help='files written by benchmark.py --json')
    args = p.parse_args(argv)
    if args.kind == 'profile':
        text, metas = profile_table(args.json)
        print(text)
        for meta in metas:
            print(f"\n<sub>`{meta['command']}` ({meta['date'][:16].replace('T', ' ')} UTC)</sub>")
        return
    metas, results, paired, ratios = load(args.json)
    if not results:
        sys.exit(f'no successful cases in {", ".join(args.json)}')
    if args.kind == 'attention':
        print(attention_table(ratios['attention']))
    elif args.kind == 'official':
        print(official_table(ratios['official']))
    elif args.kind == 'with_cp':
        print(with_cp_table(results))
    else:
        print(compare_table(results))
    for meta in metas:
        print(f"\n<sub>`{meta['command']}` ({meta['date'][:16].replace('T', ' ')} UTC, "
              f"load {meta['load_before'][0]:.1f} -> {meta['load_after'][0]:.1f}, "
              f"{meta.get('elapsed_s', 0) / 60:.0f} min)</sub>")


if __name__ == '__main__':
    main()
