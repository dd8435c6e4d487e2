"""The verifier fixes glibc's mmap threshold (verifier/heap.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_large_blocks_are_mapped_on_their_own_after_the_setting() -> None:
    # In a fresh process: after a 1 MiB block is freed, glibc would raise its threshold
    # and serve the next 1 MiB block from the heap (the answer would be True); with
    # the setting it maps that block on its own.
    program = (
        "import ctypes, sys\n"
        "from redlist.verifier.heap import map_large_blocks\n"
        "assert map_large_blocks() is True\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.malloc.restype = ctypes.c_void_p\n"
        "libc.malloc.argtypes = (ctypes.c_size_t,)\n"
        "libc.free.argtypes = (ctypes.c_void_p,)\n"
        "libc.free(libc.malloc(1 << 20))\n"
        "block = libc.malloc(1 << 20)\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(any(int(line.split('-')[0], 16) <= block < int(line.split()[0].split('-')[1], 16)"
        " and '[heap]' in line for line in maps.splitlines()))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "False"  # not in the heap: mapped on its own
