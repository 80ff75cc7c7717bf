"""Running the cases of a benchmark, one fresh worker process each, with a progress line
per case.

FLOPs are counted in the first case of each model and size only (``flops``), and never in
an alternating run; the load average is recorded before and after every case.
"""
import os
from typing import Callable, Dict, List, Optional, Tuple

from .cases import finish_paired, finish_row
from .report import case_done, case_head, paired_done
from .runtimes import finish_runtimes, runtimes_done
from .worker import spawn

__all__ = ['run_cases']


def _print(line: str) -> None:
    print(line, flush=True)


def run_cases(cases: List[Dict],
              flops: bool = False,
              peak_tflops: Optional[float] = None,
              timeout: Optional[float] = None,
              log: Callable[[str], None] = _print) -> Tuple[List[Dict], List[Dict]]:
    """Measure every case in its own worker process (:func:`mmscope.benchmark.worker.spawn`,
    ``timeout`` seconds each) and log one line per case: ``(rows, paired)``, the result
    rows of the measured cases and of the alternating runs (``paired``, ``vs-official``).
    """
    rows, paired, flops_cache = [], [], {}
    for i, case in enumerate(cases):
        key = (case['model'], 'x'.join(map(str, case['size'])))
        alternating = case['attn'] in ('paired', 'vs-official', 'runtimes')
        case['flops'] = bool(flops and key not in flops_cache and not alternating)
        load0 = os.getloadavg()[0]
        res = spawn(case, timeout)
        head = case_head(i + 1, len(cases), case)
        if case['attn'] == 'runtimes':
            row = finish_runtimes(case, res, load_before=load0, load_after=os.getloadavg()[0])
            paired.append(row)
            log(head + runtimes_done(row))
            continue
        if alternating:
            row = finish_paired(case, res, load_before=load0, load_after=os.getloadavg()[0])
            paired.append(row)
            log(head + paired_done(row))
            continue
        row = finish_row(case, res, flops_cache, peak_tflops)
        row.update(load_before=load0, load_after=os.getloadavg()[0])
        rows.append(row)
        log(head + case_done(row))
    return rows, paired
