"""fervid's Python API: one function per use case, plain data back.

>>> import fervid
>>> df = fervid.analyze_video("clip.mp4", annotated="clip.fervid.mp4")
>>> faces = fervid.analyze_images("photos/")
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._malloc import release_free_memory
from .classify import EmotionModel, load_model
from .detect import FaceDetector
from .draw import annotate
from .faces import Faces
from .images import ImageError, load_image, walk_images
from .track import IoUTracker, ProbSmoother
from .video import FrameReader, VideoSink
from .writers import face_rows, image_columns, video_columns

#: frames (videos) or images (folders) between returns of freed heap memory to the OS
TRIM_EVERY = 32

log = logging.getLogger(__name__)

__all__ = [
    "analyze_images",
    "analyze_video",
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
    """Image paths and the folder they are relative to: a folder is walked recursively, a
    file is itself, a list is taken as it is (no common folder)."""
    if isinstance(inputs, (str, os.PathLike)):
        root = Path(inputs)
        if root.is_dir():
            return list(walk_images(root)), root
        return [root], root.parent
    paths = [Path(p) for p in inputs]
    return paths, None


def relpath(p: Path, root: Path | None) -> str:
    """``p`` relative to ``root`` in POSIX form, or as given when outside it."""
    if root is not None:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(p)


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
        else FaceDetector(device=emo.device, min_face_size=min_face_size, detect_size=detect_size)
    )

    chunk = 64 if crops else 4  # crops: one forward pass per 64; photos: MTCNN batches
    done = 0
    for batch in _chunks(_decode_ahead(todo, prefetch=max(prefetch, chunk)), chunk):
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
        _release_every(done, done + len(batch))
        done += len(batch)
        for p, r, image, err in batch:
            if image is None:
                yield ImageResult(p, r, Faces.empty(emo.classes), err)
            else:
                yield ImageResult(p, r, next(faces))


def _decode(p: Path) -> tuple[np.ndarray | None, str]:
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


def _release_every(before: int, after: int) -> None:
    """Return freed heap to the OS each time the count of frames or images done passes a
    multiple of TRIM_EVERY: resident memory then stays flat over hours of video."""
    if before // TRIM_EVERY != after // TRIM_EVERY:
        release_free_memory()


def _chunks(items, n: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def analyze_images(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    crops: bool = False,
    min_face_size: int = 20,
    detect_size: int = 1024,
) -> pd.DataFrame:
    """One row per face (faces numbered left to right), one row for an image with no face,
    and one row with ``error`` set for an image that could not be read."""
    emo = _model(model, device)
    rows = []
    for res in iter_images(
        inputs, model=emo, crops=crops, min_face_size=min_face_size, detect_size=detect_size
    ):
        rows.extend(res.rows())
    return _frame(rows, image_columns(emo.classes), int_cols=("face",))


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


@dataclass
class VideoReport:
    """How a video run went (kept in ``DataFrame.attrs['fervid']``)."""

    path: str
    frames: int = 0
    analysed: int = 0
    seconds: float = 0.0
    error: str | None = None
    annotated: str | None = None
    width: int = 0
    height: int = 0
    fps: float = 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def analyze_video(
    path: str | os.PathLike,
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    every: int = 1,
    detect_every: int = 5,
    start: float | None = None,
    end: float | None = None,
    batch_size: int = 16,
    min_face_size: int = 20,
    detect_size: int = 960,
    smooth: float = 0.0,
    annotated: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Detect, track and classify the faces of a video.

    Returns one row per face per analysed frame (``frame``, ``time_s``, ``face`` = track id,
    box, ``score``, one probability column per class, ``emotion``, ``confidence``); an
    analysed frame without faces has one row with empty face fields. ``every=N`` analyses
    every Nth frame. ``detect_every=K``: the whole frame is searched for faces on every Kth
    analysed frame; analysed frames in between look for faces only near those found
    (tracking between detections; 1 searches every analysed frame in full). With ``annotated=PATH``
    every frame in the range is also written, boxes drawn (carried over between analysed
    frames), as H.264 with the input's audio.
    ``DataFrame.attrs['fervid']`` holds a :class:`VideoReport` (with ``error`` set when the
    file was truncated and decoding stopped early).
    """
    if every < 1:
        raise ValueError("every must be >= 1")
    if detect_every < 1:
        raise ValueError("detect_every must be >= 1")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if start is not None and end is not None and end <= start:
        raise ValueError("end must be after start")
    emo = _model(model, device)
    reader = FrameReader(path, start=start, end=end)
    info = reader.info
    detector = FaceDetector(device=emo.device, min_face_size=min_face_size, detect_size=detect_size)
    tracker = IoUTracker(max_age=max(2, int(round(info.fps / every))))
    smoother = ProbSmoother(tau=smooth)
    report = VideoReport(str(path), width=info.width, height=info.height, fps=info.fps)
    rows: list[list] = []
    carried = Faces.empty(emo.classes)
    first_index: int | None = None
    t0 = time.perf_counter()
    sink = (
        VideoSink(annotated, info, audio_from=path, time_offset=start or 0.0, end=end)
        if annotated
        else None
    )

    last_key: int | None = None
    key_boxes = np.zeros((0, 4), np.float32)

    def flush(batch):
        nonlocal carried, last_key, key_boxes
        chosen = [f for f in batch if (f.index - first_index) % every == 0]
        # keyframes get a full-frame detection; the frames between them are searched only
        # near the faces of the latest keyframe (much cheaper)
        is_key, near = [], []
        for f in chosen:
            # detect_every counts analysed frames (with every=3, detect_every=5: 15 frames)
            key = last_key is None or (f.index - last_key) // every >= detect_every
            if key:
                last_key = f.index
            is_key.append(key)
        keys = [f.image for f, k in zip(chosen, is_key) if k]
        full = iter(detector.detect(keys))
        detections: list[Faces | None] = []
        for f, k in zip(chosen, is_key):
            if k:
                d = next(full)
                key_boxes = d.boxes
                detections.append(d)
            else:
                detections.append(None)
                near.append((len(detections) - 1, f.image, key_boxes))
        if near:
            found = detector.detect_near([img for _, img, _ in near], [b for _, _, b in near])
            for (i, _, _), d in zip(near, found):
                detections[i] = d
        classified = iter(emo.classify([f.image for f in chosen], detections, batch_size=256))
        for f in batch:
            if (f.index - first_index) % every == 0:
                faces = smoother.update(tracker.update(next(classified)), f.time_s)
                rows.extend(
                    [f.index, round(f.time_s, 6), *r]
                    for r in face_rows(faces, emo.classes, use_track_ids=True)
                )
                report.analysed += 1
                carried = faces
            if sink is not None:
                sink.write(annotate(f.image, carried, copy=False), f.time_s)
            report.frames += 1
        if progress is not None:
            progress(len(batch))
        _release_every(report.frames - len(batch), report.frames)

    with sink if sink is not None else contextlib.nullcontext():
        batch = []
        for frame in reader:
            if first_index is None:
                first_index = frame.index
            batch.append(frame)
            if len(batch) >= batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    report.seconds = time.perf_counter() - t0
    report.error = reader.error
    report.annotated = str(annotated) if annotated else None
    df = _frame(rows, video_columns(emo.classes), int_cols=("frame", "face"))
    df.attrs["fervid"] = report
    return df


def summarize(df: pd.DataFrame) -> dict:
    """Per video: faces and tracks found, each track's dominant emotion and its share."""
    faces = df.dropna(subset=["face"]) if "face" in df else df
    out = {"rows": len(df), "faces": len(faces), "tracks": []}
    if len(faces) == 0:
        return out
    for tid, g in faces.groupby("face"):
        counts = g["emotion"].value_counts()
        out["tracks"].append(
            {
                "face": int(tid),
                "frames": len(g),
                "emotion": counts.index[0],
                "share": float(counts.iloc[0] / len(g)),
            }
        )
    out["tracks"].sort(key=lambda t: -t["frames"])
    return out
