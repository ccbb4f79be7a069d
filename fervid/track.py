"""Face tracks across frames: :class:`FaceTracker` (``update(detections) -> detections``)
follows each face with a constant-velocity prediction and stabilises its box with a One-Euro
filter; :class:`ProbSmoother` smooths each track's probabilities over time."""

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


def to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack(
        [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
        1,
    )


def to_xyxy(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64).reshape(-1, 4)
    half = c[:, 2:] / 2
    return np.concatenate([c[:, :2] - half, c[:, :2] + half], 1)


@dataclass
class OneEuro:
    """The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) on a box (cx, cy, w, h).

    A low-pass filter whose cutoff rises with speed: a still face's box stays still (little
    jitter), a moving face's box keeps up (little lag). Speeds are measured in face sizes per
    second, so the same settings fit small and large faces. ``min_cutoff`` 0 turns it off.
    """

    min_cutoff: float = 1.0  # Hz, at rest
    beta: float = 1.0  # cutoff increase per face size per second of speed
    d_cutoff: float = 1.0  # Hz, for the speed estimate
    x: list[float] | None = None
    dx: list[float] | None = None
    t: float | None = None

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, value: np.ndarray, t: float) -> np.ndarray:
        v = np.asarray(value, np.float64)
        if self.min_cutoff <= 0 or self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = v.tolist(), [0.0] * 4, t
            return v
        dt = t - self.t
        x_prev, dx_prev = np.asarray(self.x), np.asarray(self.dx)
        size = max(float(v[2:].max()), 1.0)
        dx = (v - x_prev) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        speed = float(np.abs(dx_hat[:2]).max()) / size  # face sizes per second
        a = self._alpha(self.min_cutoff + self.beta * speed, dt)
        x_hat = a * v + (1 - a) * x_prev
        self.x, self.dx, self.t = x_hat.tolist(), dx_hat.tolist(), t
        return x_hat


@dataclass
class Track:
    """One followed face: its last box (stabilised), velocity and when it was last seen."""

    id: int
    box: list[float]  # cx, cy, w, h of the last detection (stabilised)
    raw: list[float]  # cx, cy, w, h as detected
    t: float
    velocity: list[float] = field(default_factory=lambda: [0.0, 0.0])  # px/s of the centre
    hits: int = 1
    searched: bool = False  # a whole-frame search already failed to find it since last seen
    filter: OneEuro = field(default_factory=OneEuro)

    def predict(self, t: float) -> np.ndarray:
        """The box (cx, cy, w, h) where the face should be at time ``t``."""
        dt = max(t - self.t, 0.0)
        cx, cy, w, h = self.raw
        return np.array([cx + self.velocity[0] * dt, cy + self.velocity[1] * dt, w, h])


@dataclass
class FaceTracker:
    """Keeps one id per face across frames: ``update(detections, t) -> detections``.

    Each track's box is predicted at time ``t`` from its velocity; detections are matched to
    the predictions greedily by IoU (>= ``iou_threshold``), or, failing that, by centre
    distance under ``max_shift`` face sizes, a margin that grows with the time the face has
    been unseen. A track survives ``max_age`` seconds unseen (crossings, short misses), then
    ends; a face seen again later gets a new id. Matched boxes are stabilised with a One-Euro
    filter (``smooth_cutoff`` Hz at rest, ``smooth_beta``; 0 turns it off).
    """

    max_age: float = 2.0
    iou_threshold: float = 0.3
    max_shift: float = 0.75
    smooth_cutoff: float = 1.0
    smooth_beta: float = 1.0
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def predict(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Live tracks at ``t``: ids, predicted boxes (x1, y1, x2, y2) and seconds unseen."""
        self._expire(t)
        if not self.tracks:
            return np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0)
        ids = np.array([tr.id for tr in self.tracks], np.int64)
        boxes = to_xyxy(np.stack([tr.predict(t) for tr in self.tracks])).astype(np.float32)
        gaps = np.array([t - tr.t for tr in self.tracks])
        return ids, boxes, gaps

    def missing(self, faces: Faces, t: float, frame_hw: tuple[int, int]) -> list[int]:
        """Ids of tracks whose predicted box lies in the frame but that no detection in
        ``faces`` would match, and that no whole-frame search has looked for yet."""
        self._expire(t)
        assigned = self._assign(faces.boxes, t)
        h, w = frame_hw
        out = []
        for i, tr in enumerate(self.tracks):
            cx, cy = tr.predict(t)[:2]
            inside = 0 <= cx < w and 0 <= cy < h
            if inside and not tr.searched and i not in assigned.values():
                out.append(tr.id)
        return out

    def end_all(self) -> None:
        """End every track (a scene cut): faces found next get new ids."""
        self.tracks = []

    def searched(self, ids: list[int]) -> None:
        """A whole-frame search did not find these tracks: do not search again for them."""
        for tr in self.tracks:
            if tr.id in ids:
                tr.searched = True

    def update(self, faces: Faces, t: float) -> Faces:
        """Give each detection a track id and its stabilised box."""
        self._expire(t)
        assigned = self._assign(faces.boxes, t)
        ids = np.full(len(faces), -1, np.int64)
        boxes = faces.boxes.copy()
        raw = to_cxcywh(faces.boxes)
        for j in range(len(faces)):
            if j in assigned:
                tr = self.tracks[assigned[j]]
                dt = t - tr.t
                same_size = abs(raw[j, 2:].max() / max(max(tr.raw[2:]), 1.0) - 1) < 0.2
                if dt > 0 and same_size:  # a box cut by an occlusion says little of motion
                    v = (raw[j, :2] - np.asarray(tr.raw[:2])) / dt
                    k = 0.5 if tr.hits > 1 else 1.0
                    tr.velocity = (k * v + (1 - k) * np.asarray(tr.velocity)).tolist()
                tr.raw, tr.t, tr.hits, tr.searched = raw[j].tolist(), t, tr.hits + 1, False
            else:
                filt = OneEuro(self.smooth_cutoff, self.smooth_beta)
                tr = Track(self.next_id, raw[j].tolist(), raw[j].tolist(), t, filter=filt)
                self.tracks.append(tr)
                self.next_id += 1
            tr.box = tr.filter(raw[j], t).tolist()
            ids[j] = tr.id
            boxes[j] = to_xyxy(np.asarray(tr.box))[0]
        return Faces(boxes, faces.scores, faces.probs, ids, faces.classes)

    def split(self, tid: int) -> int:
        """A live track goes on under a new id (its face is someone else's from now on: the
        box is kept, its motion and smoothing start afresh); the new id."""
        for tr in self.tracks:
            if tr.id == tid:
                tr.id, self.next_id = self.next_id, self.next_id + 1
                tr.velocity, tr.hits = [0.0, 0.0], 1
                tr.filter = OneEuro(self.smooth_cutoff, self.smooth_beta)
                tr.box = tr.filter(np.asarray(tr.raw), tr.t).tolist()
                return tr.id
        raise KeyError(f"no live track {tid}")

    def _expire(self, t: float) -> None:
        self.tracks = [tr for tr in self.tracks if t - tr.t <= self.max_age]

    def _assign(self, boxes: np.ndarray, t: float) -> dict[int, int]:
        """Detection index -> track index, greedily, best match first."""
        if not self.tracks or len(boxes) == 0:
            return {}
        pred = np.stack([tr.predict(t) for tr in self.tracks])
        sim = iou_matrix(to_xyxy(pred).astype(np.float32), np.asarray(boxes, np.float32))
        det = to_cxcywh(boxes)
        size = np.maximum(pred[:, None, 2:].max(-1), 1.0)
        dist = np.linalg.norm(pred[:, None, :2] - det[None, :, :2], axis=-1) / size
        gaps = np.array([t - tr.t for tr in self.tracks])[:, None]
        reach = np.minimum(self.max_shift + 2.0 * gaps, 3.0)
        near = np.where(dist < reach, self.iou_threshold * (1 - dist / reach), 0)
        sim = np.where(sim >= self.iou_threshold, 1 + sim, near)
        out: dict[int, int] = {}
        while sim.size:
            i, j = np.unravel_index(np.argmax(sim), sim.shape)
            if sim[i, j] <= 0:
                break
            out[int(j)] = int(i)
            sim[i, :] = 0
            sim[:, j] = 0
        return out

    def state_dict(self) -> dict:
        """The tracker as plain data (JSON-safe), for resuming a run."""
        return {
            "next_id": self.next_id,
            "tracks": [
                {
                    "id": tr.id,
                    "box": tr.box,
                    "raw": tr.raw,
                    "t": tr.t,
                    "velocity": list(tr.velocity),
                    "hits": tr.hits,
                    "searched": tr.searched,
                    "filter": {"x": tr.filter.x, "dx": tr.filter.dx, "t": tr.filter.t},
                }
                for tr in self.tracks
            ],
        }

    def load_state_dict(self, d: dict) -> None:
        self.next_id = int(d["next_id"])
        self.tracks = []
        for s in d["tracks"]:
            f = OneEuro(self.smooth_cutoff, self.smooth_beta, **s["filter"])
            self.tracks.append(
                Track(
                    s["id"], s["box"], s["raw"], s["t"], s["velocity"], s["hits"], s["searched"], f
                )
            )


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

    def state_dict(self) -> dict:
        return {str(k): [t, p.tolist()] for k, (t, p) in self._state.items()}

    def load_state_dict(self, d: dict) -> None:
        self._state = {int(k): (float(t), np.asarray(p, np.float32)) for k, (t, p) in d.items()}


def restart_smoothing(times, smoothed, start: int, tau: float) -> np.ndarray:
    """What a :class:`ProbSmoother` with time constant ``tau`` would have given the rows
    ``start:`` of one track had the track begun at row ``start`` (``times``: seconds, and
    ``smoothed``: (N, C) its output, both in time order): the first row's own probabilities
    worked back from the smoothing (with the row before it and the time between), and what
    came before it taken out of the rows after as the smoother lets it fade. Rows ``start:``
    changed; unchanged where ``tau`` is 0, ``start`` is 0, or the first row is too close to
    the one before for its own probabilities to be worked back (under a fiftieth of them)."""
    s = np.asarray(smoothed, np.float64)
    out = s[start:].copy()
    if tau <= 0 or start <= 0 or start >= len(s):
        return out
    a = 1.0 - np.exp(-np.maximum(np.diff(np.asarray(times, np.float64)), 0.0) / tau)
    if a[start - 1] < 0.02:
        return out
    own = np.clip((s[start] - (1 - a[start - 1]) * s[start - 1]) / a[start - 1], 0.0, None)
    own /= max(own.sum(), 1e-12)
    fade = np.cumprod(np.r_[1.0, 1.0 - a[start:]])
    out = np.clip(out + fade[:, None] * (own - s[start]), 0.0, None)
    return out / np.maximum(out.sum(1, keepdims=True), 1e-12)
