"""Measuring one benchmark case in this process (:mod:`mmscope.benchmark.worker` runs it in
a fresh process per case, so that the memory figures are the case's own).

:func:`run_case` builds the case's model (:func:`mmscope.benchmark.specs.build_case_model`),
runs one untimed priming step (it allocates one-time state: the optimizer's moments,
kernel caches), then ``warmup`` untimed and ``repeat`` timed steps, and returns the wall
and process CPU time of every timed step and the peak memory of the steps:

* CPU: the resident-set high-water mark (``VmHWM``) over the warm-up and timed steps,
  minus the resident set right before them (after priming, ``malloc_trim`` and a reset
  of the high-water mark): activations, gradients and temporaries of one step, without
  weights, optimizer state and input;
* CUDA: ``torch.cuda.max_memory_allocated`` minus the allocated memory at that point.

A training step is ``zero_grad -> forward -> loss = sum of the output means -> backward ->
AdamW step`` on the bare backbone (train mode; with ``dtype`` bf16/fp16 the forward runs
under autocast, fp16 on CUDA with a GradScaler). An inference step is a forward under
``torch.no_grad`` in eval mode.

The alternating cases (``attn='paired'``: the default attention against the reference
one; ``attn='vs-official'``: mmscope against the released code) time two steps one after
the other in ABBA order instead (:func:`alternate`). FLOPs (:func:`count_flops`) are
mmengine's FlopAnalyzer count of one image, with a handle for
``scaled_dot_product_attention``; one multiply-add is one FLOP.
"""
import contextlib
import ctypes
import gc
import math
import time
from typing import Callable, Dict, Optional, Tuple

from .specs import build_case_model

__all__ = ['DTYPES', 'count_flops', 'step_loss', 'make_step', 'run_case', 'alternate']

#: ``--dtype`` -> the torch dtype name of autocast (None: no autocast)
DTYPES = {'fp32': None, 'bf16': 'bfloat16', 'fp16': 'float16'}


# ---------------------------------------------------------------------------- memory
def _proc_status() -> Dict[str, int]:
    """``VmHWM`` and ``VmRSS`` of this process, in bytes."""
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(('VmHWM', 'VmRSS')):
                out[line.split(':')[0]] = int(line.split()[1]) * 1024
    return out


def _reset_cpu_peak() -> Optional[int]:
    """Release free heap pages, reset VmHWM; the resident set now (None if unsupported)."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return _proc_status()['VmRSS']
    except (OSError, KeyError):
        return None


# ---------------------------------------------------------------------------- FLOPs
def _sdpa_flop_jit(inputs, outputs):
    """Multiply-adds of ``scaled_dot_product_attention``: ``q @ k^T`` and ``attn @ v``."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(t) for t in inputs[:3])
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def count_flops(model, size: Tuple[int, int], reference: bool) -> int:
    """Multiply-adds of one ``1 x 3 x H x W`` forward (eval mode); ``reference``: with
    mmscope attention in its reference form, so that the attention products are counted."""
    import torch
    from mmengine.analysis import FlopAnalyzer
    ctx = contextlib.nullcontext()
    if reference:
        from mmscope.models.layers import attention_impl
        ctx = attention_impl('reference')
    from mmscope.models.layers import concrete_shapes
    model.eval()
    with torch.no_grad(), ctx, concrete_shapes():  # the eager computation at this size
        analyzer = FlopAnalyzer(model, torch.randn(1, 3, *size))
        analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flop_jit)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analyzer.total())


# ---------------------------------------------------------------------------- steps
def step_loss(outputs):
    """The training loss of a backbone: the sum of the means of its output tensors."""
    import torch
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    return sum(o.float().mean() for o in outputs if isinstance(o, torch.Tensor))


def make_step(case: Dict, model, device):
    """``(model, step, optimizer)``: the model moved to the case's device and format, and
    one inference or training step of it as a closure."""
    import torch
    memory_format = torch.channels_last if case['channels_last'] else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    train = case['mode'] == 'train'
    model.train(train)  # some backbones' train() returns None: do not chain
    x = torch.randn(case['batch'], 3, *case['size'], device=device)
    x = x.contiguous(memory_format=memory_format)
    step_model = torch.compile(model) if case['compile'] else model
    dtype = DTYPES[case['dtype']]
    autocast = (
        torch.autocast(device.type, dtype=getattr(torch, dtype))
        if dtype else contextlib.nullcontext())
    optimizer = scaler = None
    if train:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        if case['dtype'] == 'fp16' and device.type == 'cuda':
            scaler = torch.amp.GradScaler('cuda')

    def step():
        if train:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = step_loss(step_model(x))
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
        else:
            with torch.no_grad(), autocast:
                step_model(x)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    return model, step, optimizer


def alternate(case: Dict, arms: Dict[str, Callable], model) -> Dict:
    """Time two steps alternately in one process (ABBA order), so both see the same
    machine load: the default attention against the reference one (``paired``), or
    mmscope against the released code (``vs-official``). The speed-up of each round is
    ``t(second arm) / t(first arm)``."""
    times = {name: [] for name in arms}
    cpu = {name: [] for name in arms}
    for run in arms.values():  # priming, untimed
        for _ in range(1 + case['warmup']):
            run()
    first, second = list(arms)
    for i in range(case['repeat']):
        for name in ((first, second) if i % 2 == 0 else (second, first)):
            t0, c0 = time.perf_counter(), time.process_time()
            arms[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return dict(
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        paired_times_s=times,
        paired_cpu_times_s=cpu,
        paired_speedups=[b / a for a, b in zip(times[first], times[second])],
        paired_cpu_speedups=[b / a for a, b in zip(cpu[first], cpu[second])])


# ---------------------------------------------------------------------------- one case
def run_case(case: Dict) -> Dict:
    """Measure one case in this process (call it in a fresh process): the raw figures
    (step times, CPU times, peak memory, parameters, FLOPs) that
    :func:`mmscope.benchmark.cases.finish_row` turns into a result row."""
    import torch

    from mmscope.apis.allocator import tune_cpu_allocator
    tune_cpu_allocator()  # as tools/train.py does; MMSCOPE_MALLOC_TUNING=0: glibc's defaults
    torch.manual_seed(0)
    if case.get('threads'):
        torch.set_num_threads(case['threads'])
    device = torch.device(case['device'])
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda but torch.cuda.is_available() is False')
    if case['attn'] == 'vs-official':
        ours = make_step(case, build_case_model(case, case['spec'], 'auto')[0], device)
        released = make_step(case, build_case_model(case, case['twin_spec'], '-')[0], device)
        return alternate(case, {'mmscope': ours[1], 'official': released[1]}, ours[0])
    if case['attn'] == 'runtimes':
        from .runtimes import measure_runtimes
        return measure_runtimes(case, build_case_model(case, case['spec'], 'auto')[0])
    model, ours = build_case_model(case, case['spec'], case['attn'])
    params = sum(p.numel() for p in model.parameters())
    flops = None
    if case.get('flops'):
        flops = count_flops(model, tuple(case['size']), reference=ours)
        gc.collect()
    model, step, optimizer = make_step(case, model, device)
    if case['attn'] == 'paired':
        from mmscope.models.layers import attention_impl

        def in_mode(impl):

            def run():
                with attention_impl(impl):
                    step()

            return run

        return alternate(case, {impl: in_mode(impl) for impl in ('fused', 'reference')}, model)
    step()  # priming: optimizer state, kernel/bias caches, torch.compile
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _reset_cpu_peak()
    for _ in range(case['warmup']):
        step()
    times, cpu_times = [], []
    for _ in range(case['repeat']):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(device) - base
        mem_method = 'cuda.max_memory_allocated - allocated before the steps'
    elif base is not None:
        peak = _proc_status()['VmHWM'] - base
        mem_method = 'VmHWM - VmRSS before the steps (fresh process, HWM reset)'
    else:
        peak, mem_method = None, 'unavailable'
    state = 0
    if optimizer is not None:
        state = sum(t.numel() * t.element_size() for s in optimizer.state.values()
                    for t in s.values() if torch.is_tensor(t))
    weights = sum(t.numel() * t.element_size()
                  for t in list(model.parameters()) + list(model.buffers()))
    return dict(
        params_m=params / 1e6,
        gflops=None if flops is None else flops / 1e9,
        times_s=times,
        cpu_times_s=cpu_times,
        peak_mem_mb=None if peak is None else peak / 2**20,
        mem_method=mem_method,
        weights_mb=weights / 2**20,
        optimizer_state_mb=state / 2**20,
        threads=torch.get_num_threads(),
        mmscope=ours)
