"""Helpers shared by the tests (imported as ``helpers``; pytest puts ``tests/`` on the
path)."""
import os
import signal
import subprocess
import threading
import time
from typing import Optional, Sequence

import pytest


class Watched:
    """What :func:`run_watched` saw: ``returncode``, ``output`` (stdout and stderr as
    one text), ``seconds`` and ``tail(n)``."""

    def __init__(self, returncode: int, output: str, seconds: float):
        self.returncode, self.output, self.seconds = returncode, output, seconds

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]


def run_watched(cmd: Sequence[str], *, idle_timeout: float, total_timeout: float,
                cwd: Optional[str] = None, env: Optional[dict] = None,
                log_file: Optional[str] = None) -> Watched:
    """Run ``cmd`` and fail the test, with the tail of its output, if it hangs.

    A hang is a run that prints nothing for ``idle_timeout`` seconds, or that is still
    going after ``total_timeout`` seconds. Size both to the work, several times what it
    takes on an idle machine, so that a slower (or busy) machine is not mistaken for a
    hang: a slower run only prints less often, a hung one stops printing. The process
    (and its children: it gets its own session) is killed before the test fails.
    """
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors='replace',
                            start_new_session=True)
    chunks, last = [], [time.monotonic()]

    def read():
        for line in proc.stdout:
            chunks.append(line)
            last[0] = time.monotonic()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reason = None
    while proc.poll() is None:
        now = time.monotonic()
        if now - last[0] > idle_timeout:
            reason = f'printed nothing for {idle_timeout:.0f} s'
        elif now - start > total_timeout:
            reason = f'still running after {total_timeout:.0f} s'
        if reason:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        time.sleep(0.5)
    reader.join(timeout=10)
    out = Watched(proc.returncode, ''.join(chunks), time.monotonic() - start)
    if log_file:
        with open(log_file, 'w') as f:
            f.write(out.output)
    if reason:
        pytest.fail(f'{" ".join(map(str, cmd))} {reason} (killed); the end of its output:\n'
                    f'{out.tail()}', pytrace=False)
    return out
