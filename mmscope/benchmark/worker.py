"""The benchmark's worker process: one case, measured in a fresh interpreter.

    python -m mmscope.benchmark.worker CASE_JSON

runs :func:`mmscope.benchmark.measure.run_case` on the case (a dict made by
:func:`mmscope.benchmark.cases.build_cases`, as JSON) and prints one line
``BENCHMARK_RESULT {...}`` with its figures, or ``{"status": "error", "error": ...}`` if
the case failed (the run goes on with the next case). :func:`spawn` is the other end: it
starts the worker, waits (with a timeout) and reads that line back.
"""
import json
import os
import subprocess
import sys
from typing import Dict, Optional

__all__ = ['RESULT_TAG', 'spawn', 'main']

#: the prefix of the worker's result line
RESULT_TAG = 'BENCHMARK_RESULT '


def spawn(case: Dict, timeout: Optional[float]) -> Dict:
    """Measure ``case`` in a fresh worker process: its result dict, or
    ``{'status': 'timeout' | 'error', 'error': ...}``. With ``case['threads']`` the worker
    also gets ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``."""
    env = dict(os.environ)
    if case.get('threads'):
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(case['threads'])
    cmd = [sys.executable, '-m', 'mmscope.benchmark.worker', json.dumps(case)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        return dict(status='timeout', error=f'no result within {timeout} s')
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return dict(status='error', error=f'exit code {proc.returncode}: ' + ' | '.join(tail))


def run_one(case: Dict) -> Dict:
    """:func:`~mmscope.benchmark.measure.run_case`, an exception turned into an error
    result (its first line, prefixed ``released code:`` for the released models)."""
    from .measure import run_case
    try:
        return run_case(case)
    except Exception as e:  # noqa: BLE001  (reported, the run goes on)
        msg = str(e).splitlines()[0].strip() if str(e).strip() else ''
        where = 'released code: ' if case.get('library') == 'official' else ''
        return dict(status='error', error=f'{where}{type(e).__name__}: {msg}'[:300])


def main(argv=None) -> int:
    """Run the case given as JSON in ``argv`` (default ``sys.argv[1:]``), print its result."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 1:
        print('usage: python -m mmscope.benchmark.worker CASE_JSON', file=sys.stderr)
        return 2
    res = run_one(json.loads(argv[0]))
    print(RESULT_TAG + json.dumps(res), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
