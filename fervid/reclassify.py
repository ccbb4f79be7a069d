"""Classification by need, as detection is by need: a tracked face is classified again when
it may read differently, and otherwise keeps its last probabilities (the smoothing after it
averages them anyway). :class:`ClassifyByNeed` decides per face: a new track, ``interval``
seconds since the face was last classified, a box grown or shrunk by more than ``resize``, or
a face whose look changed (the mean absolute difference of 16x16 gray thumbnails of its box
above ``change`` of the 0-255 range). ``interval`` 0 classifies every face of every analysed
frame (the default: docs/video.md says why)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from .faces import Faces


def face_thumb(image: np.ndarray, box) -> np.ndarray:
    """A 16x16 gray thumbnail of the box (its look, cheaply)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        return np.zeros((16, 16), np.uint8)
    gray = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA)


@dataclass
class ClassifyByNeed:
    """``need(faces, image, t) -> mask`` of the faces to classify; ``fill(mask, probs)``
    gives every face probabilities (new ones for the classified, carried for the
    others), called for the same frames in the same order (a batch of frames: all ``need``,
    one classification, all ``fill``)."""

    interval: float = 0.0
    resize: float = 0.15
    change: float = 0.06
    # per track: [time, size, thumbnail, probabilities] of its last classification
    _last: dict[int, list] = field(default_factory=dict)
    # per frame seen by need and not yet filled: each face's entry of _last
    _refs: deque = field(default_factory=deque)

    def need(self, faces: Faces, image: np.ndarray, t: float) -> np.ndarray:
        """Which faces to classify. A face to classify is remembered at once (its
        probabilities come with :meth:`fill`), so that the later frames of the same batch
        carry them rather than all being classified."""
        mask = np.ones(len(faces), bool)
        if self.interval <= 0:
            return mask
        refs = []
        for k, tid in enumerate(faces.track_ids):
            box = faces.boxes[k]
            size = float(max(box[2] - box[0], box[3] - box[1]))
            thumb = face_thumb(image, box).astype(np.int16)
            last = self._last.get(int(tid))
            mask[k] = (
                last is None
                or t - last[0] >= self.interval - 1e-9
                or abs(size / max(last[1], 1.0) - 1) > self.resize
                or np.abs(thumb - last[2]).mean() / 255 > self.change
            )
            if mask[k]:
                last = self._last[int(tid)] = [t, size, thumb, None]
            refs.append(last)
        self._refs.append(refs)
        return mask

    def fill(self, mask: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """All faces' probabilities: ``probs`` (rows for the faces in ``mask``) and the last
        ones of the others."""
        if self.interval <= 0:
            return probs
        refs = self._refs.popleft()
        it = iter(probs)
        for k, entry in enumerate(refs):
            if mask[k]:
                entry[3] = next(it)
        if not refs:  # no face: nothing classified, nothing carried
            return probs
        return np.asarray([entry[3] for entry in refs], np.float32)

    def forget(self, alive: set[int]) -> None:
        """Drop what is remembered of tracks that ended."""
        for tid in [t for t in self._last if t not in alive]:
            del self._last[tid]

    def state_dict(self) -> dict:
        return {
            str(k): [t, s, th.tolist(), p.tolist()]
            for k, (t, s, th, p) in self._last.items()
            if p is not None
        }

    def load_state_dict(self, d: dict) -> None:
        self._last = {
            int(k): [float(t), float(s), np.asarray(th, np.int16), np.asarray(p, np.float32)]
            for k, (t, s, th, p) in d.items()
        }
