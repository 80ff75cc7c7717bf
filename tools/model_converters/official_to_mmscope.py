"""Convert official checkpoints of any mmscope backbone family to mmscope (mmpretrain)
checkpoints, and back.

    python tools/model_converters/official_to_mmscope.py SRC DST [--family FAMILY]
        [--arch ARCH] [--backbone-only] [--to-official] [--config CFG] [--key KEY]
        [--force] [--trust]

The family (``scopevit``, ``scalablevit``, ...) is found from the checkpoint keys unless
``--family`` names it. See docs/converters.md; the conversion itself is
:func:`mmscope.converters.engine.convert_checkpoint`.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

from mmscope.converters import ConversionError, num_params
from mmscope.converters.engine import (Conversion, config_display_path, convert_checkpoint,
                                       official_repo)
from mmscope.models.family import families


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    lines = []
    for fam in families():
        archs = ', '.join(f'{a} ({"/".join(fam.short_names(a))})' for a in fam.archs)
        lines.append(f'  {fam.key}: {archs}; released code {official_repo(fam)}')
    parser = argparse.ArgumentParser(
        prog=prog,
        description='Convert official checkpoints of an mmscope backbone family into '
        'mmpretrain classifier checkpoints for mmscope, or back with --to-official.',
        epilog='families and variants:\n' + '\n'.join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='input checkpoint')
    parser.add_argument('dst', help='output file (never overwritten without --force)')
    parser.add_argument(
        '--family',
        choices=[f.key for f in families()],
        help='the model family (default: found from the checkpoint keys)')
    parser.add_argument('--arch', help='force this variant instead of detecting it')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='write only the backbone (backbone.* keys, every stage of the dense backbone) '
        'for detection/segmentation pre-training; with --to-official, read only the '
        'backbone.* keys of SRC (e.g. of a detector)')
    parser.add_argument(
        '--to-official',
        action='store_true',
        help='convert an mmscope checkpoint into the official layout')
    parser.add_argument(
        '--config',
        help='compare with the classifier of this config '
        'instead of the released variants (custom archs / class counts)')
    parser.add_argument(
        '--key',
        help='take the weights from this checkpoint entry (e.g. '
        '"model" when it also has EMA weights, which are preferred)')
    parser.add_argument('--force', action='store_true', help='overwrite DST')
    parser.add_argument(
        '--trust',
        action='store_true',
        help='fully unpickle SRC (runs any code it holds: only for files '
        'you trust); by default only tensors and plain data are read')
    return parser


def format_summary(args: argparse.Namespace, done: Conversion) -> str:
    spec, result = done.family, done.result
    direction = 'mmscope -> official' if args.to_official else 'official -> mmscope'
    what = 'backbone' if args.backbone_only else 'classifier'
    lines = [
        f'{spec.name} {direction} ({what})',
        f'input: {osp.abspath(args.src)} [{result.source_entry}]',
        f'variant: {result.variant} ({config_display_path(result.layout.config)})',
        f'tensors: {len(result.state_dict)}',
        f'params: {num_params(result.state_dict):,}',
        f'output: {osp.abspath(args.dst)}',
        f'sha256: {done.digest}',
    ]
    lines += [f'note: {n}' for n in result.notes]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> Conversion:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        done = convert_checkpoint(
            args.src,
            args.dst,
            family=args.family,
            arch=args.arch,
            backbone_only=args.backbone_only,
            to_official=args.to_official,
            config=args.config,
            key=args.key,
            force=args.force,
            trust=args.trust,
            tool=prog or osp.basename(sys.argv[0]))
    except (ConversionError, FileExistsError, IsADirectoryError) as exc:
        parser.exit(1, f'error: {exc}\n')
    print(format_summary(args, done))
    return done


if __name__ == '__main__':
    main(prog=osp.basename(__file__))
