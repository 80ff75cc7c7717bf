"""Every attention call of an mmscope backbone, timed with both kernels, one call at a time.

    python tools/analysis_tools/attention_profile.py --model scalablevit-s
        [--size 224] [--batch 8] [--mode infer|train] [--repeat 15] [--threads 1]
        [--device cpu|cuda] [--json FILE]

One forward of the backbone (train mode with gradients for ``--mode train``) records the
arguments of every :func:`mmscope.models.layers.scaled_dot_attention` call. Calls with the
same shapes, bias and scale are grouped. Each group is then replayed on its recorded
tensors with the default path (``fused``) and with the reference path (plain matmul +
softmax), one call of each per round in ABBA order so that both see the same machine load:
a forward under ``no_grad`` for ``infer``, forward + backward for ``train``. Printed per
group: the query / key / value shapes, the bias, how many calls the backbone makes, the
median time of one call with each path, the median and range of the per-round ratio
``t(reference) / t(fused)``, and what the default path runs on this device
(``flash``: SDPA's CPU flash kernel, ``matmul``: the plain matmuls picked by the CPU
dispatch rules of ``mmscope/models/layers/dispatch.py``, ``sdpa``: on CUDA, whichever
kernel SDPA picks).

The totals weigh each group by its number of calls and compare them with a whole step of
the backbone (forward, or forward + backward, default path), also timed here. Attention's
share of the step bounds what any attention kernel can change in the step: the benchmark's
``fused`` / ``reference`` ratio of a whole step cannot move by more than that share times
the kernels' difference.

MODEL is any model of ``benchmark.py`` whose attention goes through mmscope (an mmscope
arch such as ``scopevit-t`` or ``scalablevit-s``, with ``:k=v`` constructor arguments, or a
config file with an mmscope backbone). Times are process CPU time on CPU (steady on a
shared machine) and synchronised wall time on CUDA.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

from mmscope.benchmark.attention_profile import markdown, profile
from mmscope.benchmark.report import machine_info


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Time every attention call of an mmscope backbone with the default and '
        'the reference path.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help='mmscope arch (scalablevit-s) or config')
    p.add_argument('--size', default='224', help='H or HxW')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--mode', choices=['infer', 'train'], default='infer')
    p.add_argument('--repeat', type=int, default=15, help='ABBA rounds per call group')
    p.add_argument('--step-repeat', type=int, default=3, help='timed whole steps')
    p.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    p.add_argument('--json', default=None, help='write rows, summary and machine here')
    args = p.parse_args(argv)
    if args.repeat < 1 or args.step_repeat < 1 or args.batch < 1:
        p.error('--repeat, --step-repeat and --batch must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        rows, summary = profile(args.model, args.size, args.batch, args.mode, args.repeat,
                                args.step_repeat, args.threads, args.device)
    except ValueError as e:
        print(f'attention_profile.py: error: {e}', file=sys.stderr)
        return 2
    print()
    print(markdown(rows, summary))
    if args.json:
        meta = dict(
            command='python ' + ' '.join([osp.relpath(__file__, os.getcwd())] +
                                         (sys.argv[1:] if argv is None else argv)),
            date=time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime()),
            load=os.getloadavg(),
            **machine_info(args.device))
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, args=vars(args), rows=rows, summary=summary), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
