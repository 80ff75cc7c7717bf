"""What the benchmark prints and writes: the machine description, the progress line of a
case, the text tables (results, fused vs reference attention, mmscope vs the released
code, with_cp on vs off), the JSON file and the CSV file.

The JSON file holds ``{'meta', 'results', 'paired', 'ratios'}``: the machine and the
command (:func:`machine_info`, plus the command, date, load averages and elapsed time),
one row per measured case, one row per alternating run and the pairs of
:func:`mmscope.benchmark.cases.ratios`; ``tools/analysis_tools/benchmark_tables.py`` makes
the markdown tables of docs/benchmarks.md from it. The CSV file has one row per measured
case with the columns :data:`CSV_FIELDS`.
"""
import csv
import json
import os
import os.path as osp
import platform
import subprocess
from typing import Dict, List, Optional, Sequence

__all__ = [
    'CSV_FIELDS', 'machine_info', 'fmt', 'case_head', 'case_done', 'paired_done', 'format_tables',
    'format_table', 'write_json', 'write_csv'
]

CSV_FIELDS = ('model', 'size', 'batch', 'mode', 'attn', 'with_cp', 'device', 'dtype',
              'channels_last', 'compile', 'threads', 'warmup', 'repeat', 'status', 'images_per_s',
              'median_s', 'min_s', 'max_s', 'spread_pct', 'cpu_median_s', 'peak_mem_mb',
              'weights_mb', 'optimizer_state_mb', 'params_m', 'gflops', 'mfu', 'load_before',
              'load_after', 'library', 'twin', 'error')


def machine_info(device: str) -> Dict:
    """Python, torch, platform, CPU (``lscpu``), memory, GPU and the OpenMMLab versions."""
    import torch
    info = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        device=device)
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(':')
            if key.strip() in ('Model name', 'CPU(s)', 'Thread(s) per core', 'Core(s) per socket',
                               'Socket(s)'):
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


def fmt(value, spec: str = '.1f') -> str:
    """``format(value, spec)``, ``'-'`` for None."""
    return '-' if value is None else format(value, spec)


def _on_off(flag) -> str:
    return 'on' if flag else 'off'


# ---------------------------------------------------------------------------- progress
def case_head(i: int, n: int, case: Dict) -> str:
    """``'[i/n] model HxW bsB mode attn=A cp=on|off: '``, the start of a progress line."""
    size = 'x'.join(map(str, case['size']))
    return (f"[{i}/{n}] {case['model']} {size} bs{case['batch']} "
            f"{case['mode']} attn={case['attn']} cp={_on_off(case['with_cp'])}: ")


def case_done(row: Dict) -> str:
    """The end of the progress line of a measured case."""
    if row['status'] != 'ok':
        return f"{row['status']}: {row['error']}"
    return f"{fmt(row['images_per_s'], '.2f')} img/s, peak {fmt(row.get('peak_mem_mb'), '.0f')} MB"


def paired_done(row: Dict) -> str:
    """The end of the progress line of an alternating run."""
    if row['status'] != 'ok':
        return f"{row['status']}: {row['error']}"
    return (f"speed-up {row['speedup_median']:.2f}x (per-round "
            f"{min(row['paired_speedups']):.2f}-{max(row['paired_speedups']):.2f}), "
            f"CPU time {row['cpu_speedup_median']:.2f}x")


# ---------------------------------------------------------------------------- tables
def format_table(head: List[str], body: List[List[str]]) -> str:
    """A plain-text table; a row shorter than ``head`` is an error row whose last cell
    (the message) spans the remaining columns."""
    widths = [len(h) for h in head]
    for line in body:
        for i, cell in enumerate(line[:len(head)]):
            widths[i] = max(widths[i], len(cell))

    def cells_line(cells):
        return ' | '.join(c.ljust(w) for c, w in zip(cells, widths))

    lines = [cells_line(head), '-+-'.join('-' * w for w in widths)]
    for line in body:
        if len(line) < len(head):  # an error row: the message spans the rest
            lines.append(cells_line(line[:-1]) + ' | ' + line[-1])
        else:
            lines.append(cells_line(line))
    return '\n'.join(lines)


def _results_table(rows: List[Dict]) -> str:
    show_mfu = any(r.get('mfu') is not None for r in rows)
    show_flops = any(r.get('gflops') is not None for r in rows)
    head = [
        'model', 'size', 'bs', 'mode', 'attn', 'cp', 'dtype', 'img/s', 'ms/step', 'spread%',
        'cpu s/step', 'peak MB'
    ] + (['GFLOPs'] if show_flops else []) + (['MFU%'] if show_mfu else [])
    body = []
    for r in rows:
        first = [
            r['model'], r['size'],
            str(r['batch']), r['mode'], r['attn'],
            _on_off(r['with_cp']), r['dtype']
        ]
        if r['status'] != 'ok':
            body.append(first + [f"{r['status']}: {str(r['error'])[:70]}"])
            continue
        line = first + [
            fmt(r['images_per_s'], '.2f'),
            fmt(1e3 * r['median_s']),
            fmt(r['spread_pct']),
            fmt(r['cpu_median_s'], '.3f'),
            fmt(r['peak_mem_mb'], '.0f')
        ]
        if show_flops:
            line.append(fmt(r.get('gflops'), '.2f'))
        if show_mfu:
            line.append(fmt(None if r['mfu'] is None else 100 * r['mfu'], '.2f'))
        body.append(line)
    return format_table(head, body)


def _x(value) -> str:
    return fmt(value, '.2f') + 'x'


def _attention_table(pairs: List[Dict]) -> str:
    head = [
        'model', 'size', 'bs', 'mode', 'cp', 'fused img/s', 'ref img/s', 'speed-up',
        'cpu-time speed-up', 'paired speed-up', 'paired cpu speed-up', 'fused MB', 'ref MB',
        'memory ratio'
    ]
    body = [[
        p['model'], p['size'],
        str(p['batch']), p['mode'],
        _on_off(p['with_cp']),
        fmt(p['fused_images_per_s'], '.2f'),
        fmt(p['reference_images_per_s'], '.2f'),
        _x(p['speedup']),
        _x(p['cpu_speedup']),
        _x(p.get('paired_speedup')),
        _x(p.get('paired_cpu_speedup')),
        fmt(p['fused_peak_mb'], '.0f'),
        fmt(p['reference_peak_mb'], '.0f'),
        _x(p['memory_ratio'])
    ] for p in pairs]
    return 'fused (default) vs reference attention:\n' + format_table(head, body)


def _official_table(pairs: List[Dict]) -> str:
    head = [
        'model', 'size', 'bs', 'mode', 'mmscope img/s', 'released img/s', 'speed-up',
        'paired speed-up', 'paired cpu speed-up', 'mmscope MB', 'released MB', 'memory ratio'
    ]
    body = [[
        p['model'], p['size'],
        str(p['batch']), p['mode'],
        fmt(p['mmscope_images_per_s'], '.2f'),
        fmt(p['official_images_per_s'], '.2f'),
        _x(p['speedup']),
        _x(p['paired_speedup']),
        _x(p['paired_cpu_speedup']),
        fmt(p['mmscope_peak_mb'], '.0f'),
        fmt(p['official_peak_mb'], '.0f'),
        _x(p['memory_ratio'])
    ] for p in pairs]
    return 'mmscope (default attention) vs the released code:\n' + format_table(head, body)


def _with_cp_table(pairs: List[Dict]) -> str:
    head = [
        'model', 'size', 'bs', 'attn', 'peak MB cp off', 'peak MB cp on', 'memory factor',
        'time cp on / off'
    ]
    body = [[
        p['model'], p['size'],
        str(p['batch']), p['attn'],
        fmt(p['peak_mb_without_cp'], '.0f'),
        fmt(p['peak_mb_with_cp'], '.0f'),
        _x(p['memory_factor']),
        _x(p['time_overhead'])
    ] for p in pairs]
    return 'training step with_cp=True vs False:\n' + format_table(head, body)


def format_tables(rows: List[Dict], pairs: Dict[str, List[Dict]]) -> str:
    """The printed result: one line per case, then the tables of the pairs that exist."""
    out = [_results_table(rows)]
    if pairs['attention']:
        out.append(_attention_table(pairs['attention']))
    if pairs.get('official'):
        out.append(_official_table(pairs['official']))
    if pairs['with_cp']:
        out.append(_with_cp_table(pairs['with_cp']))
    return '\n\n'.join(out)


# ---------------------------------------------------------------------------- files
def _makedirs_for(path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)


def write_json(path: str, meta: Dict, rows: List[Dict], paired: Sequence[Dict],
               pairs: Dict[str, List[Dict]]) -> None:
    """``{'meta', 'results', 'paired', 'ratios'}`` into ``path`` (folders made)."""
    _makedirs_for(path)
    with open(path, 'w') as f:
        json.dump(dict(meta=meta, results=rows, paired=list(paired), ratios=pairs), f, indent=1)


def write_csv(path: str, rows: List[Dict], fields: Optional[Sequence[str]] = None) -> None:
    """One line per result row, the columns :data:`CSV_FIELDS` (folders made)."""
    fields = CSV_FIELDS if fields is None else fields
    _makedirs_for(path)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in fields})
