"""Helpers shared by the tests (imported as ``helpers``; pytest puts ``tests/`` on the
path)."""
import os
import signal
import subprocess
import threading
import time
from typing import Optional, Sequence

import pytest
import torch

#: the small shapes set (``projects/shapes_demo``'s generator) of the ``small_shapes``
#: fixture (conftest.py): images that the data, inference and demo-result tests read
SMALL_SHAPES = dict(num_train=12, num_val=6, size=128, cls_size=48)


def seg_of(out: str, split: str, image_id: int):
    """The segmentation label PNG (as an array) of COCO image ``image_id`` of a shapes set."""
    import numpy as np
    from PIL import Image
    ade = 'training' if split == 'train' else 'validation'
    return np.array(
        Image.open(os.path.join(out, 'seg', 'annotations', ade, f'{image_id - 1:06d}.png')))


def one_thread_env(base: Optional[dict] = None, **extra) -> dict:
    """The environment of the end-to-end subprocesses: one OpenMP thread, unbuffered output.

    With two intra-op threads on a 2-core machine where another job keeps one core busy,
    every parallel region waits for the thread that shares its core with that job: the
    quick demo's classifier trained 25x slower (an epoch in 19 min instead of 45 s). One
    thread per process only shares its core. Unbuffered output lets :func:`run_watched`
    see progress as it happens."""
    env = dict(os.environ if base is None else base, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    env.update(extra)
    return env


class Watched:
    """What :func:`run_watched` saw: ``returncode``, ``output`` (stdout and stderr as
    one text), ``seconds`` and ``tail(n)``."""

    def __init__(self, returncode: int, output: str, seconds: float):
        self.returncode, self.output, self.seconds = returncode, output, seconds

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]


def run_watched(cmd: Sequence[str],
                *,
                idle_timeout: float,
                total_timeout: float,
                cwd: Optional[str] = None,
                env: Optional[dict] = None,
                log_file: Optional[str] = None) -> Watched:
    """Run ``cmd`` and fail the test, with the tail of its output, if it hangs.

    A hang is a run that prints nothing for ``idle_timeout`` seconds, or that is still
    going after ``total_timeout`` seconds. Size both to the work, several times what it
    takes on an idle machine, so that a slower (or busy) machine is not mistaken for a
    hang: a slower run only prints less often, a hung one stops printing. The process
    (and its children: it gets its own session) is killed before the test fails.
    Without ``env``, the command runs with :func:`one_thread_env`.
    """
    start = time.monotonic()
    env = one_thread_env() if env is None else env
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors='replace',
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
        pytest.fail(
            f'{" ".join(map(str, cmd))} {reason} (killed); the end of its output:\n'
            f'{out.tail()}',
            pytrace=False)
    return out


def bf16_training_errors(model, x, watched=()):
    """One training step of ``model`` on ``x`` in fp32 and under CPU bf16 autocast: the
    relative L2 errors of the bf16 step's outputs, of all its parameter gradients and of
    the ``watched`` modules' parameter gradients against the fp32 step, and the output
    dtypes of the ``watched`` modules under autocast."""

    def step(bf16):
        model.zero_grad(set_to_none=True)
        dtypes = []
        hooks = [m.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype)) for m in watched]
        with torch.autocast('cpu', torch.bfloat16, enabled=bf16):
            outs = model(x)
        for h in hooks:
            h.remove()
        sum(o.float().square().mean() for o in outs).backward()
        grads = [
            torch.cat([p.grad.flatten() for p in ps if p.grad is not None])
            for ps in (model.parameters(), (p for m in watched for p in m.parameters()))
        ] if watched else [torch.cat([p.grad.flatten() for p in model.parameters()])] * 2
        return [torch.cat([o.float().flatten() for o in outs]).detach()] + grads, dtypes

    model.train()
    fp32, _ = step(False)
    bf16, dtypes = step(True)
    errs = {
        name: ((a - b).norm() / b.norm()).item()
        for name, a, b in zip(('outputs', 'gradients', 'watched gradients'), bf16, fp32)
    }
    return errs, dtypes


def check_bf16_training_step(model, x, fp32_modules, max_rel_err):
    """Under CPU bf16 autocast, a training step runs ``fp32_modules`` in fp32 and its
    outputs and gradients stay within ``max_rel_err`` of the fp32 step's."""
    errs, dtypes = bf16_training_errors(model, x, fp32_modules)
    assert dtypes and all(d == torch.float32 for d in dtypes), dtypes
    for name, err in errs.items():
        assert err < max_rel_err, f'bf16 {name}: relative error {err:.3g}'
