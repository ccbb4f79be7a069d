"""The row layout of fervid's tables, by field name, in one place.

A :class:`RowSchema` knows the columns of a video table (``frame, time_s, face, person,
person_confidence, box, yaw, pitch, roll, eyes_open, mouth_open, speaking, score, <classes>,
emotion, confidence``) or of a photo table (``path, face, box, yaw, pitch, roll, eyes_open,
mouth_open, score, <classes>, emotion, confidence, error``); a table written before the face's
measures (December 2026) has no ``yaw ... speaking`` and is read as it is; it turns
:class:`~fervid.faces.Faces` into rows and rows back into ``Faces``, finds fields by name and
reads a schema back from a file's header. Everything else reads and writes rows through it, so
that adding a column touches this module only.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .faces import Faces

BOX = ("x1", "y1", "x2", "y2")
#: Video rows: the frame, its time, the track (``face``), the person it belongs to for the
#: whole video and how sure that is.
VIDEO_KEYS = ("frame", "time_s", "face", "person", "person_confidence")
IMAGE_KEYS = ("path", "face")
RESULT = ("emotion", "confidence")
#: What the face is doing besides its emotion (:mod:`fervid.face_pose`), after the box.
MEASURE_COLUMNS = ("yaw", "pitch", "roll", "eyes_open", "mouth_open")
#: dlib's 68 landmarks in pixels (``--landmarks``): lx0..lx67, then ly0..ly67.
LANDMARK_COLUMNS = tuple(f"lx{k}" for k in range(68)) + tuple(f"ly{k}" for k in range(68))
IMAGE_TAIL = ("error",)
#: Columns that hold integers (nullable: a frame without a face has none).
INT_COLUMNS = ("frame", "face", "person")
#: Columns that hold text.
TEXT_COLUMNS = ("path", "emotion", "error")


@dataclass(frozen=True)
class RowSchema:
    """The columns of a video (``kind="video"``) or photo (``kind="image"``) table for a
    model's ``classes``; ``measures=False``: a table from before the face's measures;
    ``landmarks``: with the 68 landmarks too (``--landmarks``)."""

    kind: str
    classes: tuple[str, ...]
    measures: bool = True
    landmarks: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("video", "image"):
            raise ValueError(f"RowSchema: kind must be 'video' or 'image', not {self.kind!r}")
        object.__setattr__(self, "classes", tuple(self.classes))

    @property
    def keys(self) -> tuple[str, ...]:
        return VIDEO_KEYS if self.kind == "video" else IMAGE_KEYS

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @functools.cached_property
    def _columns(self) -> tuple[str, ...]:
        # made once per schema: rows are made and read through it for every face
        tail = IMAGE_TAIL if self.kind == "image" else ()
        return (*self.keys, *BOX, *self.measure_columns, "score", *self.classes, *RESULT, *tail)

    @property
    def measure_columns(self) -> tuple[str, ...]:
        """The face's measures in this table: pose, eyes, mouth, and ``speaking`` in video."""
        if not self.measures:
            return ()
        speaking = ("speaking",) if self.kind == "video" else ()
        return MEASURE_COLUMNS + speaking + (LANDMARK_COLUMNS if self.landmarks else ())

    def index(self, name: str) -> int:
        return self._positions[name]

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {c: k for k, c in enumerate(self._columns)}

    def get(self, row: Sequence, name: str):
        """One field of a row, by name."""
        return row[self._positions[name]]

    def box(self, row: Sequence) -> list[float]:
        k = self._positions["x1"]
        return [float(v) for v in row[k : k + 4]]

    def probs(self, row: Sequence) -> list[float]:
        k = self._positions["score"] + 1
        return [float(v) for v in row[k : k + len(self.classes)]]

    def has_face(self, row: Sequence) -> bool:
        return row[self._positions["face"]] != ""

    # -- faces to rows and back --------------------------------------------------------
    def _face_values(self, faces: Faces, k: int) -> dict:
        """The fields of face ``k``, by name."""
        values = dict(zip(BOX, (round(float(v), 1) for v in faces.boxes[k])))
        values["score"] = round(float(faces.scores[k]), 4)
        values["face"] = int(faces.track_ids[k]) if self.kind == "video" else k
        if self.kind == "video" and faces.persons[k] >= 0:
            values["person"] = int(faces.persons[k])
            if np.isfinite(faces.person_conf[k]):
                values["person_confidence"] = round(float(faces.person_conf[k]), 3)
        if self.measures:
            m = faces.measures[k]
            rounding = (1, 1, 1, 3, 3)
            values.update({c: round(float(v), r) for c, v, r in zip(MEASURE_COLUMNS, m, rounding)
                           if np.isfinite(v)})  # fmt: skip
            if self.kind == "video" and np.isfinite(faces.speaking[k]):
                values["speaking"] = int(faces.speaking[k])
            if self.landmarks and np.isfinite(faces.points[k]).all():
                xy = faces.points[k].T.reshape(-1)  # the x's, then the y's
                values.update(zip(LANDMARK_COLUMNS, (round(float(v), 1) for v in xy)))
        if faces.classified:
            values.update(zip(self.classes, (round(float(p), 5) for p in faces.probs[k])))
            values["emotion"] = self.classes[int(faces.probs[k].argmax())]
            values["confidence"] = round(float(faces.probs[k].max()), 5)
        return values

    def rows(self, fixed: dict, faces: Faces, extra: dict[str, Sequence] | None = None):
        """The rows of one frame or image: the ``fixed`` fields (``frame`` and ``time_s``,
        or ``path`` and ``error``) on every row, one row per face with its fields and the
        ``extra`` per-face fields by name; one row of empty face fields when there is none."""
        columns = self._columns
        if len(faces) == 0:
            return [[fixed.get(c, "") for c in columns]]
        out = []
        for k in range(len(faces)):
            values = self._face_values(faces, k) | fixed
            for name, per_face in (extra or {}).items():
                values[name] = per_face[k]
            out.append([values.get(c, "") for c in columns])
        return out

    def video_rows(self, frame: int, time_s: float, faces: Faces, extra=None) -> list[list]:
        """The rows of one analysed video frame."""
        return self.rows({"frame": frame, "time_s": round(time_s, 6)}, faces, extra)

    def image_rows(self, relpath: str, faces: Faces, error: str = "") -> list[list]:
        """The rows of one photo (``error`` set when it could not be read); a path that
        a spreadsheet would run as a formula is written safe (:func:`safe_cell`)."""
        return self.rows({"path": safe_cell(relpath), "error": error}, faces)

    def faces(self, rows: Iterable[Sequence[str]]) -> Faces:
        """The faces of the rows of one frame or image (as read back from a CSV)."""
        rows = [r for r in rows if self.has_face(r)]
        if not rows:
            return Faces.empty(self.classes)
        face = self._positions["face"]
        persons = conf = measures = speaking = ()
        if self.kind == "video":
            persons = [_number(self.get(r, "person"), int, -1) for r in rows]
            conf = [_number(self.get(r, "person_confidence"), float, np.nan) for r in rows]
        if self.measures:
            measures = [[_number(self.get(r, c), float, np.nan) for c in MEASURE_COLUMNS]
                        for r in rows]  # fmt: skip
        if self.measures and self.kind == "video":
            speaking = [_number(self.get(r, "speaking"), float, np.nan) for r in rows]
        return Faces(
            [self.box(r) for r in rows],
            [float(self.get(r, "score")) for r in rows],
            [self.probs(r) for r in rows],
            [int(r[face]) for r in rows],
            self.classes,
            persons,
            conf,
            measures,
            speaking,
        )

    # -- headers -------------------------------------------------------------------------
    @classmethod
    def from_header(cls, header: Sequence[str]) -> RowSchema:
        """The schema whose columns are ``header``; ValueError when it is not a fervid
        table's."""
        header = list(header)
        for kind in ("video", "image"):
            for measures, marks in ((True, False), (True, True), (False, False)):
                head = cls(kind, (), measures, marks).columns
                tail = len(RESULT) + (len(IMAGE_TAIL) if kind == "image" else 0)
                first = len(head) - tail
                if len(header) > first + tail and header[:first] == head[:first]:
                    classes = tuple(header[first : len(header) - tail])
                    schema = cls(kind, classes, measures, marks)
                    if schema.columns == header:
                        return schema
        raise ValueError("not a fervid table (unknown columns)")

    @classmethod
    def of_file(cls, path: str | os.PathLike) -> RowSchema:
        """The schema of a fervid CSV, from its header."""
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        try:
            return cls.from_header(header)
        except ValueError:
            raise ValueError(f"{path}: not a fervid table (unknown columns)") from None


#: What a spreadsheet takes as the start of a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet will not run: one that starts with ``= + - @``, a tab or a
    carriage return gets a leading apostrophe (OWASP's advice); :func:`cell_text` takes it
    off again."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell_text(cell: str) -> str:
    """The text of a cell written by :func:`safe_cell`."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def _number(text, kind, missing):
    return kind(text) if text != "" else missing


def classes_of(csv_path: str | os.PathLike) -> tuple[str, ...]:
    """The class names of a fervid table, from its header."""
    return RowSchema.of_file(csv_path).classes


def to_frame(rows: list[list], schema: RowSchema):
    """Rows as a pandas DataFrame typed as pandas reads the CSV back (nullable integers,
    text as text with empty fields missing, numbers as floats)."""
    import pandas as pd  # pandas only for a DataFrame: the rows are lists

    df = pd.DataFrame(rows, columns=schema.columns)
    for c in schema.columns:
        if c == "path":
            df[c] = df[c].astype(str)
        elif c in TEXT_COLUMNS:  # empty -> NaN, as pandas reads the CSV back
            df[c] = df[c].replace("", np.nan).astype(object)
        else:
            df[c] = pd.to_numeric(df[c].replace("", np.nan))
            if c in INT_COLUMNS:
                df[c] = df[c].astype("Int64")
    return df


def frame_name(relpath: str, k: int) -> str:
    """The name of frame ``k`` (from 1) of a multi-page or animated file: ``relpath#k``."""
    return f"{relpath}#{k}"


def file_of(name: str) -> str:
    """The file a row's path names: ``a.tif#3`` (a frame) is ``a.tif``; an image file found
    in a folder always ends in its extension, so the two never mix."""
    head, sep, tail = name.rpartition("#")
    return head if sep and tail.isdigit() else name


def read_csv(path, **kw):
    """``pandas.read_csv`` of a local file, opened here: pandas reads a name such as
    ``http:host.csv`` as an address and would fetch it. A DataFrame passes through."""
    import pandas as pd  # pandas only for a DataFrame: the rows are lists

    if isinstance(path, pd.DataFrame):
        return path
    with open(path, newline="", encoding="utf-8") as fh:
        return pd.read_csv(fh, **kw)


def read_csv_chunks(path, chunksize: int, **kw):
    """:func:`read_csv` in chunks of ``chunksize`` rows, the file open while they are read."""
    import pandas as pd  # likewise

    with open(path, newline="", encoding="utf-8") as fh:
        yield from pd.read_csv(fh, chunksize=chunksize, **kw)


def write_csv(df, path, **kw) -> None:
    """``DataFrame.to_csv`` into a local file opened here (see :func:`read_csv`)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        df.to_csv(fh, **kw)


@dataclass(frozen=True)
class TableFacts:
    """What :func:`check_video_table` found: the rows, and whether they are in time order."""

    rows: int
    ordered: bool


def check_video_table(path: str | os.PathLike, chunk_rows: int = 200_000) -> TableFacts:
    """Read a video table once, streamed, before anything is made from it; ValueError (one
    line naming the file and the row) for a table fervid could not have written: not a
    video table, its last row cut off, a row with missing or extra fields, a time that is
    not a finite number of seconds, or a face's probabilities outside 0-1 or not summing
    to 1. Rows out of time order are allowed (a sorted copy): the facts say so."""
    schema = video_schema_of(path)
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size and (fh.seek(size - 1) is None or fh.read(1) != b"\n"):
            raise ValueError(f"{path}: its last row is cut off (a copy that did not finish?)")
    with open(path, newline="", encoding="utf-8") as fh:
        width = len(next(csv.reader(fh), []))  # a table from before the person columns too
    with open(path, newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.reader(fh), start=1):
            if len(row) != width:
                raise ValueError(f"{path}: row {n} has {len(row)} fields, not {width}")
    ordered, last, start = True, -np.inf, 2
    for part in read_csv_chunks(path, chunk_rows, usecols=["time_s", "face", *schema.classes]):
        _check_numbers(path, part, schema.classes, start)
        t = part["time_s"].to_numpy(float)
        if len(t):
            ordered = ordered and t[0] >= last and bool(np.all(np.diff(t) >= 0))
            last = t[-1]
        start += len(part)
    return TableFacts(start - 2, ordered)


def video_schema_of(path: str | os.PathLike) -> RowSchema:
    """The schema of a video table, also of one written before the person columns existed
    (they are then taken as missing); ValueError (one line) for anything else."""
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    if "person" not in header and header[:3] == ["frame", "time_s", "face"]:
        header = header[:3] + ["person", "person_confidence"] + header[3:]
    try:
        schema = RowSchema.from_header(header)
    except ValueError:
        raise ValueError(f"{path}: not a fervid table (unknown columns)") from None
    if schema.kind != "video":
        raise ValueError(f"{path}: a photo table, not a video's")
    return schema


def _check_numbers(path, part, classes, start: int) -> None:
    t = part["time_s"].to_numpy(float)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        n = start + int(np.argmax(bad))
        raise ValueError(f"{path}: row {n}: time_s is not a number of seconds ({t[bad][0]})")
    faces = part[part["face"].notna()]
    p = faces[list(classes)].to_numpy(float)
    bad_p = ~np.isfinite(p).all(1) | (p < -1e-6).any(1) | (p > 1 + 1e-6).any(1)
    bad_p |= np.abs(p.sum(1) - 1) > 0.01
    if bad_p.any():
        n = start + int(faces.index[np.argmax(bad_p)] - part.index[0])
        raise ValueError(f"{path}: row {n}: the probabilities are not numbers in 0-1 summing to 1")
