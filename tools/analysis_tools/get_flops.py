"""Parameters and FLOPs of any mmscope config: classifier, detector or segmentor.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]] [--params-only]
        [--exclude-attention] [--cfg-options k=v ...]
    python tools/analysis_tools/get_flops.py --all [--config-dir configs] [--out FILE]
        [--params-only] [--exclude-attention] [--filter SUBSTRING] [--shape H [W]]

The library that runs the config is read from its ``default_scope`` (mmpretrain, mmdet or
mmseg) and the model is built from that library's registry on CPU, without loading the
``Pretrained`` checkpoint of ``init_cfg`` and with SyncBN turned into BN.

Default input shapes (``--shape`` overrides them, ``H W`` or one side for a square):
  * classification: the config's test crop (256x256 for ScopeViT, 224x224 for ScalableViT);
  * detection: 1280x800, given as H=1280, W=800 like mmdet's get_flops and the papers;
  * segmentation: 512x512.

FLOPs are counted by mmengine's ``FlopAnalyzer`` (the counter behind
``get_model_complexity_info``; one multiply-add = one FLOP, as the papers count) on a
single image in ``tensor`` mode: the classifier logits, the segmentor's decode-head
logits (no resize to the input), the detector's raw head outputs (for Mask R-CNN: RPN
proposals -> box and mask heads on them). The attention of
mmscope backbones runs in its ``reference`` (matmul + softmax) form while counting so the
attention-matrix products are included; ``--exclude-attention`` leaves them out, which is
how the mmcv counter of mmdet 2.x / mmseg 0.x (used for the papers' tables) counted.
Element-wise operations, norms and activations are not counted. Parameters are every
parameter of the model. The counting is :mod:`mmscope.apis.complexity`.

``--all`` prints one markdown table row per config found under ``--config-dir`` (files in
``_base_`` folders are skipped); configs whose model and input are identical (e.g. a 1x
and a 3x detector) are measured once.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

from mmscope.apis import library_of, load_config
from mmscope.apis.complexity import fmt_g, fmt_m, measure, measure_all, table

#: the repository root, for the default ``--config-dir``
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    """The command line (see the module doc)."""
    parser = argparse.ArgumentParser(
        description='Params and FLOPs of an mmscope config (or of all of them)')
    parser.add_argument('config', nargs='?', help='config file')
    parser.add_argument(
        '--all',
        action='store_true',
        help='measure every config under --config-dir, print a markdown table')
    parser.add_argument(
        '--config-dir',
        default=osp.join(ROOT, 'configs'),
        help='where --all looks for configs (default: configs/)')
    parser.add_argument(
        '--filter', default=None, help='with --all: only configs whose file name contains this')
    parser.add_argument('--out', default=None, help='with --all: also write the table here')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='input H [W]; default: cls test size, det 1280 800, seg 512 512')
    parser.add_argument(
        '--params-only', action='store_true', help='count parameters only (fast, no forward pass)')
    parser.add_argument(
        '--exclude-attention',
        action='store_true',
        help='leave the attention-matrix products out of the FLOPs, as '
        'the mmcv counter behind the papers\' numbers did')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    args = parser.parse_args(argv)
    if bool(args.config) == bool(args.all):
        parser.error('give either a CONFIG or --all')
    return args


def main(argv=None):
    """Print the table of ``--all`` (and write ``--out``) or one config's numbers;
    return the rows or the one result."""
    args = parse_args(argv)
    if args.all:
        rows = measure_all(
            args.config_dir,
            flops=not args.params_only,
            name_filter=args.filter,
            shape=args.shape,
            count_attention=not args.exclude_attention,
            log=lambda s: print(s, file=sys.stderr))
        text = table(rows, args.config_dir)
        print(text)
        if args.out:
            os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
            with open(args.out, 'w') as f:
                f.write(text + '\n')
        return rows
    cfg = load_config(args.config, args.cfg_options)
    res = measure(
        cfg, args.shape, flops=not args.params_only, count_attention=not args.exclude_attention)
    h, w = res['shape']
    line = '=' * 40
    print(f'{line}\nConfig: {args.config}\nTask: {res["task"]} ({library_of(cfg).scope})\n'
          f'Input shape: 1x3x{h}x{w}\nFLOPs: {fmt_g(res["flops"])} G\n'
          f'Params: {fmt_m(res["params"])} M\n{line}')
    return res


if __name__ == '__main__':
    main()
