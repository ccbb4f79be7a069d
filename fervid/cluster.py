"""fervid's two jobs on a Ray cluster (``pip install "fervid[ray]"``).

- Photos: the files are cut into shards that a pool of actors reads, each actor holding the
  model once; the driver writes the rows in the order a single machine writes them (a shard
  is written when all before it are), so the CSV is the same.
- Videos: one task per video (a video's frames stay in order for tracking and smoothing),
  each writing its outputs with :func:`fervid.api.annotate_video`, resumable: a task retried
  after a worker crash continues where the crashed attempt stopped.

Inputs and outputs must be on storage every node sees at the same path (a shared or network
file system); the model too, when it is not the bundled one. Worker crashes are retried
(``retries`` times); an input that fails for its own reasons is reported and the others go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INSTALL_HINT = 'Ray is not installed: pip install "fervid[ray]"'

#: A testing hook: when set to a file path, the first worker task that finds the file absent
#: creates it and ends its process abruptly (as a crashed node would), to show the retry.
CRASH_ONCE_ENV = "FERVID_RAY_CRASH_ONCE"


class ClusterError(RuntimeError):
    """Ray is missing or the cluster cannot be reached; the message is one line."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return ray


def connect(address: str, *, num_cpus: int | None = None) -> None:
    """Join a Ray cluster: ``local`` starts one on this machine, ``auto`` joins the running
    cluster this machine belongs to, ``ray://host:port`` a remote one (Ray Client)."""
    ray = _ray()
    if ray.is_initialized():
        return
    kwargs = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,  # Ray's start-up notices are not the user's business
    )
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        from .errors import first_line

        msg = f"cannot reach the Ray cluster at {address}: {first_line(exc)}"
        raise ClusterError(msg) from None


def shutdown() -> None:
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()


@dataclass(frozen=True)
class Resources:
    """What each worker asks of the cluster, and how often a crashed one is retried."""

    workers: int = 0  # 0: as many as the cluster has CPUs for
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    retries: int = 2

    def pool_size(self) -> int:
        if self.workers > 0:
            return self.workers
        total = _ray().cluster_resources().get("CPU", 1)
        return max(1, int(total // max(self.num_cpus, 1e-9)))


def _runtime_env() -> dict:
    return {"env_vars": {k: os.environ[k] for k in (CRASH_ONCE_ENV,) if k in os.environ}}


def _maybe_crash() -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)


# -- photos ------------------------------------------------------------------------------


class _ScanWorker:
    """Holds the model once; reads shards of photos into rows."""

    def __init__(self, model_path: str | None, device: str, options: dict) -> None:
        from .classify import load_model

        self.model = load_model(model_path, device=device)
        self.options = options

    def scan(self, shard: list[str], base: str | None) -> list[list[list]]:
        from .api import iter_images

        _maybe_crash()
        out = []
        for res in iter_images(
            [Path(p) for p in shard], model=self.model, relative_to=base, **self.options
        ):
            out.append(res.rows())
        return out


def scan_rows(
    paths: Sequence[Path],
    base: Path | None,
    *,
    model_path: str | None,
    device: str,
    options: dict,
    resources: Resources,
    shard_size: int = 32,
) -> Iterator[list[list[list]]]:
    """Per shard of ``paths``, in order: each image's rows (a list of rows per image), read
    by a pool of actors on the cluster."""
    ray = _ray()
    from ray.util import ActorPool

    worker = ray.remote(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_restarts=resources.retries,
        max_task_retries=resources.retries,
        runtime_env=_runtime_env(),
    )(_ScanWorker)
    shards = [
        [str(p) for p in paths[k : k + shard_size]] for k in range(0, len(paths), shard_size)
    ]
    size = min(resources.pool_size(), max(1, len(shards)))
    actors = [worker.remote(model_path, device, options) for _ in range(size)]
    pool = ActorPool(actors)
    base_s = str(base) if base is not None else None
    try:
        yield from pool.map(lambda a, shard: a.scan.remote(shard, base_s), shards)
    finally:
        for a in actors:
            ray.kill(a)


# -- videos ------------------------------------------------------------------------------


def _annotate_task(video, csv, annotated, resume, model_path, device, options):
    from .api import annotate_video
    from .errors import first_line

    # a retried attempt (after a crash) continues what the crashed one wrote
    attempt = Path(str(csv) + ".ray-attempt")
    resume = resume or attempt.exists()
    attempt.write_text(str(os.getpid()))
    _maybe_crash()
    try:
        report = annotate_video(
            video, csv, model=model_path, device=device, annotated=annotated, resume=resume,
            **options,
        )  # fmt: skip
    except (ValueError, OSError) as exc:  # the input's own fault: reported, not retried
        attempt.unlink(missing_ok=True)
        return {"video": str(video), "error": first_line(exc, 400)}
    attempt.unlink(missing_ok=True)
    r = report
    return {"video": str(video), "error": r.error, "frames": r.frames, "analysed": r.analysed,
            "seconds": r.seconds, "bad_packets": r.bad_packets}  # fmt: skip


def annotate_jobs(
    jobs: Sequence[tuple[Path, Path, Path | None]],
    *,
    model_path: str | None,
    device: str,
    options: dict,
    resources: Resources,
    resume: bool = False,
    on_done: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run (video, csv, annotated video or None) jobs as Ray tasks, one per video; a task
    retried after a crash resumes where the crashed attempt stopped. Returns one report dict
    per job, in order."""
    ray = _ray()
    task = ray.remote(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_retries=resources.retries,
        runtime_env=_runtime_env(),
    )(_annotate_task)
    refs = [
        task.remote(str(v), str(c), str(a) if a else None, resume, model_path, device, options)
        for v, c, a in jobs
    ]
    index = {ref: k for k, ref in enumerate(refs)}
    results: list[dict | None] = [None] * len(refs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        k = index[done[0]]
        try:
            results[k] = ray.get(done[0])
        except ray.exceptions.RayError as exc:  # retries exhausted
            from .errors import first_line

            results[k] = {"video": str(jobs[k][0]), "error": f"worker failed: {first_line(exc)}"}
        if on_done is not None:
            on_done(results[k])
    return [r for r in results if r is not None]
