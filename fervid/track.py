"""Face tracks across frames: greedy IoU matching, and per-track smoothing of probabilities."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .faces import Faces


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0).astype(np.float32)


@dataclass
class _Track:
    id: int
    box: np.ndarray
    last_seen: int


@dataclass
class IoUTracker:
    """Keeps an id per face across frames.

    Boxes are matched greedily by IoU (>= ``iou_threshold``); a face that moved further is
    still matched when its centre lies within ``max_shift`` of its size from the track's last
    box (the case with ``--every N``). A track unseen for more than ``max_age`` updates ends.
    """

    iou_threshold: float = 0.3
    max_shift: float = 0.6
    max_age: int = 25
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 0
    _step: int = 0

    def update(self, faces: Faces) -> Faces:
        self._step += 1
        self._tracks = [t for t in self._tracks if self._step - t.last_seen <= self.max_age]
        n = len(faces)
        ids = np.full(n, -1, np.int64)
        if self._tracks and n:
            old = np.stack([t.box for t in self._tracks])
            sim = iou_matrix(old, faces.boxes)
            # centre-distance fallback, scaled to stay below any IoU match
            oc = (old[:, None, :2] + old[:, None, 2:]) / 2
            nc = (faces.boxes[None, :, :2] + faces.boxes[None, :, 2:]) / 2
            size = np.maximum(old[:, None, 2:] - old[:, None, :2], 1).max(-1)
            dist = np.linalg.norm(oc - nc, axis=-1) / size
            near = np.where(
                dist < self.max_shift, self.iou_threshold * (1 - dist / self.max_shift), 0
            )
            sim = np.where(sim >= self.iou_threshold, 1 + sim, near)
            while True:
                i, j = np.unravel_index(np.argmax(sim), sim.shape)
                if sim[i, j] <= 0:
                    break
                ids[j] = self._tracks[i].id
                self._tracks[i].box = faces.boxes[j].copy()
                self._tracks[i].last_seen = self._step
                sim[i, :] = 0
                sim[:, j] = 0
        for j in np.where(ids < 0)[0]:
            ids[j] = self._next_id
            self._tracks.append(_Track(self._next_id, faces.boxes[j].copy(), self._step))
            self._next_id += 1
        return faces.with_track_ids(ids)


@dataclass
class ProbSmoother:
    """Exponential smoothing of each track's probabilities with time constant ``tau`` seconds
    (0: off). Works with irregular frame times (``--every N``, variable frame rate)."""

    tau: float = 0.0
    _state: dict[int, tuple[float, np.ndarray]] = field(default_factory=dict)

    def update(self, faces: Faces, time_s: float) -> Faces:
        if self.tau <= 0 or len(faces) == 0 or not faces.classified:
            return faces
        probs = faces.probs.copy()
        for k, tid in enumerate(faces.track_ids):
            prev = self._state.get(int(tid))
            if prev is not None:
                t0, p0 = prev
                a = 1 - math.exp(-max(time_s - t0, 0.0) / self.tau)
                probs[k] = a * probs[k] + (1 - a) * p0
                probs[k] /= probs[k].sum()
            self._state[int(tid)] = (time_s, probs[k].copy())
        return faces.with_probs(probs, faces.classes)
