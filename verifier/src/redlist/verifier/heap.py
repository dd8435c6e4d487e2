"""The C heap's setting for a long audit: large blocks mapped on their own.

An audit's per-entry state lives in a few arrays that grow for the whole log
(``redlist.ledger.packed``). glibc serves a block below its mmap threshold from the
heap, and raises that threshold (up to 32 MiB) each time a mapped block is freed; a
growing array below it is then copied at each resize and its old block stays in
the heap as a hole the process keeps. Measured on a 1M-entry audit: about 20 bytes an
entry of resident memory beyond the arrays (docs/performance.md). With the threshold
fixed, every block of 128 KiB or more is mapped on its own and an array grows in
place (``mremap``), so the resident memory is the arrays.
"""

from __future__ import annotations

import ctypes

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt``.
_M_MMAP_THRESHOLD = -3
#: glibc's default threshold, here fixed instead of rising.
MMAP_THRESHOLD = 128 * 1024


def map_large_blocks() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD``; whether it was set (False
    where the C library is not glibc: nothing changes)."""
    try:
        # The program's own symbols, the C library's among them: naming the library
        # would run ``ldconfig`` (``ctypes.util.find_library``), a few milliseconds.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc, or no ``mallopt``
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


__all__ = ["MMAP_THRESHOLD", "map_large_blocks"]
