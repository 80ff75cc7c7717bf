"""Operator by operator: a backbone in fp32 and under bf16 autocast, side by side.

    python tools/analysis_tools/autocast_profile.py --model scopevit-t
        [--size 224] [--batch 8] [--mode infer|train] [--repeat 3] [--threads 1]
        [--top 25] [--json FILE]

Per ATen operator: calls and self CPU time per step in fp32 and in bf16, and the dtype of
its outputs under autocast (which operators stay fp32, which add casts); the step times
and the casts autocast adds per step. MODEL is any model of ``benchmark.py`` (an mmscope
arch, ``LIB:Type[:arch]``, a config). The logic is :mod:`mmscope.benchmark.autocast_profile`.
"""
import argparse
import json
import sys

from mmscope.benchmark.autocast_profile import markdown, profile_precisions
from mmscope.benchmark.report import machine_info


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='fp32 vs bf16 autocast, per operator',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help='benchmark model spec, e.g. scopevit-t')
    p.add_argument('--size', default='224', help='H or HxW')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--mode', choices=['infer', 'train'], default='infer')
    p.add_argument('--repeat', type=int, default=3, help='profiled steps per precision')
    p.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    p.add_argument('--top', type=int, default=25, help='operators in the table')
    p.add_argument('--json', default=None, help='write the whole profile here')
    args = p.parse_args(argv)
    if min(args.batch, args.repeat, args.top) < 1:
        p.error('--batch, --repeat and --top must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    result = profile_precisions(args.model, args.size, args.batch, args.mode, args.repeat,
                                args.threads)
    print(markdown(result, args.top))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(result, machine=machine_info('cpu')), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
