"""Hand freed heap memory back to the operating system (glibc only; elsewhere a no-op).

Long runs allocate and free many differently sized buffers (image pyramids, candidate crops,
frame batches) from several threads. glibc keeps the freed memory in its heap, so a process's
resident size creeps up with the length of the video although nothing leaks. Both calls here
change the process, so only entry points use them (the ``fervid`` command): fewer malloc
arenas, set once, and :class:`Releaser`, a progress hook that trims the heap every so often.
Measurements: ``bench/RESULTS.md``.
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
    """At most ``n`` malloc arenas (glibc); call at an entry point, before threads start."""
    if _libc is not None:
        _libc.mallopt(M_ARENA_MAX, n)


class Releaser:
    """A progress hook (``hook(n)``, n items done) that returns freed heap to the OS each
    time ``every`` more items (frames, images) are done, then calls ``then(n)``."""

    def __init__(self, then=None, every: int = 32) -> None:
        self.then, self.every, self.done = then, every, 0

    def __call__(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if before // self.every != self.done // self.every:
            release_free_memory()
        if self.then is not None:
            self.then(n)
