"""tune_cpu_allocator: glibc keeps freed tensor memory; off by argument or environment."""
import os
import subprocess
import sys
import textwrap

import pytest

from mmscope.apis import allocator
from mmscope.apis.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD, tune_cpu_allocator

glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason='needs glibc (Linux)')

# one tensor of 20, 21, ..., 29 MB written and freed: the page faults of the last eight
CHURN = textwrap.dedent("""
    import resource, sys, torch
    from mmscope.apis.allocator import tune_cpu_allocator
    print('tuned', tune_cpu_allocator())
    def churn(mb):
        t = torch.empty(mb * 2**18).fill_(1.)
        del t
    churn(20); churn(21)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for mb in range(22, 30):
        churn(mb)
    print('faults', resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")
PAGES = sum(range(22, 30)) * 2**20 // 4096  # the 4 KB pages written in the last eight


def churn_faults(setting: str):
    env = dict(os.environ, MMSCOPE_MALLOC_TUNING=setting)
    out = subprocess.run([sys.executable, '-c', CHURN],
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=120,
                         check=True).stdout.split()
    return out[1] == 'True', int(out[3])


@glibc_only
def test_freed_tensors_stay_in_the_process():
    """With glibc's defaults, each tensor larger than every one freed before is a fresh
    mapping, unmapped when freed: all its pages are faulted in. Tuned, it comes from the
    heap that the previous tensors left, and only the growth (1-2 MB a round) is new."""
    tuned, faults_tuned = churn_faults('1')
    untuned, faults_default = churn_faults('0')
    assert tuned and not untuned
    assert faults_default > PAGES * 9 // 10, (faults_default, PAGES)
    assert faults_tuned < PAGES // 5, (faults_tuned, PAGES)


class FakeLibc:

    def __init__(self, result=1):
        self.calls = []
        self.result = result

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.result


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(allocator, '_glibc', lambda: fake)
    return fake


def test_sets_both_thresholds(libc, monkeypatch):
    monkeypatch.delenv('MMSCOPE_MALLOC_TUNING', raising=False)
    assert tune_cpu_allocator() is True
    assert libc.calls == [(-3, MMAP_THRESHOLD), (-1, TRIM_THRESHOLD)]
    assert MMAP_THRESHOLD == 32 * 2**20  # the most glibc takes


@pytest.mark.parametrize('value', ['0', 'off', 'False'])
def test_environment_switches_it_off(libc, monkeypatch, value):
    monkeypatch.setenv('MMSCOPE_MALLOC_TUNING', value)
    assert tune_cpu_allocator() is False
    assert libc.calls == []
    assert tune_cpu_allocator(enabled=True) is True  # the argument wins


def test_argument_switches_it_off(libc, monkeypatch):
    monkeypatch.setenv('MMSCOPE_MALLOC_TUNING', '1')
    assert tune_cpu_allocator(enabled=False) is False
    assert libc.calls == []


@pytest.mark.parametrize('value', ['yes', '2', ''])
def test_bad_environment_value_is_an_error(libc, monkeypatch, value):
    monkeypatch.setenv('MMSCOPE_MALLOC_TUNING', value)
    with pytest.raises(ValueError, match='MMSCOPE_MALLOC_TUNING must be 0/1, true/false or on/off'):
        tune_cpu_allocator()
    assert libc.calls == []


def test_refused_setting_is_reported(monkeypatch):
    monkeypatch.setattr(allocator, '_glibc', lambda: FakeLibc(result=0))
    assert tune_cpu_allocator(enabled=True) is False


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(sys, 'platform', 'darwin')
    assert allocator._glibc() is None
    assert tune_cpu_allocator(enabled=True) is False


def test_tools_and_benchmark_workers_tune_it(monkeypatch):
    """run_runner (tools/train.py, tools/test.py) and every benchmark case tune the
    allocator before they build anything."""
    from mmengine.config import Config

    from mmscope.apis import runner
    from mmscope.benchmark.measure import run_case
    calls = []
    monkeypatch.setattr(runner, 'tune_cpu_allocator', lambda: calls.append('runner'))
    monkeypatch.setattr(allocator, 'tune_cpu_allocator', lambda: calls.append('case'))

    def no_build(cfg):
        raise RuntimeError('not built')

    monkeypatch.setattr(runner, 'build_runner', no_build)
    with pytest.raises(RuntimeError, match='not built'):
        runner.run_runner(Config(dict()), 'train')
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    with pytest.raises(RuntimeError, match='torch.cuda.is_available'):
        run_case(dict(device='cuda', attn='auto', threads=None))
    assert calls == ['runner', 'case']
