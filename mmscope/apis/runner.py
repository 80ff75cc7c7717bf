"""What ``tools/train.py`` and ``tools/test.py`` share: one set of tools for every library
of :data:`mmscope.apis.libraries.LIBRARIES`, routed by the config's ``default_scope``."""
import gc
import os
import os.path as osp
import sys
import threading
import traceback
from typing import Any, Callable, Optional

from mmengine.config import Config

from ..utils.checkpoint import check_weights, safe_load, trust_checkpoint, weights_of
from .allocator import tune_cpu_allocator
from .libraries import library_of


def apply_common_args(cfg: Config, args) -> Config:
    """``--launcher``, ``--work-dir``, ``--trust-checkpoint`` as the OpenMMLab tools do."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    for path in getattr(args, 'trust_checkpoint', None) or []:
        trust_checkpoint(path)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(getattr(args, 'local_rank', 0))
    return cfg


def read_checkpoint(path: str) -> dict:
    """A checkpoint file for a look at its content: a local ``torch.save`` archive is
    memory-mapped (nothing copied), anything else goes through mmengine's loader (safe
    after ``import mmscope``)."""
    import zipfile
    if osp.isfile(path) and zipfile.is_zipfile(path):
        return safe_load(path, map_location='cpu', mmap=True)
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(path, map_location='cpu')


#: What a checkpoint written by training holds besides the weights, which ``--resume``
#: needs: ``meta`` (with ``epoch`` and ``iter``), ``message_hub`` and ``optimizer``.
RESUME_ENTRIES = ('meta.epoch', 'meta.iter', 'message_hub', 'optimizer')


def check_resumable(path: str) -> None:
    """``tools/train.py --resume PATH``: ValueError, naming what is missing and the way to
    start from the weights instead, unless ``path`` holds a training state
    (:data:`RESUME_ENTRIES`), e.g. a published or converted weights-only file.

    Args:
        path: the checkpoint given to ``--resume``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'--resume checkpoint not found: {path}')
    ckpt = read_checkpoint(path)
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    have = set(ckpt) if isinstance(ckpt, dict) else set()
    have |= {f'meta.{k}' for k in meta} if isinstance(meta, dict) else set()
    missing = [k for k in RESUME_ENTRIES if k not in have]
    if missing:
        raise ValueError(
            f'--resume {path}: the file holds no training state to resume (missing: '
            f'{", ".join(missing)}); it is a weights-only checkpoint (published, converted '
            f'or saved without the optimizer). To start a new training from its weights, '
            f'use --cfg-options load_from={path} instead of --resume.')


def check_checkpoint_fits(model, path: str, purpose: str = 'evaluate') -> None:
    """Refuse a checkpoint that does not fit ``model`` before anything is computed with
    it: :func:`mmscope.utils.checkpoint.check_weights` (the one check of every entry
    point). ``'evaluate'`` (``tools/test.py``, inference, export): every tensor must load;
    ``'finetune'`` (``load_from`` in training): at least the whole backbone must, parts
    left unloaded are named in a warning. A file that is not a checkpoint raises
    :class:`~mmscope.utils.checkpoint.NotACheckpointError`.

    Args:
        model: the model (a DDP or test-time-augmentation wrapper, or an inferencer's
            model, is looked through, as mmengine's loader does).
        path: the checkpoint (``load_from``, ``weights``).
        purpose: ``'evaluate'`` or ``'finetune'``.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    check_weights(model, weights_of(read_checkpoint(path)), f'checkpoint {path}', purpose)


def take_compile_options(cfg: Config, flag: bool = False) -> Optional[dict]:
    """The ``torch.compile`` options of a run, taken out of ``cfg``: the config's
    ``compile`` key (``True`` or a dict of ``torch.compile`` keywords, as mmengine reads
    it) or ``--compile`` (``flag``: ``dict(dynamic=True)`` unless the config has its
    own). None: no compilation.

    mmengine would compile the whole ``train_step`` (data preprocessing, losses and the
    library's heads, with their graph breaks) and nothing at test time; mmscope's tools
    compile the *backbone* in place instead (:func:`mmscope.deploy.compile_backbone`:
    one graph for every input size, same state-dict keys) in training and testing, so
    the key is removed before the runner is built."""
    options = cfg.pop('compile', None)
    if options is False:
        options = None
    if options is True:
        options = {}
    if options is None and flag:
        options = dict(dynamic=True)
    if options is not None and not isinstance(options, dict):
        raise TypeError(f'compile must be a bool or a dict of torch.compile options, got '
                        f'{type(options).__name__}')
    return None if options is None else dict(options)


def compile_model(runner, options: dict) -> None:
    """Compile the backbone of the runner's model (unwrapped from DDP) in place."""
    from mmscope.deploy import compile_backbone
    model = runner.model
    model = getattr(model, 'module', model)
    backbone = compile_backbone(model, options)
    runner.logger.info(f'torch.compile: {type(backbone).__name__} compiled in place with '
                       f'{options} (the first iterations include compilation)')


def trigger_visualization(cfg: Config,
                          show: bool,
                          show_dir: Optional[str],
                          wait_time: float = 2.,
                          interval: int = 1) -> Config:
    """Turn on the config's VisualizationHook (its fields differ per library).

    A relative ``show_dir`` is a folder of the work dir (``cfg.work_dir``), as the
    libraries' own tools document it, for every library (left alone, mmseg and mmdet's
    visualizer and mmpretrain's hook would write it under the current folder)."""
    if show_dir and not osp.isabs(show_dir) and cfg.get('work_dir'):
        show_dir = osp.abspath(osp.join(cfg.work_dir, show_dir))
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise RuntimeError('--show/--show-dir need a VisualizationHook in default_hooks: '
                           "add visualization=dict(type='VisualizationHook')")
    vis = hooks['visualization']
    if library_of(cfg).visualizer_style == 'enable':
        vis.update(enable=True, show=show, wait_time=wait_time, out_dir=show_dir, interval=interval)
    else:
        vis.update(draw=True, interval=interval)
        if show:
            vis.update(show=True, wait_time=wait_time)
        if show_dir:
            cfg.visualizer['save_dir'] = show_dir
    return cfg


def init_cpu_distributed(cfg: Config) -> bool:
    """Start the process group with gloo when launched by torchrun without CUDA.

    mmengine 0.10.7 calls ``torch.cuda.set_device`` whatever the backend, which fails on
    a machine without a GPU driver, and wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``, which DDP refuses for a CPU module. It skips its own
    set-up when a process group exists and lets ``model_wrapper_cfg`` override the device
    ids, so CPU data-parallel runs (``tools/dist_train.sh CONFIG 2`` on a laptop or in CI)
    start the group here, with the gloo backend, and wrap with ``device_ids=None``.
    Returns whether it did.
    """
    import torch
    import torch.distributed as dist
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available() \
            or not dist.is_available() or dist.is_initialized():
        return False
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    dist.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    # only DDP-style wrappers take device ids (mmengine adds [LOCAL_RANK] for them)
    if 'DistributedDataParallel' in str(wrapper.get('type', 'MMDistributedDataParallel')):
        wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    return True


def build_runner(cfg: Config):
    """``Runner.from_cfg`` or the config's ``runner_type``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    init_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


#: Seconds a failing rank waits for its process group to shut down before it exits
#: without it (a peer may be gone in the middle of a collective). Environment:
#: ``MMSCOPE_DIST_SHUTDOWN_TIMEOUT``.
DIST_SHUTDOWN_TIMEOUT = 60.


def shutdown_distributed(succeeded: bool = True) -> bool:
    """Shut the default process group down in order, before the interpreter exits.

    Whoever started it (:func:`init_cpu_distributed`, or mmengine for the ``pytorch``,
    ``slurm`` and ``mpi`` launchers), a group left alive is torn down by C++ static
    destructors after Python has finalised: gloo's worker and transport threads (and
    the store client) are then destroyed in no defined order, and a rank of a finished
    job can die with ``terminate called without an active exception`` (SIGABRT),
    turning a successful job into a failed one. Here, after a success, every rank
    first meets the others at a barrier (no rank tears its side down while a peer still
    talks to it), then destroys the group, which shuts the backend's threads down.

    After a failure there is no barrier (the peers may be gone); the shutdown runs with
    a bound (:data:`DIST_SHUTDOWN_TIMEOUT`) and returns False if it did not finish, so
    that the caller can leave at once instead of hanging on a dead peer. Returns True
    when no group is left (or none was started).
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return True
    if succeeded:
        dist.barrier()
        dist.destroy_process_group()
        return True
    timeout = float(os.environ.get('MMSCOPE_DIST_SHUTDOWN_TIMEOUT', DIST_SHUTDOWN_TIMEOUT))
    worker = threading.Thread(
        target=dist.destroy_process_group, daemon=True, name='mmscope-dist-shutdown')
    worker.start()
    worker.join(timeout)
    return not worker.is_alive()


def run_runner(cfg: Config,
               mode: str,
               prepare: Optional[Callable[[Any], None]] = None,
               compile: bool = False):
    """Build the runner of ``cfg``, run ``runner.train()`` or ``runner.test()``, and
    leave the process in order: what ``tools/train.py`` and ``tools/test.py`` do.

    ``prepare(runner)`` runs between building and running (e.g. to add a metric).
    Testing (``'test'``, ``'val'``) with ``load_from`` first checks that the checkpoint
    covers the whole model (:func:`check_checkpoint_fits`): no metric of a model whose
    weights did not load; training with ``load_from`` (not resuming) checks that it
    covers at least the backbone and names the parts it leaves to initialisation.
    ``compile`` (``--compile``) or the config's ``compile`` key compiles the backbone
    (:func:`take_compile_options`). Before anything is built, glibc's ``malloc`` is set to
    keep freed tensor memory (:func:`~mmscope.apis.allocator.tune_cpu_allocator`;
    ``MMSCOPE_MALLOC_TUNING=0`` leaves it alone).
    Returns the metrics of ``test`` / ``val``, None for ``train``.
    In a distributed run the runner (and with it the DDP wrapper and its reducer, which
    hold the process group) is released before :func:`shutdown_distributed`.

    A failure in a distributed run prints its traceback, shuts the group down (bounded)
    and exits with status 1; if the shutdown does not finish, the process exits at once
    (``os._exit(1)``) rather than wait on a dead peer. Outside a distributed run,
    exceptions propagate unchanged.
    """
    import torch.distributed as dist
    if mode not in ('train', 'test', 'val'):
        raise ValueError(f"mode must be 'train', 'test' or 'val', got {mode!r}")
    tune_cpu_allocator()
    runner = None
    try:
        compile_options = take_compile_options(cfg, compile)
        runner = build_runner(cfg)
        if cfg.get('load_from') and not (mode == 'train' and cfg.get('resume')):
            check_checkpoint_fits(runner.model, cfg.load_from,
                                  'finetune' if mode == 'train' else 'evaluate')
        if compile_options is not None:
            compile_model(runner, compile_options)
        if prepare is not None:
            prepare(runner)
        result = getattr(runner, mode)()
    except BaseException:
        if not (dist.is_available() and dist.is_initialized()):
            raise
        traceback.print_exc()
        rank = dist.get_rank()
    else:
        # train() returns the (wrapped) model: keep only what holds no process group
        runner = None
        if mode == 'train':
            result = None
        gc.collect()
        shutdown_distributed(succeeded=True)
        return result
    # failure in a distributed run: the traceback is printed; drop every reference to
    # the runner (the exception's frames held it) before the group goes
    runner = None
    sys.last_exc = sys.last_value = sys.last_traceback = None
    gc.collect()
    print(f'[mmscope] rank {rank} failed (traceback above); shutting down its process '
          'group',
          file=sys.stderr,
          flush=True)
    clean = shutdown_distributed(succeeded=False)
    sys.stdout.flush()
    sys.stderr.flush()
    if not clean:
        import logging
        logging.shutdown()
        os._exit(1)
    raise SystemExit(1)


__all__ = [
    'apply_common_args', 'read_checkpoint', 'check_resumable', 'check_checkpoint_fits',
    'take_compile_options', 'compile_model', 'trigger_visualization', 'init_cpu_distributed',
    'build_runner', 'shutdown_distributed', 'run_runner'
]
