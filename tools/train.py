"""Train any mmscope config, run by the library its ``default_scope`` names.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch|slurm|mpi]
"""
import argparse

import mmscope  # noqa: F401  (safe checkpoint loading for load_from / resume)
from mmengine.config import DictAction

from mmscope.apis import apply_common_args, library_of, load_config, run_runner
from mmscope.apis.runner import check_resumable


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a model (a config of any library mmscope serves)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest checkpoint '
        'in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size (auto_scale_lr)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (e.g. '
        'model.backbone.norm_cfg.type=BN train_dataloader.batch_size=2)')
    parser.add_argument('--trust-checkpoint', action='append', metavar='PATH',
                        help='fully unpickle this checkpoint (only for files you trust)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone (dynamic=True; a config\'s own '
                        '`compile` options are used instead when it has them)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def merge_args(cfg, args):
    apply_common_args(cfg, args)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
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
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    library = library_of(cfg)
    if library.before_train is not None:
        library.before_train()
    cfg = merge_args(cfg, args)
    run_runner(cfg, 'train', compile=args.compile)


if __name__ == '__main__':
    main()
