"""fervid's Python API: one function per use case, plain data back.

>>> import fervid
>>> df = fervid.analyze_video("clip.mp4", annotated="clip.fervid.mp4")
>>> faces = fervid.analyze_images("photos/")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .classify import EmotionModel, load_model
from .detect import FaceDetector
from .faces import Faces
from .images import IMAGE_EXTS, ImageError, load_image, walk_entries
from .outputs import OutputLock, check_output, check_writable, partial_path, write_text_atomic
from .pipeline import (
    VideoOptions,
    VideoPipeline,
    VideoReport,
    chunked,
    render_from_rows,
    truncate_rows_after,
)
from .video import VideoError, VideoSink
from .writers import CsvRowWriter, clean_text, face_rows, image_columns, video_columns

#: MTCNN's pyramid step for photos: 20% faster than facenet-pytorch's 0.709, the same faces
#: found (bench/run.py --only small_images)
PHOTO_PYRAMID_FACTOR = 0.6


log = logging.getLogger(__name__)

__all__ = [
    "analyze_images",
    "analyze_video",
    "annotate_video",
    "iter_images",
    "load_model",
    "ImageResult",
    "VideoReport",
]


def _model(model: EmotionModel | str | os.PathLike | None, device: str) -> EmotionModel:
    if isinstance(model, EmotionModel):
        return model
    return load_model(model, device=device)


# -- images ----------------------------------------------------------------------------


@dataclass
class ImageResult:
    """The faces of one image file, or why it could not be read."""

    path: Path
    relpath: str
    faces: Faces
    error: str = ""

    def rows(self) -> list[list]:
        classes = self.faces.classes
        return [
            [self.relpath, *r, self.error]
            for r in face_rows(self.faces, classes, use_track_ids=False)
        ]


def resolve_inputs(inputs) -> tuple[list[Path], Path | None]:
    """Image paths and the folder they are relative to: a folder is walked recursively (every
    name with an image extension, and folders that cannot be listed, so that each gets a
    row), a file is itself, a list is taken as it is (no common folder)."""
    if isinstance(inputs, (str, os.PathLike)):
        root = Path(inputs)
        if root.is_dir():
            return [p for p, _ in walk_entries(root, IMAGE_EXTS)], root
        return [root], root.parent
    paths = [Path(p) for p in inputs]
    return paths, None


def relpath(p: Path, root: Path | None) -> str:
    """``p`` relative to ``root`` in POSIX form, or as given when outside it (bytes that
    are not UTF-8 written as backslash escapes, so that every name fits a CSV row)."""
    if root is not None:
        try:
            return clean_text(p.relative_to(root).as_posix())
        except ValueError:
            pass
    return clean_text(str(p))


def iter_images(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    crops: bool = False,
    min_face_size: int = 20,
    detect_size: int = 1024,
    skip: Callable[[str], bool] | None = None,
    prefetch: int = 8,
    relative_to: str | os.PathLike | None = None,
) -> Iterator[ImageResult]:
    """Yield an :class:`ImageResult` per image, in order, as each is done.

    ``inputs``: a folder (walked recursively), one file, or a list of files. ``crops=True``
    takes every image as an already-cropped face (no detection). ``skip(relpath)`` leaves out
    images already processed (resuming). ``relative_to`` names the folder that ``relpath``
    is relative to when ``inputs`` is a list.
    """
    emo = _model(model, device)
    paths, root = resolve_inputs(inputs)
    if relative_to is not None:
        root = Path(relative_to)
    todo = [(p, relpath(p, root)) for p in paths]
    if skip is not None:
        todo = [(p, r) for p, r in todo if not skip(r)]
    detector = (
        None
        if crops
        else FaceDetector(
            device=emo.device,
            min_face_size=min_face_size,
            detect_size=detect_size,
            pyramid_factor=PHOTO_PYRAMID_FACTOR,
        )
    )

    chunk = 64 if crops else 4  # crops: one forward pass per 64; photos: MTCNN batches
    done = 0
    for batch in chunked(_decode_ahead(todo, prefetch=max(prefetch, chunk)), chunk):
        ok = [item for item in batch if item[2] is not None]
        images = [item[2] for item in ok]
        if crops:
            probs = emo.predict(np.stack([emo.prepare(img) for img in images])) if ok else []
            found = [
                Faces(
                    [[0, 0, img.shape[1], img.shape[0]]],
                    [1.0],
                    probs[k : k + 1],
                    classes=emo.classes,
                )
                for k, img in enumerate(images)
            ]
        else:
            found = emo.classify(images, detector.detect(images)) if ok else []
        faces = iter(found)
        done += len(batch)
        for p, r, image, err in batch:
            if image is None:
                yield ImageResult(p, r, Faces.empty(emo.classes), err)
            else:
                yield ImageResult(p, r, next(faces))


def _decode(p: Path) -> tuple[np.ndarray | None, str]:
    if p.is_dir():
        try:
            os.listdir(p)
        except OSError as exc:
            return None, f"cannot list folder: {exc.strerror or exc}"
    try:
        return load_image(p), ""
    except ImageError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"


def _decode_ahead(todo: list[tuple[Path, str]], prefetch: int):
    """(path, relpath, image or None, error) in order, decoded by two threads ahead of use;
    the read-ahead is bounded so memory does not grow with the folder."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(_decode, p) for p, _ in todo[:prefetch]]
        nxt = len(pending)
        for i, (p, r) in enumerate(todo):
            image, err = pending[i].result()
            pending[i] = None
            if nxt < len(todo):
                pending.append(pool.submit(_decode, todo[nxt][0]))
                nxt += 1
            yield p, r, image, err


def analyze_images(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    crops: bool = False,
    min_face_size: int = 20,
    detect_size: int = 1024,
    ray_address: str | None = None,
    ray_resources=None,
) -> pd.DataFrame:
    """One row per face (faces numbered left to right), one row for an image with no face,
    and one row with ``error`` set for an image that could not be read.

    ``ray_address`` (``"local"``, ``"auto"`` or ``"ray://host:port"``) reads the images on a
    Ray cluster (``pip install "fervid[ray]"``; :mod:`fervid.cluster`) with the same rows;
    ``model`` must then be a path every node can read, or None for the bundled model, and
    ``ray_resources`` a :class:`fervid.cluster.Resources`.
    """
    options = {"crops": crops, "min_face_size": min_face_size, "detect_size": detect_size}
    if ray_address is not None:
        return _analyze_images_on_ray(inputs, model, device, options, ray_address, ray_resources)
    emo = _model(model, device)
    rows = []
    for res in iter_images(inputs, model=emo, **options):
        rows.extend(res.rows())
    return _frame(rows, image_columns(emo.classes), int_cols=("face",))


def _analyze_images_on_ray(inputs, model, device, options, address, resources) -> pd.DataFrame:
    from .cluster import Resources, connect, scan_rows

    if isinstance(model, EmotionModel):
        raise ValueError("with ray_address, give the model as a path (or None), not loaded")
    connect(address)
    paths, root = resolve_inputs(inputs)
    model_path = str(model) if model is not None else None
    classes = load_model(model_path, device="cpu").classes
    rows = []
    for shard in scan_rows(paths, root, model_path=model_path, device=device, options=options,
                           resources=resources or Resources()):  # fmt: skip
        for image_rows in shard:
            rows.extend(image_rows)
    return _frame(rows, image_columns(classes), int_cols=("face",))


def _frame(rows: list[list], columns: list[str], int_cols: Sequence[str] = ()) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c == "path":
            df[c] = df[c].astype(str)
        elif c in ("emotion", "error"):  # empty -> NaN, as pandas reads the CSV back
            df[c] = df[c].replace("", np.nan).astype(object)
        else:
            df[c] = pd.to_numeric(df[c].replace("", np.nan))
            if c in int_cols:
                df[c] = df[c].astype("Int64")
    return df


# -- video -----------------------------------------------------------------------------


def _video_options(**kw) -> VideoOptions:
    opts = VideoOptions(**kw)
    opts.validate()
    return opts


def analyze_video(
    path: str | os.PathLike,
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    every: int = 1,
    detect_interval: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    batch_size: int = 16,
    min_face_size: int = 32,
    detect_size: int = 960,
    smooth: float = 0.2,
    annotated: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Detect, track and classify the faces of a video; the rows as a DataFrame.

    Returns one row per face per analysed frame (``frame``, ``time_s``, ``face`` = track id,
    box, ``score``, one probability column per class, ``emotion``, ``confidence``); an
    analysed frame without faces has one row with empty face fields. ``every=N`` analyses
    every Nth frame. The whole frame is searched for faces at least every
    ``detect_interval`` seconds, on scene cuts and whenever a tracked face is not found near
    its predicted place; in between, faces are looked for only near where each is expected
    (0 searches every analysed frame in full). With ``annotated=PATH`` every frame in the
    range is also written, boxes drawn (carried over between analysed frames), as H.264 with
    the input's audio. ``DataFrame.attrs['fervid']`` holds a :class:`VideoReport` (with
    ``error`` set when the file was truncated and decoding stopped early).

    The rows are held in memory; for long recordings :func:`annotate_video` streams them to
    a CSV file instead.
    """
    emo = _model(model, device)
    opts = _video_options(
        every=every, detect_interval=detect_interval, start=start, end=end,
        batch_size=batch_size, min_face_size=min_face_size, detect_size=detect_size,
        smooth=smooth,
    )  # fmt: skip
    pipe = VideoPipeline(path, emo, opts)
    rows: list[list] = []
    sink = (
        VideoSink(annotated, pipe.info, audio_from=path, time_offset=start or 0.0, end=end)
        if annotated
        else None
    )
    with sink if sink is not None else contextlib.nullcontext():
        report = pipe.run(rows.extend, sink=sink, progress=progress)
    report.annotated = str(annotated) if annotated else None
    df = _frame(rows, video_columns(emo.classes), int_cols=("frame", "face"))
    df.attrs["fervid"] = report
    return df


def annotate_video(
    path: str | os.PathLike,
    csv_path: str | os.PathLike,
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    annotated: str | os.PathLike | None = None,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    **options,
) -> VideoReport:
    """Analyse a video straight to a CSV file (rows written as they come, memory flat for
    any length), and optionally draw it to ``annotated``.

    Both outputs are written under temporary names (``NAME.partial.csv`` and
    ``NAME.partial.mp4``, with ``NAME.state.json`` beside the CSV) and renamed when
    complete. With ``resume=True`` an interrupted run continues from its last complete chunk
    of frames: the same rows as an uninterrupted run; the annotated video is then drawn from
    the rows (no detection). ``options`` are :func:`analyze_video`'s.
    """
    emo = _model(model, device)
    opts = _video_options(**options)
    csv_path = check_output(csv_path, inputs=[path], kind="csv")
    if annotated is not None:
        check_output(annotated, inputs=[path], kind="mp4")
    check_writable(csv_path.parent)
    with OutputLock(csv_path):
        return _annotate_locked(path, csv_path, emo, opts, annotated, resume, progress)


def _annotate_locked(path, csv_path, emo, opts, annotated, resume, progress) -> VideoReport:
    partial = partial_path(csv_path)
    state_path = csv_path.with_name(csv_path.stem + ".state.json")
    pipe = VideoPipeline(path, emo, opts)
    resumed = False
    if resume and partial.exists() and state_path.exists():
        pipe.load_state_dict(json.loads(state_path.read_text()))
        truncate_rows_after(partial, pipe.last_frame)
        resumed = True
    else:
        partial.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
    writer = CsvRowWriter(partial, video_columns(emo.classes), append=resumed)

    def checkpoint(state: dict) -> None:
        write_text_atomic(state_path, json.dumps(state))

    live = annotated is not None and not resumed
    sink = VideoSink(annotated, pipe.info, audio_from=path, time_offset=opts.start or 0.0,
                     end=opts.end) if annotated is not None else None  # fmt: skip
    try:
        with sink if live else contextlib.nullcontext():
            report = pipe.run(
                writer.write, sink=sink if live else None, progress=progress,
                checkpoint=checkpoint,
            )  # fmt: skip
            if report.frames == 0:  # nothing to show: no outputs at all (the sink discards)
                raise VideoError(_why_no_frames(pipe.info, opts, report))
    except VideoError:
        writer.close()
        if pipe.report.frames == 0:
            for p in (partial, state_path):
                p.unlink(missing_ok=True)
        raise
    finally:
        writer.close()
    if annotated is not None and resumed:
        with sink:
            render_from_rows(path, partial, sink, emo.classes, start=opts.start, end=opts.end)
    os.replace(partial, csv_path)
    state_path.unlink(missing_ok=True)
    report.annotated = str(annotated) if annotated else None
    return report


def _why_no_frames(info, opts: VideoOptions, report: VideoReport) -> str:
    if report.error:
        return f"{info.path}: no frame could be decoded ({report.error})"
    if opts.start is not None and (info.duration_s <= 0 or opts.start >= info.duration_s):
        return (
            f"{info.path}: --start {opts.start:g} s is past the end of the video "
            f"({info.duration_s:.2f} s)"
        )
    return f"{info.path}: no video frames in the range asked for"


def summarize_csv(csv_path: str | os.PathLike, chunk_rows: int = 200_000) -> dict:
    """A video CSV's rows, faces and tracks, each track's dominant emotion and its share,
    read in chunks (memory flat for any length)."""
    counts: dict[int, dict[str, int]] = {}
    rows = faces = 0
    for part in pd.read_csv(csv_path, usecols=["face", "emotion"], chunksize=chunk_rows):
        rows += len(part)
        part = part.dropna(subset=["face"])
        faces += len(part)
        for (tid, emo), n in part.groupby(["face", "emotion"]).size().items():
            per = counts.setdefault(int(tid), {})
            per[emo] = per.get(emo, 0) + int(n)
    tracks = []
    for tid, per in counts.items():
        total = sum(per.values())
        emo = max(per, key=per.get)
        tracks.append({"face": tid, "frames": total, "emotion": emo, "share": per[emo] / total})
    tracks.sort(key=lambda t: -t["frames"])
    return {"rows": rows, "faces": faces, "tracks": tracks}
