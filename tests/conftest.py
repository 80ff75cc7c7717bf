"""Suite-wide guards."""
import os

import pytest


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
