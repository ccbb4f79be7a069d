"""Classification by need, as detection is by need: a tracked face is classified again when
it may read differently, and otherwise keeps its last probabilities (the smoothing after it
averages them anyway). :class:`ClassifyByNeed` decides per face: a new track, ``interval``
seconds since the face was last classified, a box grown or shrunk by more than ``resize``, or
a face whose look changed (the mean absolute difference of 16x16 gray thumbnails of its box
above ``change`` of the 0-255 range). ``interval`` 0 classifies every face of every analysed
frame (the default: docs/video.md says why)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .faces import Faces


def face_thumb(image: np.ndarray, box) -> np.ndarray:
    """A 16x16 gray thumbnail of the box (its look, cheaply)."""
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        return np.zeros((16, 16), np.uint8)
    gray = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA)


@dataclass
class ClassifyByNeed:
    """``need(faces, image, t) -> mask`` of the faces to classify; ``fill(faces, probs)``
    gives every face probabilities (new ones for the classified, carried for the others)."""

    interval: float = 0.0
    resize: float = 0.15
    change: float = 0.06
    _last: dict[int, tuple[float, float, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def need(self, faces: Faces, image: np.ndarray, t: float) -> np.ndarray:
        mask = np.ones(len(faces), bool)
        if self.interval <= 0:
            return mask
        for k, tid in enumerate(faces.track_ids):
            last = self._last.get(int(tid))
            if last is None or t - last[0] >= self.interval - 1e-9:
                continue
            size = float(
                max(faces.boxes[k, 2] - faces.boxes[k, 0], faces.boxes[k, 3] - faces.boxes[k, 1])
            )
            if abs(size / max(last[1], 1.0) - 1) > self.resize:
                continue
            thumb = face_thumb(image, faces.boxes[k])
            if np.abs(thumb.astype(np.int16) - last[2]).mean() / 255 > self.change:
                continue
            mask[k] = False
        return mask

    def fill(
        self, faces: Faces, mask: np.ndarray, probs: np.ndarray, image: np.ndarray, t: float
    ) -> np.ndarray:
        """All faces' probabilities: ``probs`` (rows for the faces in ``mask``) and the last
        ones of the others; what was classified is remembered."""
        out = np.zeros((len(faces), probs.shape[1] if len(probs) else 0), np.float32)
        it = iter(probs)
        for k, tid in enumerate(faces.track_ids):
            tid = int(tid)
            if mask[k]:
                p = next(it)
                if self.interval > 0:
                    b = faces.boxes[k]
                    size = float(max(b[2] - b[0], b[3] - b[1]))
                    self._last[tid] = (t, size, face_thumb(image, b).astype(np.int16), p)
                out = out if out.shape[1] else np.zeros((len(faces), len(p)), np.float32)
                out[k] = p
            else:
                last = self._last[tid][3]
                out = out if out.shape[1] else np.zeros((len(faces), len(last)), np.float32)
                out[k] = last
        return out

    def forget(self, alive: set[int]) -> None:
        """Drop what is remembered of tracks that ended."""
        for tid in [t for t in self._last if t not in alive]:
            del self._last[tid]

    def state_dict(self) -> dict:
        return {str(k): [t, s, th.tolist(), p.tolist()] for k, (t, s, th, p) in self._last.items()}

    def load_state_dict(self, d: dict) -> None:
        self._last = {
            int(k): (float(t), float(s), np.asarray(th, np.int16), np.asarray(p, np.float32))
            for k, (t, s, th, p) in d.items()
        }
