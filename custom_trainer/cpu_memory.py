"""Keep freed memory in the training process instead of handing it back to the OS at every step (glibc only).

Why: glibc serves every allocation above its mmap threshold (at most 32 MB, usually far less) with a fresh mmap and
returns it with munmap when freed. A training step frees and re-allocates the same large tensors every time (the
word embeddings' 30,522 x 384 gradient, 47 MB, is zeroed by a fresh allocation each step; activations of a batch
are megabytes each), so the kernel maps, faults in and zeroes those pages again at every step: on a 2-core EPYC the
page faults doubled the process's system time and the `fill_` of the embedding gradient alone cost more than the
model's largest matrix product (benchmarks/RESULTS.md, issue 39). With mmap off for the heap (M_MMAP_MAX 0) and no
trimming (M_TRIM_THRESHOLD high), freed blocks stay in the process and the next step reuses them: results are
bit-for-bit the same, the resident memory stays at its peak until the process ends. tcmalloc and jemalloc (LD_PRELOAD)
do the same for a whole program; this needs no extra library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
from functools import lru_cache

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest one (2 GB free at the heap's top before a trim)


@lru_cache(maxsize=1)
def _glibc():
    """glibc's handle, or None on another C library (musl, macOS, Windows)."""
    if platform.system() != "Linux":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve large blocks from the heap and never trim it (process-wide, from now on).
    Returns whether it applied (False where the C library is not glibc; nothing changes then)."""
    global _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        return False
    trimmed = libc.mallopt(M_TRIM_THRESHOLD, _NEVER_TRIM)  # mallopt returns 1 on success
    mapped = libc.mallopt(M_MMAP_MAX, 0)
    _applied = bool(trimmed and mapped)
    if _applied:
        logger.info("training on the CPU: freed memory is kept for reuse (glibc M_MMAP_MAX 0, no trimming)")
    return _applied


def keep_freed_memory_for(args) -> bool:
    """Apply :func:`keep_freed_memory` where training arguments ask for it (their ``keep_freed_memory`` on a CPU
    device); returns whether it applied in this call (False where not asked, even if an earlier call applied it).
    The one check for train.py, which applies it before the
    contrastive stage, and TicketTrainer.train, which applies it before the Trainer's loop."""
    if args.device.type != "cpu" or not getattr(args, "keep_freed_memory", False):
        return False
    return keep_freed_memory()


def freed_memory_kept() -> bool:
    """Whether :func:`keep_freed_memory` has applied in this process."""
    return _applied
