"""A video analysed into rows: held in memory (:func:`analyze_video`) or streamed to a CSV
file, resumable (:func:`annotate_video`), with the annotated video drawn as it goes or from
the rows; and a finished CSV summarised per track (:func:`summarize_csv`)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .classify import EmotionModel
from .identity.columns import persons_in_file, set_persons
from .identity.store import identity_path_of, is_identity_file, run_settings, write_identity
from .options import EpisodeOptions, VideoOptions, make_options
from .outputs import (
    OutputLock,
    OutputSkip,
    check_output,
    check_writable,
    is_fervid_csv,
    is_fervid_output,
    may_replace,
    partial_path,
    same_file,
    unfinished,
    write_text_atomic,
)
from .photos import as_model
from .pipeline import VideoPipeline, VideoRun, truncate_rows_after
from .render import render_from_rows
from .rows import RowSchema, read_csv, read_csv_chunks, to_frame
from .video import VideoError, VideoSink, is_fervid_video
from .video_outputs import VideoOutputs, write_derived, write_table_format
from .writers import CsvRowWriter


def analyze_video(
    path: str | os.PathLike,
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    annotated: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
    options: VideoOptions | None = None,
    **settings,
) -> pd.DataFrame:
    """Detect, track and classify the faces of a video; the rows as a DataFrame.

    Returns one row per face per analysed frame (``frame``, ``time_s``, ``face`` = track id,
    box, ``score``, one probability column per class, ``emotion``, ``confidence``); an
    analysed frame without faces has one row with empty face fields. The settings are an
    :class:`~fervid.options.VideoOptions` (``options``) or its fields as keywords:
    ``every=N`` analyses every Nth frame; the whole frame is searched for faces at least
    every ``detect_interval`` seconds, on scene cuts and whenever a tracked face is not
    found near its predicted place; ``start``/``end`` in seconds; ``smooth`` the
    probabilities' time constant. With ``annotated=PATH`` every frame in the range is also
    written, boxes drawn, as H.264 with the input's audio (the output rules of
    :mod:`fervid.outputs` hold: an input or a file fervid did not write is never replaced).
    ``DataFrame.attrs['fervid']`` holds a :class:`~fervid.pipeline.VideoRun` (with
    ``error`` set when the file was truncated and decoding stopped early).

    The rows are held in memory; for long recordings :func:`annotate_video` streams them to
    a CSV file instead.
    """
    opts = make_options(VideoOptions, options, **settings)
    path = os.fsdecode(path)
    emo = as_model(model, device)
    if annotated is not None:
        _check_annotated(annotated, path)
    pipe = VideoPipeline(path, emo, opts)
    rows: list[list] = []
    sink = _sink(annotated, pipe, path, opts) if annotated is not None else None
    with sink if sink is not None else contextlib.nullcontext():
        report = pipe.run(rows.extend, sink=sink, progress=progress)
    schema = RowSchema("video", emo.classes, landmarks=opts.landmarks)
    changed = set_persons(rows, schema, pipe.final_persons())
    if sink is not None and changed:  # the video's labels were drawn before the last word
        with _sink(annotated, pipe, path, opts) as again:
            render_from_rows(path, rows, again, emo.classes, start=opts.start, end=opts.end,
                             pose=opts.draw == "pose", landmarks=opts.landmarks)  # fmt: skip
    report.annotated = str(annotated) if annotated else None
    df = to_frame(rows, schema)
    df.attrs["fervid"] = report
    return df


def _sink(annotated, pipe: VideoPipeline, path, opts: VideoOptions) -> VideoSink:
    return VideoSink(
        annotated, pipe.info, audio_from=path, time_offset=opts.start or 0.0, end=opts.end
    )


def _check_annotated(annotated, video) -> None:
    """The annotated video is never the input nor a video fervid did not write."""
    if same_file(annotated, video):
        raise VideoError(f"{annotated}: is the input video; choose another output name")
    check_output(annotated, kind="mp4")
    may_replace(Path(annotated), is_fervid_video)


def annotate_video(
    path: str | os.PathLike,
    csv_path: str | os.PathLike,
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    annotated: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = True,
    progress: Callable[[int], None] | None = None,
    pictures: bool = False,
    options: VideoOptions | None = None,
    **settings,
) -> VideoRun:
    """Analyse a video straight to a CSV file (rows written as they come, memory flat for
    any length), and optionally draw it to ``annotated``.

    Both outputs are written under temporary names (``NAME.partial.csv`` and
    ``NAME.partial.mp4``, with ``NAME.state.json`` beside the CSV) and renamed when
    complete. With ``resume=True`` an interrupted run continues from its last complete chunk
    of frames: the same rows as an uninterrupted run; the annotated video is then drawn from
    the rows (no detection). ``overwrite=False`` leaves a finished CSV alone (raising
    :class:`fervid.outputs.OutputSkip`), checked under the lock, so that two runs started
    one after the other never both write it. ``pictures=True`` keeps the best face crops of
    each track as it goes (the run's ``pictures``, for :func:`finish_outputs`). ``options``
    and ``settings`` are :func:`analyze_video`'s.
    """
    opts = make_options(VideoOptions, options, **settings)
    path = os.fsdecode(path)
    emo = as_model(model, device)
    csv_path = check_output(csv_path, inputs=[path], kind="csv")
    if annotated is not None:
        check_output(annotated, inputs=[path], kind="mp4")
    check_writable(csv_path.parent)
    with OutputLock(csv_path):  # the lock first, then the checks: no race between runs
        if csv_path.exists() and not (overwrite or resume):
            raise OutputSkip(f"skipped, {csv_path} exists (written meanwhile); --overwrite to redo")
        check_annotate_outputs(csv_path, annotated)
        return _annotate_locked(path, csv_path, emo, opts, annotated, resume, progress, pictures)


def check_annotate_outputs(csv_path: Path, annotated: str | os.PathLike | None) -> None:
    """Refuse to replace or delete any file :func:`annotate_video` would touch (the CSV, its
    partial file and state, the annotated video and its partial file) that fervid did not
    write; partial files may also be ones a kill cut off (:func:`fervid.outputs.unfinished`),
    as :meth:`fervid.video_outputs.VideoOutputs.check_run` allows them."""

    def ours_or_cut(check, kind):
        return lambda p: check(p) or unfinished(p, kind)

    may_replace(csv_path, is_fervid_output)
    may_replace(partial_path(csv_path), ours_or_cut(is_fervid_csv, "csv"))
    may_replace(state_path_of(csv_path), ours_or_cut(_is_state, "json"))
    may_replace(identity_path_of(csv_path), ours_or_cut(is_identity_file, "json"))
    if annotated is not None:
        may_replace(Path(annotated), is_fervid_video)
        may_replace(partial_path(annotated), ours_or_cut(is_fervid_video, "mp4"))


def state_path_of(csv_path: Path) -> Path:
    """Where the state of an interrupted run of ``csv_path`` is kept."""
    return csv_path.with_name(csv_path.stem + ".state.json")


def _is_state(path: Path) -> bool:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and {"version", "video", "options", "last_frame"} <= set(d)


def _annotate_locked(path, csv_path, emo, opts, annotated, resume, progress, pictures) -> VideoRun:
    partial = partial_path(csv_path)
    state_path = state_path_of(csv_path)
    pipe = VideoPipeline(path, emo, opts, pictures=pictures)
    resumed = False
    if resume and partial.exists() and state_path.exists():
        pipe.load_state_dict(json.loads(state_path.read_text()))
        truncate_rows_after(partial, pipe.last_frame)
        resumed = True
    else:
        partial.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
    columns = RowSchema("video", emo.classes, landmarks=opts.landmarks).columns

    def checkpoint(state: dict) -> None:
        write_text_atomic(state_path, json.dumps(state))

    live = annotated is not None and not resumed
    sink = _sink(annotated, pipe, path, opts) if annotated is not None else None
    try:
        with (
            CsvRowWriter(partial, columns, append=resumed) as writer,
            sink if live else contextlib.nullcontext(),
        ):
            report = pipe.run(
                writer.write, sink=sink if live else None, progress=progress, checkpoint=checkpoint
            )
            if report.frames == 0:  # nothing to show: no outputs at all (the sink discards)
                raise VideoError(_why_no_frames(pipe.info, opts, report))
    except VideoError:
        if pipe.report.frames == 0:
            for p in (partial, state_path):
                p.unlink(missing_ok=True)
        raise
    changed = persons_in_file(partial, pipe.final_persons())
    if annotated is not None and (resumed or changed):
        with _sink(annotated, pipe, path, opts) as again:
            render_from_rows(path, partial, again, emo.classes, start=opts.start, end=opts.end,
                             pose=opts.draw == "pose")  # fmt: skip
    _keep_identity(csv_path, pipe, path, opts)
    os.replace(partial, csv_path)
    state_path.unlink(missing_ok=True)
    report.annotated = str(annotated) if annotated else None
    return report


def _keep_identity(csv_path: Path, pipe: VideoPipeline, video: str, opts: VideoOptions) -> None:
    """The tracks' identities beside the table, for ``fervid regroup`` (none without
    re-identification: an older one is removed, it would not match the rows)."""
    path = identity_path_of(csv_path)
    if not opts.reid:
        path.unlink(missing_ok=True)
        return
    summary = pipe.report.identity
    write_identity(path, summary, video=video, **run_settings(opts))


def _why_no_frames(info, opts: VideoOptions, report: VideoRun) -> str:
    if report.error:
        return f"{info.path}: no frame could be decoded ({report.error})"
    if opts.start is not None and (info.duration_s <= 0 or opts.start >= info.duration_s):
        return (
            f"{info.path}: --start {opts.start:g} s is past the end of the video "
            f"({info.duration_s:.2f} s)"
        )
    return f"{info.path}: no video frames in the range asked for"


def summarize_csv(csv_path: str | os.PathLike, chunk_rows: int = 200_000) -> dict:
    """A video CSV's rows, faces, tracks and people, each person's dominant emotion and its
    share, read in chunks (memory flat for any length). A table without a person column
    (fervid before re-identification) is summarised per track."""
    header = read_csv(csv_path, nrows=0).columns
    who = "person" if "person" in header else "face"
    counts: dict[int, dict[str, int]] = {}
    tracks: set[int] = set()
    rows = faces = 0
    for part in read_csv_chunks(csv_path, chunk_rows, usecols=list({"face", who, "emotion"})):
        rows += len(part)
        part = part.dropna(subset=["face"])
        faces += len(part)
        tracks |= set(part["face"].astype(int))
        for (pid, emo), n in part.groupby([who, "emotion"]).size().items():
            per = counts.setdefault(int(pid), {})
            per[emo] = per.get(emo, 0) + int(n)
    people = []
    for pid, per in counts.items():
        total = sum(per.values())
        emo = max(per, key=per.get)
        people.append({who: pid, "frames": total, "emotion": emo, "share": per[emo] / total})
    people.sort(key=lambda t: -t["frames"])
    return {"rows": rows, "faces": faces, "tracks": len(tracks), "people": people, "by": who}


def finish_outputs(
    video: Path,
    outputs: VideoOutputs,
    episodes: EpisodeOptions | None = None,
    *,
    kept: dict | None = None,
) -> dict:
    """After a video's table (``outputs.table``) is complete: the outputs made from it that
    were asked for (:func:`fervid.video_outputs.write_derived`), then the table in its
    format; ``kept``: the face crops the run kept (:attr:`fervid.pipeline.VideoRun.pictures`).
    Returns the table's summary (:func:`summarize_csv`)."""
    summary = summarize_csv(outputs.table)
    annotated = outputs.path("mp4") if "mp4" in outputs.kinds else None
    write_derived(
        outputs.table,
        outputs,
        outputs.kinds,
        video=video,
        annotated=annotated,
        episodes=episodes,
        kept=kept,
    )
    write_table_format(outputs)
    if outputs.fmt != "csv":  # only a CSV table can be regrouped: its working table is gone
        identity_path_of(outputs.table).unlink(missing_ok=True)
    return summary
