"""fervid's two jobs on a Ray cluster (``pip install "fervid[ray]"``).

- Photos: the files are cut into shards that a pool of actors reads, each actor holding the
  model once; the driver writes the rows in the order a single machine writes them (a shard
  is written when all before it are), so the CSV is the same.
- Videos: one task per video (a video's frames stay in order for tracking and smoothing),
  each writing its outputs with :func:`fervid.annotation.annotate_video`, resumable: a task retried
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

from .annotation import annotate_video
from .classify import load_model
from .errors import first_line
from .options import ImageOptions, VideoOptions
from .outputs import partial_path
from .photos import iter_images, rows_per_file
from .pipeline import VideoRun
from .render import render_from_rows
from .rows import classes_of, read_csv
from .stitch import part_path, persons_across_parts, split_ranges, stitch
from .video import VideoInfo, VideoSink

log = logging.getLogger(__name__)

INSTALL_HINT = 'Ray is not installed: pip install "fervid[ray]"'


class ClusterError(RuntimeError):
    """Ray is missing or the cluster cannot be reached; the message is one line."""


def _ray():
    try:
        import ray  # optional (fervid[ray]), and seconds to import: only when a job runs on it
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


# -- photos ------------------------------------------------------------------------------


class _ScanWorker:
    """Holds the model once; reads shards of photos into rows."""

    def __init__(self, model_path: str | None, device: str, options: ImageOptions) -> None:
        self.model = load_model(model_path, device=device)
        self.options = options

    def scan(self, shard: list[str], base: str | None) -> list[list[list]]:
        results = iter_images(
            [Path(p) for p in shard], model=self.model, relative_to=base, options=self.options
        )
        return list(rows_per_file(results))


def scan_rows(
    paths: Sequence[Path],
    base: Path | None,
    *,
    model_path: str | None,
    device: str,
    options: ImageOptions,
    resources: Resources,
    shard_size: int = 32,
) -> Iterator[list[list[list]]]:
    """Per shard of ``paths``, in order: each image's rows (a list of rows per image), read
    by a pool of actors on the cluster."""
    ray = _ray()
    from ray.util import ActorPool  # Ray is an extra (fervid[ray])

    worker = ray.remote(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_restarts=resources.retries,
        max_task_retries=resources.retries,
    )(_ScanWorker)
    shards = [[str(p) for p in paths[k : k + shard_size]] for k in range(0, len(paths), shard_size)]
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


def _annotate_task(video, csv, annotated, resume, model_path, device, options) -> VideoRun:
    # a finished table (an earlier run) is not analysed again
    if resume and Path(csv).exists() and not partial_path(csv).exists():
        return _finished_report(video, csv)
    # a retried attempt (after a crash) continues what the crashed one wrote
    attempt = Path(str(csv) + ".ray-attempt")
    resume = resume or attempt.exists()
    attempt.write_text(str(os.getpid()))
    try:
        report = annotate_video(
            video,
            csv,
            model=model_path,
            device=device,
            annotated=annotated,
            resume=resume,
            options=options,
        )
    except (ValueError, OSError) as exc:  # the input's own fault: reported, not retried
        attempt.unlink(missing_ok=True)
        return VideoRun(str(video), error=first_line(exc, 400))
    attempt.unlink(missing_ok=True)
    return report


def _finished_report(video, csv) -> VideoRun:

    n = int(read_csv(csv, usecols=["frame"])["frame"].nunique())
    return VideoRun(str(video), frames=n, analysed=n)


def _render_task(video, table, annotated, start, end):
    """Draw a finished (stitched) table onto the video: decoding, drawing, encoding."""
    info = VideoInfo.from_path(video)
    with VideoSink(annotated, info, audio_from=video, time_offset=start or 0.0, end=end) as sink:
        return render_from_rows(video, table, sink, classes_of(table), start=start, end=end)


def annotate_jobs(
    jobs: Sequence[tuple[Path, Path, Path | None]],
    *,
    model_path: str | None,
    device: str,
    options: VideoOptions,
    resources: Resources,
    resume: bool = False,
    split_seconds: float | None = None,
    on_done: Callable[[VideoRun], None] | None = None,
) -> list[VideoRun]:
    """Run (video, csv, annotated video or None) jobs as Ray tasks, one per video, or, with
    ``split_seconds``, one per part of a long video (parts stitched, track ids continued
    across the cuts, the video then drawn from the rows by one more task); a task retried
    after a crash resumes where the crashed attempt stopped. One report per job."""
    ray = _ray()
    opts = dict(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_retries=resources.retries,
    )
    task = ray.remote(**opts)(_annotate_task)
    render = ray.remote(**opts)(_render_task)
    parts: list[list] = []
    for video, table, annotated in jobs:
        ranges = split_ranges(video, options, split_seconds)
        if len(ranges) == 1:
            refs = [
                task.remote(
                    str(video),
                    str(table),
                    str(annotated) if annotated else None,
                    resume,
                    model_path,
                    device,
                    options,
                )
            ]
        else:
            refs = [
                task.remote(
                    str(video),
                    str(part_path(table, k)),
                    None,
                    resume,
                    model_path,
                    device,
                    options.replace(start=s, end=e),
                )
                for k, (s, e) in enumerate(ranges)
            ]
        parts.append(refs)
    results: list[VideoRun] = []
    for (video, table, annotated), refs in zip(jobs, parts):
        results.append(_finish_job(ray, render, video, table, annotated, refs, options))
        if on_done is not None:
            on_done(results[-1])
    return results


def _finish_job(ray, render, video, table, annotated, refs, options) -> VideoRun:
    try:
        reports = ray.get(refs)
    except ray.exceptions.RayError as exc:  # retries exhausted
        return VideoRun(str(video), error=f"worker failed: {first_line(exc)}")
    if len(reports) == 1:
        return reports[0]
    bad = [r for r in reports if r.failed]
    if bad:
        return VideoRun(str(video), error=bad[0].error)
    mappings, seen = stitch(
        [part_path(table, k) for k in range(len(reports))], table, drop_parts=True
    )
    identities = [r.identity for r in reports]
    persons_across_parts(video, table, identities, mappings, seen, options)
    if annotated is not None:
        try:
            ray.get(
                render.remote(str(video), str(table), str(annotated), options.start, options.end)
            )
        except ray.exceptions.RayError as exc:
            return VideoRun(str(video), error=f"drawing failed: {first_line(exc)}")
    return VideoRun.combine(str(video), reports)
