"""Many videos in one call (:func:`annotate_many`), on this machine or on a Ray cluster: each
video's outputs planned and checked before any work, each video analysed, its outputs written,
and one :class:`VideoOutcome` per video given back as it is done. The ``fervid annotate``
command is this function, its options parsed and its outcomes printed."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .annotation import annotate_video, finish_outputs
from .api import annotate_videos
from .classify import EmotionModel
from .errors import first_line, printable
from .images import VIDEO_EXTS, walk_entries
from .options import EpisodeOptions, VideoOptions
from .outputs import OutputError, OutputSkip
from .pipeline import VideoRun
from .video import VideoError, VideoInfo
from .video_outputs import VideoOutputs, plan_outputs

#: ``progress(video, total)``: a context manager giving ``update(n)``, for the frames of
#: ``video`` (``total`` frames or None when not known); on Ray ``video`` is None and the
#: count is of videos.
Progress = Callable[
    [Path | None, "int | None"], contextlib.AbstractContextManager[Callable[[int], None]]
]


def _no_progress(video, total) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    return contextlib.nullcontext(lambda n: None)


@dataclass(frozen=True)
class VideoOutcome:
    """What became of one video: its outputs, and either how its run went and the table's
    summary (:func:`fervid.annotation.summarize_csv`), or why it was skipped (not a
    failure) or failed (one line)."""

    video: Path
    outputs: VideoOutputs
    run: VideoRun | None = None
    summary: dict | None = None
    skipped: str | None = None
    error: str | None = None
    on_ray: bool = False
    #: seconds of the whole video's job: the analysis and every output written after it
    whole_s: float = 0.0

    @property
    def failed(self) -> bool:
        """Nothing was made (``error``), or the file ended early (``run.error``)."""
        return self.error is not None or bool(self.run and self.run.error)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while a video was analysed: its rows so far are kept for ``resume``."""

    def __init__(self, video: Path) -> None:
        super().__init__(str(video))
        self.video = video


def find_videos(
    inputs: Sequence[str | os.PathLike],
) -> tuple[list[tuple[Path, Path | None]], list[tuple[Path, str]]]:
    """(video, the folder it was found in) for every input, folders walked recursively
    (fervid's own outputs left out); and the folders that could not be read, with why."""
    found: list[tuple[Path, Path | None]] = []
    unread: list[tuple[Path, str]] = []
    for s in inputs:
        p = Path(s)
        if not p.is_dir():
            found.append((p, None))
            continue
        for v, reason in walk_entries(p, VIDEO_EXTS):
            if reason:
                unread.append((v, reason))
            elif ".fervid" not in v.name:
                found.append((v, p))
    return found, unread


def video_kinds(
    *,
    fmt: str = "csv",
    video: bool = True,
    plot: bool = False,
    elan: bool = False,
    page: bool = False,
    reid: bool = True,
) -> frozenset[str]:
    """The outputs of ``fervid annotate``: the table in ``fmt``, people, episodes and their
    faces always; the annotated video, the plot, ELAN's two files and the page when asked;
    the identity file with re-identification (only a CSV table can be regrouped)."""
    kinds = {fmt, "people", "episodes", "faces"} | ({"mp4"} if video else set())
    kinds |= ({"png"} if plot else set()) | ({"eaf", "tsv"} if elan else set())
    kinds |= {"html"} if page else set()
    return frozenset(kinds | ({"identity"} if reid and fmt == "csv" else set()))


def annotate_many(
    videos: Sequence[tuple[Path, Path | None]],
    *,
    kinds: frozenset[str],
    fmt: str = "csv",
    out_dir: str | os.PathLike | None = None,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    options: VideoOptions | None = None,
    episodes: EpisodeOptions | None = None,
    resume: bool = False,
    overwrite: bool = False,
    ray_address: str | None = None,
    ray_resources=None,
    split_minutes: float | None = None,
    progress: Progress = _no_progress,
) -> Iterator[VideoOutcome]:
    """Annotate ``videos`` ((video, the folder it was found in or None), as
    :func:`find_videos` gives them) into the outputs ``kinds`` (:func:`video_kinds`), beside
    each video or under ``out_dir``. Every video's outputs are checked first (skipped and
    refused videos come first, as outcomes); then each video is analysed here, or all as
    Ray tasks with ``ray_address`` (``model`` then a path or None), and its outcome given
    when its outputs are written. Ctrl-C raises :class:`Interrupted`."""
    options = options or VideoOptions()
    plan = plan_outputs(videos, out_dir, kinds=kinds, fmt=fmt)
    ready = []
    for video, _ in videos:
        outputs = plan[video]
        try:
            outputs.check_run(video, overwrite=overwrite, resume=resume)
        except OutputSkip as skip:
            yield VideoOutcome(video, outputs, skipped=printable(str(skip)))
            continue
        except OutputError as exc:
            yield VideoOutcome(video, outputs, error=first_line(exc, 400))
            continue
        ready.append(video)
    if ray_address and ready:
        jobs = [(v, plan[v]) for v in ready]
        yield from _on_ray(jobs, model, device, options, episodes, (resume, overwrite),
                           ray_address, ray_resources, split_minutes, progress)  # fmt: skip
        return
    for video in ready:
        yield _annotate_one(video, plan[video], model, options, episodes, resume, overwrite,
                            progress)  # fmt: skip


def _annotate_one(video, outputs, model, options, episodes, resume, overwrite, progress):
    """One video on this machine."""
    t0 = time.perf_counter()
    try:
        info = VideoInfo.from_path(video)
        end = info.duration_s if options.end is None else min(options.end, info.duration_s)
        span = end - (options.start or 0)
        with progress(video, int(span * info.fps) if span > 0 else None) as update:
            report = annotate_video(
                video,
                outputs.table,
                model=model,
                options=options,
                resume=resume,
                overwrite=overwrite,
                annotated=outputs.path("mp4") if "mp4" in outputs.kinds else None,
                progress=update,
                pictures="faces" in outputs.kinds,
            )
        summary = finish_outputs(video, outputs, episodes, kept=report.pictures)
        if overwrite:
            outputs.remove_others()
    except KeyboardInterrupt:
        raise Interrupted(video) from None
    except OutputSkip as skip:
        return VideoOutcome(video, outputs, skipped=printable(str(skip)))
    except (VideoError, ValueError, OSError) as exc:
        msg = _without_name(first_line(exc, 400), video)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            msg += "; the rows so far are kept: free space, then run again with --resume"
        return VideoOutcome(video, outputs, error=msg)
    whole = time.perf_counter() - t0
    return VideoOutcome(video, outputs, run=report, summary=summary, whole_s=whole)


def _without_name(msg: str, video: Path) -> str:
    prefix = printable(f"{video}: ")
    msg = printable(msg)
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def _on_ray(jobs, model, device, options, episodes, flags, address, resources, split, progress):
    """The videos as Ray tasks (:func:`fervid.api.annotate_videos`), then each one's outputs
    made from its table here (``flags``: resume, overwrite)."""
    resume, overwrite = flags
    tasks = [(v, o.table, o.path("mp4") if "mp4" in o.kinds else None) for v, o in jobs]
    with progress(None, len(tasks)) as update:
        reports = annotate_videos(
            tasks,
            model=model,
            device=device,
            options=options,
            ray_address=address,
            ray_resources=resources,
            resume=resume,
            split_minutes=split,
            on_done=lambda r: update(1),
        )
    for (video, outputs), report in zip(jobs, reports):
        if report.failed:
            yield VideoOutcome(video, outputs, error=printable(report.error), on_ray=True)
            continue
        t0 = time.perf_counter()
        summary = finish_outputs(video, outputs, episodes)
        if overwrite:
            outputs.remove_others()
        whole = report.seconds + time.perf_counter() - t0
        yield VideoOutcome(video, outputs, run=report, summary=summary, on_ray=True, whole_s=whole)
