"""Suite-wide guards for both test folders (`tests/` and `projects/shapes_demo/tests/`)."""
import os

import pytest

# One OpenMP thread for the suite and every process it starts (before torch is
# imported; set OMP_NUM_THREADS to override). On a 2-core machine where another job keeps
# one core busy, two intra-op threads make every parallel region wait for the thread that
# shares its core with that job: the quick demo's classifier trained 25x slower (19 min
# for an epoch of 45 s). One thread per process only shares its core.
os.environ.setdefault('OMP_NUM_THREADS', '1')
# The measured attention dispatch off for the suite and its processes (set
# MMSCOPE_ATTN_BENCHMARK=1 to override): every first call of a shape would time both
# kernels (a few times the cost of a forward that sees each shape once, as most tests do),
# and which kernel runs would depend on the load of the machine. Its own tests
# (tests/test_models/test_layers/test_attention_dispatch.py) switch it on with a fake timer.
os.environ.setdefault('MMSCOPE_ATTN_BENCHMARK', '0')


@pytest.fixture(autouse=True)
def _no_trust_leaks():
    """A test that trusts a checkpoint (``trust_checkpoint``, ``--trust-checkpoint``)
    writes ``MMSCOPE_TRUSTED_CHECKPOINTS`` into ``os.environ``: restore it after every
    test, so that no later test loads a file as trusted by accident."""
    from mmscope.utils.checkpoint import TRUST_ENV
    before = os.environ.get(TRUST_ENV)
    yield
    if before is None:
        os.environ.pop(TRUST_ENV, None)
    else:
        os.environ[TRUST_ENV] = before


@pytest.fixture(autouse=True, scope='module')
def _no_default_scope_leaks():
    """Building a Runner (or ``init_default_scope``) makes a new mmengine default scope
    current for the rest of the process: a later ``mmpretrain.registry.MODELS.build``
    would then look in that library's registry instead. Drop the scopes a test module
    created when it ends, so that no module depends on which ones ran before it."""
    from mmengine.registry import DefaultScope
    before = set(DefaultScope._instance_dict)
    yield
    # re-read the table: ``DefaultScope.overwrite_default_scope`` replaces the dict object
    # itself (with the copy it took on entry), so a reference taken above may be stale
    instances = DefaultScope._instance_dict
    for name in [n for n in instances if n not in before]:
        del instances[name]


@pytest.fixture(scope='module')
def one_torch_thread():
    """One intra-op torch thread for a module (``pytestmark =
    pytest.mark.usefixtures('one_torch_thread')``): faster than two on a shared 2-core
    machine, and deterministic for the tests that compare kernels."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope='session')
def small_shapes(tmp_path_factory):
    """A small shapes set (seed 3, :data:`helpers.SMALL_SHAPES`) written once per session
    by the demo project's generator; tests read it and must not change it. Returns
    ``(folder, meta)``."""
    from helpers import SMALL_SHAPES

    from shapes_demo import shapes
    out = str(tmp_path_factory.mktemp('shapes') / 'a')
    meta = shapes.generate_shapes(out, seed=3, **SMALL_SHAPES)
    return out, meta
