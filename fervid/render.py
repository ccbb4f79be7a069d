"""A finished table drawn onto its video (:func:`render_from_rows`): every frame in the range,
each with the faces of the latest analysed frame, no detection. Needs no PyTorch, so that
``fervid regroup`` draws the video again without it."""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Iterable, Iterator

from .draw import annotate, annotate_pose
from .faces import Faces
from .rows import RowSchema
from .video import FrameReader, VideoSink


def faces_by_frame(
    rows: str | os.PathLike | Iterable, classes: tuple[str, ...], landmarks: bool = False
) -> Iterator:
    """(frame index, Faces) for each analysed frame of a fervid video CSV (a path), or of
    video rows (lists in the CSV's order of columns: with the landmarks' columns when
    ``landmarks``), in order."""
    if not isinstance(rows, (str, os.PathLike)):
        yield from _group_frames(rows, RowSchema("video", classes, landmarks=landmarks))
        return
    with open(rows, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:  # a table from before the face's measures is read as it is
            schema = RowSchema.from_header(next(reader, []))
        except ValueError:
            schema = None
        if schema is None or schema.kind != "video" or schema.classes != tuple(classes):
            raise ValueError(f"{rows}: not a fervid video CSV of this model's classes")
        yield from _group_frames(reader, schema)


def _group_frames(rows: Iterable, schema: RowSchema) -> Iterator:
    frame = schema.index("frame")
    for idx, group in itertools.groupby((r for r in rows if r), key=lambda r: r[frame]):
        yield int(idx), schema.faces(group)


def render_from_rows(
    video: str | os.PathLike,
    rows: str | os.PathLike | Iterable,
    sink: VideoSink,
    classes: tuple[str, ...],
    *,
    start: float | None = None,
    end: float | None = None,
    progress: Callable[[int], None] | None = None,
    pose: bool = False,
    landmarks: bool = False,
) -> int:
    """Draw the faces of a fervid CSV (or of video rows) on the video's frames (no
    detection): every frame in the range, each with the faces of the latest analysed frame
    (``pose``: and where each points). Returns the frames written."""
    frames = faces_by_frame(rows, classes, landmarks)
    pending = next(frames, None)
    carried = Faces.empty(classes)
    n = 0
    for f in FrameReader(video, start=start, end=end):
        while pending is not None and pending[0] <= f.index:
            if pending[0] == f.index:
                carried = pending[1]
            pending = next(frames, None)
        image = annotate(f.image, carried, copy=False)
        sink.write(annotate_pose(image, carried, copy=False) if pose else image, f.time_s)
        n += 1
        if progress is not None:
            progress(1)
    return n
