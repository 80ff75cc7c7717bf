"""The GPU check: attention equivalence (fp32/bf16/fp16, padded and unpadded, forward
and backward), Mask R-CNN and UperNet mixed-precision training steps, torch.compile, and
bf16 classification throughput with MFU. Under 8 minutes on one GPU.

    python tools/analysis_tools/gpu_check.py [--device cuda|cpu]
        [--checks attention train compile throughput precision] [--out-dir work_dirs/gpu_check]
        [--peak-tflops T] [--compile-backend inductor]

``--device cpu`` is the dry run at small sizes (the test suite runs it). Writes
``OUT_DIR/gpu_check.json`` and prints a summary; exits 1 if a check fails. This script
holds the plans (the configs, models and sizes of each device) and starts
``tools/analysis_tools/benchmark.py`` for the throughput and precision checks; see
mmscope/benchmark/gpu_check.py for what each check compares, and docs/benchmarks.md for
the figures.
"""
import argparse
import copy
import os.path as osp
import subprocess
import sys
from typing import Dict, Sequence, Tuple

from mmscope.benchmark import gpu_check

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCHMARK = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py')

#: sizes and models per device: the GPU run at real sizes, the CPU dry run small (config
#: paths relative to the repository root)
PLANS = {
    'cuda':
    dict(
        families=[('ScopeViT', 'tiny', (256, 256), (200, 300)),
                  ('ScalableViT', 'small', (224, 224), (200, 300))],
        attn_batch=4,
        train=[('configs/scopevit/mask-rcnn_scopevit-t_fpn_1x_coco.py', (800, 1344), ('fp16',
                                                                                      'bf16')),
               ('configs/scalablevit/upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py', (512, 512),
                ('fp16', 'bf16'))],
        train_batch=2,
        train_steps=3,
        compile=('ScopeViT', 'tiny', (224, 224), 8),
        compile_backend='inductor',
        bench_models=['scopevit-t', 'scalablevit-s'],
        bench_size='224',
        bench_batches=[64, 128],
        bench_warmup=10,
        bench_repeat=30,
        precision_models=[
            'scopevit-t', 'scalablevit-s', 'mmpretrain:SwinTransformer:tiny',
            'mmpretrain:ConvNeXt:tiny', 'mmpretrain:ResNet:50'
        ],
        precision_size='224',
        precision_batch=32,
        precision_warmup=3,
        precision_repeat=10,
        precision_rounds=3),
    'cpu':
    dict(
        families=[('ScopeViT', 'xtiny', (64, 64), (97, 131)),
                  ('ScalableViT', 'small', (56, 56), (64, 72))],
        attn_batch=1,
        # mmcv's CPU nms / RoIAlign take fp32 only, and fp16 convolutions on CPU are ~30x
        # slower than bf16 (a 64x64 UperNet step: 34 s): the dry run is fp32 / bf16
        train=[('projects/shapes_demo/configs/mask-rcnn_scopevit-xt_fpn_shapes.py', (128, 128),
                ('fp32', )),
               ('projects/shapes_demo/configs/upernet_scalablevit-xs_shapes.py', (64, 64),
                ('bf16', ))],
        train_batch=2,
        train_steps=2,
        compile=('ScopeViT', 'xtiny', (64, 64), 1),
        compile_backend='aot_eager',
        bench_models=['scopevit-xt'],
        bench_size='64',
        bench_batches=[2],
        bench_warmup=0,
        bench_repeat=1,
        precision_models=['scopevit-xt'],
        precision_size='64',
        precision_batch=2,
        precision_warmup=0,
        precision_repeat=1,
        precision_rounds=1),
}


def plan_for(device: str) -> Dict:
    """The plan of ``device`` with its config paths made absolute."""
    plan = copy.deepcopy(PLANS[device])
    plan['train'] = [(osp.join(ROOT, path), size, dtypes) for path, size, dtypes in plan['train']]
    return plan


def run_benchmark(args: Sequence[str]) -> Tuple[int, str]:
    """``tools/analysis_tools/benchmark.py ARGS`` in a new process: (exit code, output)."""
    proc = subprocess.run([sys.executable, BENCHMARK, *args],
                          cwd=ROOT,
                          capture_output=True,
                          text=True)
    return proc.returncode, proc.stdout + proc.stderr


def main(argv=None):
    p = argparse.ArgumentParser(description='mmscope GPU check (or its CPU dry run)')
    p.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    checks = ['attention', 'train', 'compile', 'throughput', 'precision']
    p.add_argument('--checks', nargs='+', default=checks, choices=checks)
    p.add_argument('--out-dir', default='work_dirs/gpu_check')
    p.add_argument(
        '--peak-tflops',
        type=float,
        default=None,
        help='dense bf16 peak of the device (default: known for H100/H200/A100)')
    p.add_argument(
        '--compile-backend',
        default=None,
        help='torch.compile backend (default: inductor on cuda, aot_eager on cpu)')
    args = p.parse_args(argv)
    report = gpu_check.run(args.device, plan_for(args.device), run_benchmark, args.checks,
                           args.out_dir, args.peak_tflops, args.compile_backend)
    print(gpu_check.format_report(report))
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
