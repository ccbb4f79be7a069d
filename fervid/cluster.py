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

from .options import ImageOptions, VideoOptions
from .rows import RowSchema

log = logging.getLogger(__name__)

INSTALL_HINT = 'Ray is not installed: pip install "fervid[ray]"'

#: A testing hook: when set to a file path, the first worker task that finds the file absent
#: creates it and ends its process abruptly (as a crashed node would), to show the retry.
CRASH_ONCE_ENV = "FERVID_RAY_CRASH_ONCE"

#: Seconds around a cut within which a part's track continues one of the part before.
CONTINUE_WINDOW = 2.0


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

    def __init__(self, model_path: str | None, device: str, options: ImageOptions) -> None:
        from .classify import load_model

        self.model = load_model(model_path, device=device)
        self.options = options

    def scan(self, shard: list[str], base: str | None) -> list[list[list]]:
        from .photos import iter_images, rows_per_file

        _maybe_crash()
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
    from ray.util import ActorPool

    worker = ray.remote(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_restarts=resources.retries,
        max_task_retries=resources.retries,
        runtime_env=_runtime_env(),
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


def _annotate_task(video, csv, annotated, resume, model_path, device, options):
    from .annotation import annotate_video
    from .errors import first_line
    from .outputs import partial_path

    if resume and Path(csv).exists() and not partial_path(csv).exists():
        return _finished_report(video, csv)  # done by an earlier run
    # a retried attempt (after a crash) continues what the crashed one wrote
    attempt = Path(str(csv) + ".ray-attempt")
    resume = resume or attempt.exists()
    attempt.write_text(str(os.getpid()))
    _maybe_crash()
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
        return {"video": str(video), "error": first_line(exc, 400)}
    attempt.unlink(missing_ok=True)
    r = report
    return {
        "video": str(video),
        "error": r.error,
        "frames": r.frames,
        "analysed": r.analysed,
        "seconds": r.seconds,
        "bad_packets": r.bad_packets,
        "people": r.people,
        "identity": r.identity,
    }


def _finished_report(video, csv) -> dict:
    import pandas as pd

    frames = pd.read_csv(csv, usecols=["frame"])["frame"]
    n = int(frames.nunique())
    return {
        "video": str(video),
        "error": None,
        "frames": n,
        "analysed": n,
        "seconds": 0.0,
        "bad_packets": 0,
    }


def _render_task(video, table, annotated, start, end):
    """Draw a finished (stitched) table onto the video: decoding, drawing, encoding."""
    from .pipeline import render_from_rows
    from .rows import classes_of
    from .video import VideoInfo, VideoSink

    info = VideoInfo.from_path(video)
    with VideoSink(annotated, info, audio_from=video, time_offset=start or 0.0, end=end) as sink:
        return render_from_rows(video, table, sink, classes_of(table), start=start, end=end)


def split_ranges(video: str | Path, options: VideoOptions, seconds: float | None) -> list[tuple]:
    """The time ranges a long video is cut into (one range when it is not cut)."""
    start, end = options.start, options.end
    if not seconds:
        return [(start, end)]
    from .video import VideoInfo

    duration = VideoInfo.from_path(video).duration_s
    lo, hi = start or 0.0, min(end, duration) if end is not None else duration
    if hi - lo < 1.5 * seconds:
        return [(start, end)]
    cuts = [lo + k * seconds for k in range(int((hi - lo) // seconds) + 1)]
    if hi - cuts[-1] < 0.5 * seconds:  # a short tail joins the part before it
        cuts = cuts[:-1]
    bounds = cuts + [end]
    return [(bounds[k] if k else start, bounds[k + 1]) for k in range(len(cuts))]


def part_path(table: Path, k: int) -> Path:
    return table.with_name(f"{table.name}.part{k}.csv")


def annotate_jobs(
    jobs: Sequence[tuple[Path, Path, Path | None]],
    *,
    model_path: str | None,
    device: str,
    options: VideoOptions,
    resources: Resources,
    resume: bool = False,
    split_seconds: float | None = None,
    on_done: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run (video, csv, annotated video or None) jobs as Ray tasks, one per video, or, with
    ``split_seconds``, one per part of a long video (parts stitched, track ids continued
    across the cuts, the video then drawn from the rows by one more task); a task retried
    after a crash resumes where the crashed attempt stopped. One report dict per job."""
    ray = _ray()
    opts = dict(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_retries=resources.retries,
        runtime_env=_runtime_env(),
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
    results: list[dict] = []
    for (video, table, annotated), refs in zip(jobs, parts):
        results.append(_finish_job(ray, render, video, table, annotated, refs, options))
        if on_done is not None:
            on_done(results[-1])
    return results


def _finish_job(ray, render, video, table, annotated, refs, options) -> dict:
    from .errors import first_line

    try:
        reports = ray.get(refs)
    except ray.exceptions.RayError as exc:  # retries exhausted
        return {"video": str(video), "error": f"worker failed: {first_line(exc)}"}
    if len(reports) == 1:
        return reports[0]
    bad = [r for r in reports if r.get("error") and not r.get("frames")]
    if bad:
        return {"video": str(video), "error": bad[0]["error"]}
    mappings, seen = stitch(
        [part_path(table, k) for k in range(len(reports))], table, drop_parts=True
    )
    _persons_across_parts(video, table, reports, mappings, seen, options)
    if annotated is not None:
        try:
            ray.get(
                render.remote(str(video), str(table), str(annotated), options.start, options.end)
            )
        except ray.exceptions.RayError as exc:
            return {"video": str(video), "error": f"drawing failed: {first_line(exc)}"}
    return {
        "video": str(video),
        "error": next((r["error"] for r in reports if r.get("error")), None),
        "frames": sum(r["frames"] for r in reports),
        "analysed": sum(r["analysed"] for r in reports),
        "seconds": max(r["seconds"] for r in reports),
        "bad_packets": sum(r.get("bad_packets", 0) for r in reports),
        "parts": len(reports),
    }


def _persons_across_parts(video, table: Path, reports, mappings, seen, options) -> None:
    """Persons for the whole stitched video: the parts' track identities joined (tracks
    continued across a cut are one track) and grouped once more, and kept beside the table
    (a part finished by an earlier run gives its identity from its file; a part without
    one keeps each of its tracks apart)."""
    from .annotation import persons_in_file
    from .identity import cluster_tracks, join_summaries
    from .regroup import identity_path_of, read_identity, write_identity

    summaries = []
    for k, r in enumerate(reports):
        path = identity_path_of(part_path(table, k))
        summary = r.get("identity")
        if summary is None and path.exists():
            try:
                summary = read_identity(path)
            except ValueError:
                summary = None
        summaries.append(summary)
        path.unlink(missing_ok=True)
    merged = join_summaries(summaries, mappings, seen)
    persons_in_file(table, cluster_tracks(merged, people=options.people))
    if options.reid:
        write_identity(
            identity_path_of(table),
            merged,
            video=video,
            start=options.start,
            end=options.end,
            people=options.people,
        )


def stitch(
    parts: Sequence[Path], out: Path, *, drop_parts: bool = False
) -> tuple[list[dict], dict[int, tuple[float, float]]]:
    """One table from the tables of consecutive parts of a video: rows in order, track ids
    continued across each cut (a face in the first analysed frame of a part takes the id of
    the track it overlaps most, at IoU >= 0.3, among the tracks seen in the last 2 s of the
    part before; the others get new ids). Returns, per part, its track ids (as written in
    it) -> the stitched ids; and each stitched track's first and last time seen."""
    import csv

    from .outputs import atomic_path

    # recent: global id -> (time, box) last seen; mappings: per part, its ids -> global ids;
    # seen: global id -> (first, last) time seen
    state = {"next_id": 0, "recent": {}, "mappings": [], "seen": {}}
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        for k, part in enumerate(parts):
            with open(part, newline="", encoding="utf-8") as pf:
                reader = csv.reader(pf)
                header = next(reader)
                if k == 0:
                    w.writerow(header)
                w.writerows(_continued(reader, RowSchema.from_header(header), state))
    if drop_parts:
        for part in parts:
            Path(part).unlink(missing_ok=True)
    return state["mappings"], state["seen"]


def _continued(reader, schema: RowSchema, state: dict):
    """A part's rows with their track ids continued from the parts before (``state``)."""
    import itertools

    face, time_s = schema.index("face"), schema.index("time_s")
    recent, head = state["recent"], []
    # the part's first seconds decide which ids continue; the rest is streamed
    for r in reader:
        head.append(r)
        if float(r[time_s]) - float(head[0][time_s]) > CONTINUE_WINDOW:
            break
    mapping = _continue_ids(head, recent, schema)
    state["mappings"].append(mapping)
    for r in itertools.chain(head, reader):
        if r[face] != "":
            if r[face] not in mapping:
                mapping[r[face]] = state["next_id"]
                state["next_id"] += 1
            r[face] = str(mapping[r[face]])
            gid, t = int(r[face]), float(r[time_s])
            recent[gid] = (t, schema.box(r))
            state["seen"][gid] = (state["seen"].get(gid, (t, t))[0], t)
        yield r
    state["next_id"] = max([state["next_id"], *(i + 1 for i in recent)])


def _continue_ids(
    rows: list[list[str]], recent: dict, schema: RowSchema, window: float = CONTINUE_WINDOW
) -> dict[str, int]:
    """A part's track ids -> the ids of the tracks from the part before that they continue:
    each of the part's tracks first seen in its first ``window`` seconds takes, at its first
    box, the best-overlapping (IoU >= 0.3) track seen in the ``window`` seconds before that,
    not yet taken."""
    import numpy as np

    from .track import iou_matrix

    if not rows or not recent:
        return {}
    face, time_s = schema.index("face"), schema.index("time_s")
    t_start = float(rows[0][time_s])
    firsts: dict[str, tuple[float, list[float]]] = {}
    for r in rows:
        if r[face] != "" and r[face] not in firsts:
            firsts[r[face]] = (float(r[time_s]), schema.box(r))
    mapping: dict[str, int] = {}
    for local, (t, box) in sorted(firsts.items(), key=lambda kv: kv[1][0]):
        if t - t_start > window:
            break
        live = [
            (i, b)
            for i, (tl, b) in recent.items()
            if t - tl <= window and i not in mapping.values()
        ]
        if not live:
            continue
        m = iou_matrix(np.array([b for _, b in live], np.float32), np.array([box], np.float32))
        if m.max() >= 0.3:
            mapping[local] = live[int(m[:, 0].argmax())][0]
    return mapping
