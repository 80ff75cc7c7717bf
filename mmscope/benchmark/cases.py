"""The benchmark's case matrix, its result rows and the ratios between paired rows.

:func:`build_cases` expands the command line into cases, one per model x size x batch x
mode x with_cp x attention mode: the attention modes of ``--attn`` for mmscope backbones
(``'-'`` for the others), plus ``'paired'`` (both modes alternating in one process) and
``'vs-official'`` (mmscope against the released code, alternating). Each case is a
JSON-able dict that :mod:`mmscope.benchmark.worker` measures. :func:`finish_row` turns a
case and its measurement into a result row (median, spread, images/s, MFU),
:func:`finish_paired` does the same for the alternating runs, and :func:`ratios` pairs the
rows: fused / reference attention, with_cp on / off, mmscope / released code.
"""
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from .specs import is_mmscope, parse_kwargs, parse_model, resolve_backbone, twin_of

__all__ = [
    'SIZE_PRESETS', 'HIDDEN', 'parse_size', 'build_cases', 'check_official_code', 'summarize',
    'finish_row', 'finish_paired', 'ratios'
]

#: ``--sizes`` presets
SIZE_PRESETS = {'cls': ['224', '256'], 'dense': ['512', '800x1344']}
#: case entries not copied into result rows (specs and paths)
HIDDEN = ('spec', 'twin_spec', 'backbone_args', 'official_code', 'official_deps')
#: the fields of a case and a result row that must agree for two rows to be paired
BASE = ('model', 'size', 'batch', 'mode', 'dtype', 'device', 'channels_last', 'compile')


def parse_size(text: str) -> Tuple[int, int]:
    """``'224'`` -> ``(224, 224)``, ``'800x1344'`` -> ``(800, 1344)``."""
    h, _, w = text.lower().partition('x')
    return int(h), int(w or h)


def _released_model_names() -> str:
    """``'scalablevit-s|b|l, scopevit-xt|t|s'``: the short names of every arch with
    released code, per registered family (for messages)."""
    from mmscope.converters.official_code import released_families
    names = []
    for fam in released_families().values():
        archs = [min(fam.short_names(a), key=len, default=a) for a in fam.official.factories]
        names.append(f'{fam.key}-' + '|'.join(archs))
    return ', '.join(names)


def build_cases(options) -> List[Dict]:
    """Every case of a run. ``options`` is the parsed command line of
    ``tools/analysis_tools/benchmark.py`` (the attributes ``model``, ``sizes``,
    ``batch_sizes``, ``modes``, ``attn``, ``paired``, ``paired_repeat``, ``vs_official``,
    ``official_code``, ``official_deps``, ``with_cp``, ``device``, ``dtype``,
    ``channels_last``, ``compile``, ``threads``, ``warmup``, ``repeat``, ``out_indices``,
    ``backbone_args``). ValueError for a spec that cannot be read."""
    args = options
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
                             f'({_released_model_names()})')
    official_specs = {twin: spec for spec, library, _, twin in specs if library == 'official'}
    sizes = []
    for s in args.sizes:
        sizes += SIZE_PRESETS.get(s, [s])
    backbone_args = parse_kwargs(args.backbone_args or '')
    cases = []
    runtimes = list(getattr(args, 'runtimes', None) or [])
    if runtimes:  # eager / bf16 / compile / onnxruntime alternating (train: eager / bf16)
        from .runtimes import TRAIN_RUNTIMES
        modes = list(getattr(args, 'modes', None) or ['infer'])
        if 'train' in modes and not set(runtimes) <= set(TRAIN_RUNTIMES):
            raise ValueError(f'--runtimes with --modes train takes {list(TRAIN_RUNTIMES)} '
                             f'only, got {runtimes}')
        for spec, library, ours, twin in specs:
            for size in sizes:
                for batch, mode in ((b, m) for b in args.batch_sizes for m in modes):
                    cases.append(
                        dict(
                            spec=spec,
                            model=spec['name'],
                            library=library,
                            twin=twin,
                            size=list(parse_size(size)),
                            batch=batch,
                            mode=mode,
                            attn='runtimes',
                            runtimes=runtimes,
                            with_cp=False,
                            device=args.device,
                            dtype='fp32',
                            channels_last=False,
                            compile=False,
                            threads=args.threads,
                            warmup=args.warmup,
                            repeat=args.repeat,
                            out_indices=args.out_indices,
                            backbone_args=dict(backbone_args),
                            official_code=None,
                            official_deps=None))
        return cases
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
                        if (ours and args.vs_official and twin in official_specs and not cp):
                            attns.append('vs-official')
                        for attn in attns:
                            repeat = args.repeat
                            if attn in ('paired', 'vs-official') and args.paired_repeat:
                                repeat = args.paired_repeat
                            cases.append(
                                dict(
                                    spec=spec,
                                    model=spec['name'],
                                    library=library,
                                    twin=twin,
                                    size=list(parse_size(size)),
                                    batch=batch,
                                    mode=mode,
                                    attn=attn,
                                    with_cp=cp,
                                    device=args.device,
                                    dtype=args.dtype,
                                    channels_last=args.channels_last,
                                    compile=args.compile,
                                    threads=args.threads,
                                    warmup=args.warmup,
                                    repeat=repeat,
                                    out_indices=args.out_indices,
                                    backbone_args=dict(backbone_args),
                                    official_code=args.official_code,
                                    official_deps=args.official_deps))
                            if attn == 'vs-official':
                                cases[-1]['twin_spec'] = official_specs[twin]
    return cases


def check_official_code(cases: List[Dict]) -> None:
    """Fail early (OfficialCodeUnavailable) when released models are asked for and their
    code cannot be imported, instead of one error row per case."""
    from mmscope.converters.official_code import import_official_module
    released = [c for c in cases if c['library'] == 'official']
    for family in sorted({c['spec']['cfg']['family'] for c in released}):
        case = released[0]
        import_official_module(family, case['official_code'], case['official_deps'])


# ---------------------------------------------------------------------------- rows
def summarize(times: Sequence[float]) -> Dict:
    """Median, min, max and spread (interquartile range / median, in %) of step times."""
    if not times:
        return {}
    med = statistics.median(times)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [med, med, med]
    return dict(
        median_s=med,
        min_s=min(times),
        max_s=max(times),
        spread_pct=100 * (q[2] - q[0]) / med if med else 0.)


def _case_fields(case: Dict) -> Dict:
    row = {k: v for k, v in case.items() if k not in HIDDEN}
    row['size'] = 'x'.join(map(str, case['size']))
    return row


def finish_row(case: Dict, res: Dict, flops_cache: Dict, peak_tflops: Optional[float]) -> Dict:
    """The result row of a measured case: the case's fields, the worker's figures, their
    summary, images/s, the FLOPs of the model at that size (counted once per model and
    size, ``flops_cache``) and, with ``peak_tflops``, the MFU ``2 * FLOPs/image * k *
    images/s / (peak TFLOPS * 1e12)`` (``k = 3`` for a training step, 1 for inference)."""
    row = _case_fields(case)
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


def finish_paired(case: Dict, res: Dict, **extra) -> Dict:
    """The row of an alternating run (``paired``, ``vs-official``): the case's fields, the
    per-round times and speed-ups, ``extra`` (the load averages) and, when it succeeded,
    the median speed-ups."""
    row = _case_fields(case)
    row.update(status=res.pop('status', 'ok'), error=res.pop('error', None), **res)
    row.update(extra)
    if row['status'] == 'ok':
        row['speedup_median'] = statistics.median(row['paired_speedups'])
        row['cpu_speedup_median'] = statistics.median(row['paired_cpu_speedups'])
    return row


# ---------------------------------------------------------------------------- ratios
def _ratio(num, den):
    return num / den if num and den else None


def ratios(rows: List[Dict], paired: Sequence[Dict] = ()) -> Dict[str, List[Dict]]:
    """Fused / reference (with the paired run's ratios), with_cp on / off pairs and
    mmscope / released code (with the ``vs-official`` run's ratios):
    ``{'attention': [...], 'with_cp': [...], 'official': [...]}``."""
    ok = [r for r in rows if r['status'] == 'ok']
    paired = [p for p in paired if p['status'] == 'ok']
    base = BASE
    attn, cp = [], []
    for r in ok:
        if r['attn'] == 'fused':
            ref = [
                o for o in ok
                if o['attn'] == 'reference' and o['with_cp'] == r['with_cp'] and all(o[k] == r[k]
                                                                                     for k in base)
            ]
            if ref:
                o = ref[0]
                attn.append(
                    dict(
                        **{k: r[k]
                           for k in base},
                        with_cp=r['with_cp'],
                        fused_images_per_s=r['images_per_s'],
                        reference_images_per_s=o['images_per_s'],
                        speedup=r['images_per_s'] / o['images_per_s'],
                        cpu_speedup=(o['cpu_median_s'] /
                                     r['cpu_median_s'] if r['cpu_median_s'] else None),
                        fused_peak_mb=r['peak_mem_mb'],
                        reference_peak_mb=o['peak_mem_mb'],
                        memory_ratio=_ratio(o['peak_mem_mb'], r['peak_mem_mb'])))
                same = [
                    p for p in paired
                    if p['attn'] == 'paired' and p['with_cp'] == r['with_cp'] and all(p[k] == r[k]
                                                                                      for k in base)
                ]
                attn[-1].update(
                    paired_speedup=same[0]['speedup_median'] if same else None,
                    paired_cpu_speedup=(same[0]['cpu_speedup_median'] if same else None))
        if r['mode'] == 'train' and r['with_cp']:
            off = [
                o for o in ok
                if not o['with_cp'] and o['mode'] == 'train' and o['attn'] == r['attn'] and all(
                    o[k] == r[k] for k in base)
            ]
            if off:
                o = off[0]
                cp.append(
                    dict(
                        **{k: r[k]
                           for k in base},
                        attn=r['attn'],
                        peak_mb_without_cp=o['peak_mem_mb'],
                        peak_mb_with_cp=r['peak_mem_mb'],
                        memory_factor=_ratio(o['peak_mem_mb'], r['peak_mem_mb']),
                        time_overhead=r['median_s'] / o['median_s']))
    return dict(attention=attn, with_cp=cp, official=_official_ratios(ok, paired))


def _official_ratios(ok: List[Dict], paired: List[Dict]) -> List[Dict]:
    """mmscope (default attention, no with_cp) against the released model it is the twin
    of, with the alternating run's speed-up and its per-round range."""
    base = BASE
    official = []
    for o in ok:
        if o.get('library') != 'official':
            continue
        mine = [
            r for r in ok
            if r.get('library') != 'official' and r.get('twin') == o['twin'] and r['attn'] in (
                'fused', '-') and not r['with_cp'] and all(r[k] == o[k]
                                                           for k in base if k != 'model')
        ]
        if not mine:
            continue
        r = mine[0]
        same = [
            p for p in paired
            if p['attn'] == 'vs-official' and p['model'] == r['model'] and all(p[k] == r[k]
                                                                               for k in base)
        ]
        official.append(
            dict(
                **{k: r[k]
                   for k in base},
                official_model=o['model'],
                mmscope_images_per_s=r['images_per_s'],
                official_images_per_s=o['images_per_s'],
                speedup=r['images_per_s'] / o['images_per_s'],
                paired_speedup=same[0]['speedup_median'] if same else None,
                paired_cpu_speedup=same[0]['cpu_speedup_median'] if same else None,
                paired_min=min(same[0]['paired_speedups']) if same else None,
                paired_max=max(same[0]['paired_speedups']) if same else None,
                mmscope_peak_mb=r['peak_mem_mb'],
                official_peak_mb=o['peak_mem_mb'],
                memory_ratio=_ratio(o['peak_mem_mb'], r['peak_mem_mb'])))
    return official
