"""Train any mmscope config, run by the library its ``default_scope`` names.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp [--amp-dtype bf16|fp16]]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch|slurm|mpi]

``--amp``: mixed precision. On CUDA the whole model under autocast (fp16 with a dynamic
loss scaler, or bf16 with ``--amp-dtype bf16``); on the CPU bf16 autocast of the backbone
and neck, the heads in fp32 (fp16 is refused there). A config whose ``optim_wrapper`` is
an ``AmpOptimWrapper`` gets the same on the CPU. See :mod:`mmscope.apis.precision`.
"""
import argparse

from mmengine.config import DictAction

import mmscope  # noqa: F401  (safe checkpoint loading for load_from / resume)
from mmscope.apis import apply_common_args, library_of, load_config, run_runner
from mmscope.apis.precision import AMP_DTYPES, configure_amp
from mmscope.apis.runner import check_resumable


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a model (a config of any library mmscope serves)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, from the latest checkpoint '
        'in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision training: fp16 + dynamic loss scaling on CUDA, '
        'bf16 autocast of backbone and neck on the CPU')
    parser.add_argument(
        '--amp-dtype',
        choices=sorted(AMP_DTYPES),
        default=None,
        help='autocast dtype of --amp (default: fp16 on CUDA, bf16 on the '
        'CPU, where fp16 is refused)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual batch size (auto_scale_lr)')
    parser.add_argument(
        '--no-validate', action='store_true', help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (e.g. '
        'model.backbone.norm_cfg.type=BN train_dataloader.batch_size=2)')
    parser.add_argument(
        '--trust-checkpoint',
        action='append',
        metavar='PATH',
        help='fully unpickle this checkpoint (only for files you trust)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the backbone (dynamic=True; a config\'s own '
        '`compile` options are used instead when it has them)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def merge_args(cfg, args):
    """Apply the command line to ``cfg``; returns ``(cfg, prepare)`` where ``prepare`` is
    None or what :func:`run_runner` calls on the built runner (CPU mixed precision)."""
    apply_common_args(cfg, args)
    prepare = None
    if args.amp_dtype is not None and not args.amp:
        raise ValueError('--amp-dtype chooses the dtype of --amp: add --amp')
    in_config = cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper'
    if args.amp or in_config:
        prepare = configure_amp(cfg, args.amp_dtype, 'train')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr = dict(enable=False, '
                               'base_batch_size=N)` in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        check_resumable(args.resume)  # a file with a training state, not weights only
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg, prepare


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    library = library_of(cfg)
    if library.before_train is not None:
        library.before_train()
    cfg, prepare = merge_args(cfg, args)
    run_runner(cfg, 'train', prepare=prepare, compile=args.compile)


if __name__ == '__main__':
    main()
