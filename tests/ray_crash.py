"""A crash on demand inside Ray's workers, for the tests: Ray runs :func:`install` in every
worker process it starts (``worker_process_setup_hook``); it wraps the photo and video tasks so
that the first one to find the file ``armed`` in ``$FERVID_TEST_CRASH_DIR`` renames it to
``crashed`` and ends its process abruptly, as a crashed node would. Production code knows
nothing of it."""

from __future__ import annotations

import functools
import os
from pathlib import Path

CRASH_DIR_ENV = "FERVID_TEST_CRASH_DIR"


def crash_if_armed() -> None:
    folder = os.environ.get(CRASH_DIR_ENV)
    if not folder:
        return
    try:
        os.rename(Path(folder) / "armed", Path(folder) / "crashed")  # one worker wins
    except FileNotFoundError:
        return
    os._exit(1)


def _crashing(f):
    @functools.wraps(f)
    def run(*args, **kwargs):
        crash_if_armed()
        return f(*args, **kwargs)

    return run


def install() -> None:
    from fervid import ray_jobs

    ray_jobs._annotate_task = _crashing(ray_jobs._annotate_task)
    ray_jobs._ScanWorker.scan = _crashing(ray_jobs._ScanWorker.scan)


def arm(folder: Path) -> None:
    """The next task to start crashes its worker."""
    (folder / "crashed").unlink(missing_ok=True)
    (folder / "armed").write_text("")
