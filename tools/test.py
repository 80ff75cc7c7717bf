"""Test (and evaluate) a checkpoint of any mmscope config, run by its library.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE_OR_DIR]
        [--show] [--show-dir DIR] [--tta] [--amp [--amp-dtype bf16|fp16]]
        [--cfg-options k=v ...] [--launcher ...]

``--out``: mmdet/mmpretrain dump predictions to a ``.pkl`` file; mmseg writes the
predicted label maps into the given directory. ``--amp``: mixed-precision testing (CUDA:
the whole model, fp16 or ``--amp-dtype bf16``; CPU: bf16 autocast of backbone and neck,
heads in fp32; see :mod:`mmscope.apis.precision`).
"""
import argparse
import os.path as osp
from copy import deepcopy

from mmengine.config import ConfigDict, DictAction

import mmscope  # noqa: F401  (safe checkpoint loading)
from mmscope.apis import (apply_common_args, library_of, load_config, run_runner,
                          trigger_visualization)
from mmscope.apis.precision import AMP_DTYPES, configure_amp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test a checkpoint (a config of any library mmscope serves)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the metrics file')
    parser.add_argument(
        '--out',
        help='dump predictions (.pkl for mmdet/mmpretrain; a '
        'directory of label maps for mmseg)')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='save painted predictions to this directory '
        '(a relative one: inside the work dir)')
    parser.add_argument('--wait-time', type=float, default=2, help='show interval (s)')
    parser.add_argument('--interval', type=int, default=1, help='visualize every N-th sample')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision testing: fp16 on CUDA, bf16 autocast of '
        'backbone and neck on the CPU')
    parser.add_argument(
        '--amp-dtype',
        choices=sorted(AMP_DTYPES),
        default=None,
        help='autocast dtype of --amp (default: fp16 on CUDA, bf16 on the '
        'CPU, where fp16 is refused)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
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


def _default_tta(cfg, library):
    """A flip TTA for configs that define none (as the libraries' own tools do)."""
    roi_head = cfg.model.get('roi_head') or {}
    if roi_head.get('mask_head') is not None or 'mask_head' in cfg.model:
        raise ValueError(f'--tta: {cfg.model.get("type")} predicts instance masks, and '
                         'mmdet\'s test-time augmentation (DetTTAModel) merges boxes only: '
                         'instance segmentation has no TTA. Test without --tta (or a '
                         'box-only detector such as RetinaNet with it).')
    if library.tta is not None:  # the library's own way (mmpose: the model's flip test)
        library.tta(cfg)
        return
    if 'tta_model' not in cfg:
        cfg.tta_model = deepcopy(dict(library.tta_model))
    if 'tta_pipeline' not in cfg:
        data = cfg.test_dataloader.dataset
        while 'dataset' in data:
            data = data['dataset']
        pipeline = deepcopy(data.pipeline)
        pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[dict(type='RandomFlip', prob=1.),
                         dict(type='RandomFlip', prob=0.)], [pipeline[-1]]])
        cfg.tta_pipeline = pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    library = library_of(cfg)
    apply_common_args(cfg, args)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        trigger_visualization(cfg, args.show, args.show_dir, args.wait_time, args.interval)
    if args.tta:
        _default_tta(cfg, library)
    dump_kind, dump_metric = library.dump
    if args.out is not None and dump_kind == 'dir':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    elif args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file for {library.scope} configs, '
                         f'got {args.out}')

    if args.amp_dtype is not None and not args.amp:
        raise ValueError('--amp-dtype chooses the dtype of --amp: add --amp')
    amp_prepare = configure_amp(cfg, args.amp_dtype, 'test') if args.amp else None

    def add_dump_metric(runner):
        if amp_prepare is not None:
            amp_prepare(runner)
        if args.out is not None and dump_kind == 'pkl':
            metric = library.import_object(dump_metric)
            runner.test_evaluator.metrics.append(metric(out_file_path=args.out))

    return run_runner(cfg, 'test', prepare=add_dump_metric, compile=args.compile)


if __name__ == '__main__':
    main()
