"""``Faces``: the one result type for the faces found in one image or frame."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: The number of measures per face (:data:`fervid.face_pose.MEASURES`).
MEASURES = 5


@dataclass
class Faces:
    """Faces in one image, as parallel arrays (N faces; N may be 0: "no face" is empty).

    boxes: float32 (N, 4) x1, y1, x2, y2 in pixels of the original image.
    scores: float32 (N,) detector confidence.
    probs: float32 (N, C) class probabilities (rows sum to 1), C = len(classes); (N, 0)
        until classified.
    track_ids: int64 (N,) track identity; -1 when not tracked.
    classes: the class names of the probability columns.
    persons: int64 (N,) the person a face belongs to for the whole video; -1 when not known.
    person_conf: float32 (N,) how sure that is (0-1); NaN when not measured.
    measures: float32 (N, 5) yaw, pitch, roll (degrees), eyes_open, mouth_open (0-1)
        (:mod:`fervid.face_pose`); NaN when not measured.
    speaking: float32 (N,) 1 speaking, 0 not (from the mouth over time); NaN when not known.
    points: float32 (N, 68, 2) dlib's 68 landmarks in pixels; NaN when not found.
    """

    boxes: np.ndarray
    scores: np.ndarray
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    classes: tuple[str, ...] = ()
    persons: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    person_conf: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    measures: np.ndarray = field(default_factory=lambda: np.zeros((0, MEASURES), np.float32))
    speaking: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 68, 2), np.float32))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.scores) != n:
            raise ValueError(f"Faces: {n} boxes but {len(self.scores)} scores")
        self.classes = tuple(self.classes)
        probs = np.asarray(self.probs, dtype=np.float32)
        if probs.size == 0:
            probs = np.zeros((n, len(self.classes) if n == 0 else 0), np.float32)
        if probs.ndim != 2 or probs.shape[0] != n:
            raise ValueError(f"Faces: probs must be ({n}, C), got {probs.shape}")
        if probs.shape[1] not in (0, len(self.classes)):
            raise ValueError(
                f"Faces: {probs.shape[1]} probability columns for {len(self.classes)} classes"
            )
        self.probs = probs
        tid = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        if tid.size == 0:
            tid = np.full(n, -1, np.int64)
        if len(tid) != n:
            raise ValueError(f"Faces: {n} boxes but {len(tid)} track ids")
        self.track_ids = tid
        self.persons = _per_face(self.persons, n, np.int64, -1, "persons")
        self.person_conf = _per_face(self.person_conf, n, np.float32, np.nan, "person_conf")
        self.measures = _per_face(
            self.measures, n, np.float32, np.nan, "rows of measures", (MEASURES,)
        )
        self.speaking = _per_face(self.speaking, n, np.float32, np.nan, "speaking")
        self.points = _per_face(self.points, n, np.float32, np.nan, "sets of landmarks", (68, 2))

    @classmethod
    def empty(cls, classes: tuple[str, ...] | list[str] = ()) -> Faces:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, len(classes)), np.float32),
            np.zeros(0, np.int64),
            tuple(classes),
        )

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def classified(self) -> bool:
        return self.probs.shape[1] == len(self.classes) and len(self.classes) > 0

    @property
    def emotions(self) -> list[str]:
        """Top class per face ('' for unclassified faces)."""
        if not self.classified or len(self) == 0:
            return [""] * len(self)
        return [self.classes[i] for i in self.probs.argmax(1)]

    @property
    def confidences(self) -> np.ndarray:
        if not self.classified or len(self) == 0:
            return np.zeros(len(self), np.float32)
        return self.probs.max(1)

    def with_probs(self, probs: np.ndarray, classes: tuple[str, ...] | list[str]) -> Faces:
        return replace(self, probs=probs, classes=tuple(classes))

    def with_persons(self, persons, person_conf=()) -> Faces:
        """The same faces with their persons (and how sure each is)."""
        return replace(self, persons=persons, person_conf=person_conf)

    def with_measures(self, measures, speaking=(), points=()) -> Faces:
        """The same faces with their pose, eyes and mouth (whether each is speaking, and
        their landmarks)."""
        return replace(self, measures=measures, speaking=speaking, points=points)

    def sorted_left_to_right(self) -> Faces:
        order = np.argsort(self.boxes[:, 0], kind="stable")
        return self[order]

    def __getitem__(self, idx) -> Faces:
        idx = np.asarray(idx)
        probs = self.probs[idx] if self.probs.shape[0] == len(self) and len(self) else self.probs
        return Faces(
            self.boxes[idx],
            self.scores[idx],
            probs,
            self.track_ids[idx],
            self.classes,
            self.persons[idx],
            self.person_conf[idx],
            self.measures[idx],
            self.speaking[idx],
            self.points[idx],
        )


def _per_face(values, n: int, dtype, missing, name: str, shape: tuple = ()) -> np.ndarray:
    """``values`` as an array of ``n`` per face (each of ``shape``), ``missing`` throughout
    where none are given; a count other than ``n`` is an error."""
    arr = np.asarray(values, dtype=dtype).reshape(-1, *shape)
    if arr.size == 0:
        return np.full((n, *shape), missing, dtype)
    if len(arr) != n:
        raise ValueError(f"Faces: {n} boxes but {len(arr)} {name}")
    return arr
