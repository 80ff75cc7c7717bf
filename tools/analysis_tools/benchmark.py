"""Speed and memory of backbones: inference and training steps, attention modes side by side.

    python tools/analysis_tools/benchmark.py --model MODEL [MODEL ...]
        [--sizes 224 256 512 800x1344 | cls | dense] [--batch-sizes 1 8]
        [--modes infer train] [--attn fused reference] [--with-cp off|on|both]
        [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--channels-last] [--compile]
        [--runtimes eager bf16 compile compile-static compile-freezing onnxruntime]
        [--threads N] [--warmup 2] [--repeat 5] [--out-indices 0 1 2 3]
        [--flops] [--peak-tflops T] [--timeout S] [--json FILE] [--csv FILE]

MODEL is one of
  * an mmscope arch: ``scopevit-xt``, ``scopevit-t``, ``scopevit-s``, ``scalablevit-s``,
    ``scalablevit-b``, ``scalablevit-l`` (long names such as ``scopevit-tiny`` work too);
  * a backbone of another OpenMMLab library, ``LIB:Type[:arch][:k=v,k=v]`` with LIB one of
    mmpretrain / mmdet / mmseg / mmscope, e.g. ``mmpretrain:SwinTransformer:tiny``,
    ``mmpretrain:PCPVT:small``, ``mmpretrain:SVT:small``, ``mmpretrain:ConvNeXt:tiny``,
    ``mmpretrain:ResNet:50`` (a number is the ``depth``),
    ``mmdet:PyramidVisionTransformerV2::embed_dims=64,num_layers=[3,4,6,3]``;
    shortcuts: ``pvtv2-b0`` .. ``pvtv2-b3`` (mmdet's PVT-v2, published settings);
  * a config file (``.py``): its ``model.backbone`` is built by the config's library
    (``Pretrained`` init and SyncBN are dropped, like a CPU run of the config would).
  Extra constructor arguments: append ``:k=v,k=v`` (values are Python literals).
  The mmscope archs are those of the registered backbone families
  (``mmscope.benchmark.specs.mmscope_models()`` lists them).

Every case (model x size x batch x mode x attention mode x with_cp) runs in a fresh
subprocess (``python -m mmscope.benchmark.worker``) so its memory is its own: the model is
built, one untimed priming step is run (it allocates one-time state: the optimizer's
moments, kernel caches), then ``--warmup`` untimed and ``--repeat`` timed steps.
Reported: median seconds per step and images/s, min/max and the spread (interquartile
range / median), the process CPU time per step (it does not count time spent waiting for a
shared CPU, so it is the steadier figure on a loaded machine), and the peak memory of the
steps:

  * CPU: the resident-set high-water mark (``VmHWM``) over the warm-up and timed steps,
    minus the resident set right before them (after priming, ``malloc_trim`` and a reset
    of the high-water mark): activations, gradients and temporaries of one step, without
    weights, optimizer state and input;
  * CUDA: ``torch.cuda.max_memory_allocated`` minus the allocated memory at that point.

A training step is ``zero_grad -> forward -> loss = sum of the output means -> backward ->
AdamW step`` on the bare backbone (train mode; with ``--dtype bf16/fp16`` the forward runs
under autocast, fp16 on CUDA with a GradScaler). An inference step is a forward under
``torch.no_grad`` in eval mode.

For mmscope backbones the attention modes in ``--attn`` (default: both) are run back to
back for every case and their ratios are printed: ``speed-up = images/s(fused) /
images/s(reference)`` and ``memory = peak(reference) / peak(fused)``. ``--with-cp both``
runs training cases with and without gradient checkpointing and prints the memory factor.

FLOPs (``--flops``; implied by ``--peak-tflops``) are counted by mmengine's FlopAnalyzer
for one image at each size (mmscope attention in its reference form so the attention
products are counted; ``scaled_dot_product_attention`` of other backbones is counted by a
handle the benchmark adds); one multiply-add is one FLOP, as in the papers. MFU =
``2 * FLOPs/image * k * images/s / (peak TFLOPS * 1e12)`` with ``k = 1`` for inference
and ``k = 3`` for a training step (backward ~ twice the forward).

This file is the command line only; the benchmark is the package ``mmscope.benchmark``:
``models`` (the MODEL specs and building them), ``measure`` (one case in this process),
``worker`` (one case in a fresh process), ``cases`` (the case matrix, result rows and
ratios), ``runner`` (running the cases) and ``report`` (tables, JSON, CSV).
"""
import argparse
import datetime
import os
import os.path as osp
import platform
import sys
import time

from mmscope.benchmark import worker
from mmscope.benchmark.cases import build_cases, check_official_code, ratios
from mmscope.benchmark.measure import DTYPES
from mmscope.benchmark.report import format_tables, machine_info, write_csv, write_json
from mmscope.benchmark.runtimes import RUNTIMES, runtime_table
from mmscope.benchmark.sweep import run_cases


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Throughput and peak memory of backbones (inference and training '
        'steps); mmscope attention modes side by side.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        '--model',
        nargs='+',
        help='mmscope arch (scopevit-t), LIB:Type[:arch] '
        '(mmpretrain:SwinTransformer:tiny), pvtv2-b2 or a config .py')
    p.add_argument(
        '--sizes',
        nargs='+',
        default=['224'],
        help='H or HxW (e.g. 224 800x1344); presets: cls=224 256, '
        'dense=512 800x1344')
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    p.add_argument('--modes', nargs='+', choices=['infer', 'train'], default=['infer'])
    p.add_argument(
        '--attn',
        nargs='+',
        choices=['auto', 'fused', 'reference'],
        default=['fused', 'reference'],
        help='attention modes of mmscope backbones (others run once)')
    p.add_argument(
        '--no-paired',
        dest='paired',
        action='store_false',
        help='with both attention modes, do not add the paired run that '
        'alternates the modes step by step in one process')
    p.add_argument(
        '--paired-repeat',
        type=int,
        default=None,
        help='timed rounds (one step per mode) of the paired run; '
        'default --repeat')
    p.add_argument(
        '--vs-official',
        action='store_true',
        help='also run the released code of every mmscope arch model '
        '(official:FAMILY-ARCH), and a run that alternates the two step by step')
    p.add_argument(
        '--official-code',
        default=os.environ.get('MMSCOPE_OFFICIAL_CODE'),
        help='folder with the released scopevit.py / scalablevit.py (default: '
        '$MMSCOPE_OFFICIAL_CODE); see mmscope/converters/official_code.py')
    p.add_argument(
        '--official-deps',
        default=os.environ.get('MMSCOPE_OFFICIAL_DEPS'),
        help='extra sys.path folder with timm and einops for the released code '
        '(default: $MMSCOPE_OFFICIAL_DEPS)')
    p.add_argument(
        '--with-cp',
        choices=['off', 'on', 'both'],
        default='off',
        help='gradient checkpointing in training cases')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    p.add_argument(
        '--dtype',
        choices=list(DTYPES),
        default='fp32',
        help='bf16/fp16 run the forward under torch.autocast')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--compile', action='store_true', help='torch.compile the backbone')
    p.add_argument(
        '--runtimes',
        nargs='+',
        choices=list(RUNTIMES),
        default=None,
        help='instead of the attention modes: these runtimes of each backbone '
        'side by side in one process (eager fp32, bf16 autocast, torch.compile '
        'dynamic=True, the same with dynamic=False or with inductor freezing, '
        'onnxruntime), speed-ups and output errors against eager; with --modes '
        'train: eager and bf16 training steps, gradient errors')
    p.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps after priming')
    p.add_argument('--repeat', type=int, default=5, help='timed steps')
    p.add_argument(
        '--out-indices',
        nargs='+',
        type=int,
        default=None,
        help='override the backbones\' out_indices')
    p.add_argument(
        '--backbone-args',
        default=None,
        help='extra constructor arguments for every model, "k=v,k=v"')
    p.add_argument('--flops', action='store_true', help='count FLOPs (one image per size)')
    p.add_argument(
        '--peak-tflops',
        type=float,
        default=None,
        help='device peak TFLOPS for the dtype; prints MFU (implies --flops)')
    p.add_argument('--timeout', type=float, default=None, help='seconds per case')
    p.add_argument('--json', default=None, help='write results to this JSON file')
    p.add_argument('--csv', default=None, help='write one row per case to this CSV file')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None and not args.model:
        p.error('--model is required')
    if args.warmup < 0 or args.repeat < 1:
        p.error('--warmup must be >= 0 and --repeat >= 1')
    if args.peak_tflops:
        args.flops = True
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker is not None:  # one case in this process, as the worker module does
        return worker.main([args.worker])
    try:
        cases = build_cases(args)
        check_official_code(cases)
    except (ValueError, RuntimeError) as e:
        print(f'benchmark.py: error: {e}', file=sys.stderr)
        return 2
    started = datetime.datetime.now(datetime.timezone.utc)
    meta = dict(
        command='python ' + ' '.join([osp.relpath(__file__, os.getcwd())] +
                                     (sys.argv[1:] if argv is None else list(argv))),
        date=started.isoformat(timespec='seconds'),
        load_before=os.getloadavg(),
        **machine_info(args.device))
    print(
        f'{len(cases)} cases on {meta.get("lscpu Model name", platform.processor())} '
        f'(torch {meta["torch"]}, load {meta["load_before"][0]:.2f})',
        flush=True)
    if meta['load_before'][0] > (meta['cpu_count'] or 1) and not args.threads:
        print(
            'note: the load average exceeds the CPU count; on a shared CPU, --threads 1 '
            'avoids the wait of multi-threaded kernels for descheduled threads',
            flush=True)
    rows, paired = run_cases(
        cases, flops=args.flops, peak_tflops=args.peak_tflops, timeout=args.timeout)
    meta['load_after'] = os.getloadavg()
    meta['elapsed_s'] = round(time.time() - started.timestamp(), 1)
    pairs = ratios(rows, paired)
    print()
    print(runtime_table(paired) if args.runtimes else format_tables(rows, pairs))
    print(f"\nload average before {meta['load_before'][0]:.2f}, after "
          f"{meta['load_after'][0]:.2f} ({meta['cpu_count']} CPUs); "
          f"elapsed {meta['elapsed_s']} s")
    if args.json:
        write_json(args.json, meta, rows, paired, pairs)
    if args.csv:
        write_csv(args.csv, rows)
    return 0 if all(r['status'] == 'ok' for r in rows + paired) else 1


if __name__ == '__main__':
    sys.exit(main())
