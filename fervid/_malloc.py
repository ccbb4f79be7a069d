"""Hand freed heap memory back to the operating system (glibc only; elsewhere a no-op).

Long runs allocate and free many differently sized buffers (image pyramids, candidate crops,
frame batches) from several threads. glibc keeps the freed memory in its heap, so a process's
resident size creeps up with the length of the video although nothing leaks: measured on a
720p clip, 1466 MB resident fell to 1009 MB after ``malloc_trim(0)``. Fewer malloc arenas
(one per thread by default, up to 8 per core) keep the peak from creeping up between trims.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter

_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        _libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # musl and other C libraries have neither
        _libc = None


def release_free_memory() -> None:
    """Return free heap pages to the OS where the C library can (``malloc_trim``)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def limit_arenas(n: int = 2) -> None:
    """At most ``n`` malloc arenas (glibc); call at an entry point, before threads start.
    Measured over a 10-minute 720p video: peak resident memory 1534 -> 1611 MB with 2 arenas,
    1509 -> 1783 MB with glibc's default."""
    if _libc is not None:
        _libc.mallopt(M_ARENA_MAX, n)
