"""Keep the memory of freed CPU tensors in the process (glibc ``malloc`` on Linux).

PyTorch takes CPU tensor memory from ``malloc``. With glibc's defaults, a block of more
than 128 KB (a threshold glibc raises to the largest block freed so far, at most 32 MB)
is a fresh ``mmap`` that ``free`` unmaps, and memory freed at the top of the heap goes
back to the kernel once more than twice that threshold is free. A training step frees
and allocates the same large activations over and over (ScopeViT-T, 224, batch 8: about
85 MB of them per step), so the kernel maps, zeroes and page-faults them in again every
step: about 21,000 page faults and 25-45 ms of system time per bf16 training step of
ScopeViT-T, 9,000 faults and 18 ms of the 41 ms training step of its first inverted
residual alone (docs/benchmarks.md, issue 35).

:func:`tune_cpu_allocator` sets glibc's thresholds so that blocks of up to 32 MB come
from the heap and up to :data:`TRIM_THRESHOLD` of freed heap stays in the process:
the same step then page-faults only while its memory first grows. The price is that the
process keeps up to that much freed memory. ``tools/train.py``, ``tools/test.py`` and
every benchmark worker call it; ``MMSCOPE_MALLOC_TUNING=0`` leaves the allocator alone.
Other C libraries (musl, macOS, Windows) are left as they are.
"""
import ctypes
import sys
from typing import Optional

from ..utils.env import env_switch

__all__ = ['tune_cpu_allocator', 'MMAP_THRESHOLD', 'TRIM_THRESHOLD']

#: Blocks up to this size come from the heap (glibc refuses more than 32 MB).
MMAP_THRESHOLD = 32 * 2**20
#: Freed memory at the top of the heap stays in the process up to this size.
TRIM_THRESHOLD = 256 * 2**20

# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _glibc() -> Optional[ctypes.CDLL]:
    """The process's C library if it is glibc (Linux), else None."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it
        libc.mallopt
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def tune_cpu_allocator(enabled: Optional[bool] = None) -> bool:
    """Set glibc's ``malloc`` to keep freed tensor memory (see the module docstring).

    Args:
        enabled (bool, optional): False: do nothing. None (default): the environment
            variable ``MMSCOPE_MALLOC_TUNING`` (``1`` / ``0``, default ``1``) decides.

    Returns:
        bool: Whether the settings are now in force (False where disabled, or where the
        C library is not glibc).
    """
    if enabled is None:
        enabled = env_switch('MMSCOPE_MALLOC_TUNING')
    if not enabled:
        return False
    libc = _glibc()
    if libc is None:
        return False
    return (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
