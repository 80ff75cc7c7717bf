"""The GPU check: attention equivalence (fp32/bf16/fp16, padded and unpadded, forward
and backward), Mask R-CNN and UperNet mixed-precision training steps, torch.compile, and
bf16 classification throughput with MFU. Under 8 minutes on one GPU.

    python tools/analysis_tools/gpu_check.py [--device cuda|cpu]
        [--checks attention train compile throughput precision] [--out-dir work_dirs/gpu_check]
        [--peak-tflops T] [--compile-backend inductor]

``--device cpu`` is the dry run at small sizes (the test suite runs it). Writes
``OUT_DIR/gpu_check.json`` and prints a summary; exits 1 if a check fails. See
mmscope/benchmark/gpu_check.py for what each check compares, and docs/benchmarks.md for
the figures.
"""
import argparse
import sys

from mmscope.benchmark import gpu_check


def main(argv=None):
    p = argparse.ArgumentParser(description='mmscope GPU check (or its CPU dry run)')
    p.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    checks = ['attention', 'train', 'compile', 'throughput', 'precision']
    p.add_argument('--checks', nargs='+', default=checks, choices=checks)
    p.add_argument('--out-dir', default='work_dirs/gpu_check')
    p.add_argument('--peak-tflops', type=float, default=None,
                   help='dense bf16 peak of the device (default: known for H100/H200/A100)')
    p.add_argument('--compile-backend', default=None,
                   help='torch.compile backend (default: inductor on cuda, aot_eager on cpu)')
    args = p.parse_args(argv)
    report = gpu_check.run(args.device, args.checks, args.out_dir, args.peak_tflops,
                           args.compile_backend)
    print(gpu_check.format_report(report))
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
