"""When to search the whole frame for faces: :class:`KeyframePolicy`."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

#: Size (width, height) of the gray thumbnails compared between frames.
THUMB = (64, 36)
#: A thumbnail whose grey levels spread less than this (standard deviation, of 255) is flat
#: (black, a fade's end): its pattern says nothing.
FLAT = 4.0


def pattern(small: np.ndarray, flat: float = FLAT) -> np.ndarray | None:
    """A small grey picture's pattern: less its mean, flattened to unit length, so that the
    dot product of two is their correlation whatever the light; None where the picture is
    flat (grey levels spreading less than ``flat``, a standard deviation of 255)."""
    x = small.astype(np.float32).reshape(-1)
    x -= x.mean()
    norm = float(np.sqrt(np.dot(x, x)))
    return None if norm <= flat * np.sqrt(x.size) else x / norm


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small gray (green channel) thumbnail of a frame, uint8: every few pixels taken,
    then averaged down (cheap on large frames)."""
    h, w = image.shape[:2]
    step = max(1, min(h // (4 * THUMB[1]), w // (4 * THUMB[0])))
    green = image[::step, ::step, 1] if image.ndim == 3 else image[::step, ::step]
    return cv2.resize(np.ascontiguousarray(green), THUMB, interpolation=cv2.INTER_AREA)


@dataclass
class KeyframePolicy:
    """Decides, for each analysed frame, whether to search the whole frame for faces.

    The whole frame is searched: on the first frame; at least every ``interval`` seconds;
    on the first frame of a new shot (the caller says: :mod:`fervid.shots`); when something
    moved away from the tracked people (``motion_cells`` thumbnail cells, outside each
    tracked face's region and the body below it, changed by more than ``motion`` of the range
    since the previous analysed frame: only the region that moved is searched when it is under
    ``max_region`` of the frame, else the whole frame at most every ``min_interval`` seconds);
    and, decided by the pipeline, when a tracked face is not found near its predicted place.
    In between, faces are only looked for near where they are expected. A face that appears
    is found within ``interval`` seconds at worst, and on its first frames when its arrival
    moves the picture (a person walking in).
    """

    interval: float = 1.0
    min_interval: float = 0.2
    motion: float = 0.12
    motion_cells: int = 2
    max_region: float = 0.4
    last_key: float | None = None
    last_thumb: list | None = field(default=None, repr=False)
    last_cut: float | None = None  # when the last scene cut was seen

    def __post_init__(self) -> None:
        if not self.interval >= 0 or not self.min_interval >= 0:
            raise ValueError("keyframe intervals must be >= 0 seconds")

    def decide(
        self, t: float, image: np.ndarray, faces: np.ndarray | None = None, *, cut: bool = False
    ) -> tuple[str, list[tuple[int, int, int, int]] | None]:
        """``("full", None)`` to search the whole of ``image`` (at ``t`` seconds),
        ``("region", [(x0, y0, x1, y1), ...])`` to search only the parts that moved away
        from the tracked people, or ``("none", None)``. ``faces``: the boxes (N, 4) where
        tracked faces are expected (their people's movement does not count); ``cut``: a new
        shot began since the last analysed frame."""
        thumb = thumbnail(image)
        prev, self.last_thumb = self.last_thumb, thumb.tolist()
        ref = np.asarray(prev if prev is not None else thumb, np.uint8)
        if ref.shape != thumb.shape:
            return self._key(t)
        diff = np.abs(thumb.astype(np.int16) - ref.astype(np.int16)) / 255.0
        if cut:
            self.last_cut = t
            return self._key(t)
        if self.last_key is None or t - self.last_key >= self.interval - 1e-6:
            return self._key(t)
        moved = diff > self.motion
        if faces is not None and len(faces):
            moved &= ~_people_cells(faces, image.shape[:2], thumb.shape)
        if int(moved.sum()) < self.motion_cells:
            return "none", None
        regions = _moved_regions(moved, image.shape[:2], self.motion_cells)
        area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions)
        if regions and area <= self.max_region * image.shape[0] * image.shape[1]:
            return "region", regions
        if regions and self.due(t):
            return self._key(t)
        return "none", None

    def _key(self, t: float) -> tuple[str, None]:
        self.last_key = t
        return "full", None

    def due(self, t: float) -> bool:
        """Whether ``min_interval`` has passed since the last whole-frame search."""
        return self.last_key is None or t - self.last_key >= self.min_interval - 1e-6

    def mark_key(self, t: float) -> None:
        """The pipeline searched the whole frame at ``t`` (a face was lost): the interval
        restarts from here."""
        self._key(t)

    def state_dict(self) -> dict:
        return {"last_key": self.last_key, "last_thumb": self.last_thumb, "last_cut": self.last_cut}

    def load_state_dict(self, d: dict) -> None:
        self.last_key, self.last_thumb = d["last_key"], d["last_thumb"]
        self.last_cut = d.get("last_cut")


def _moved_regions(moved: np.ndarray, hw: tuple[int, int], min_cells: int) -> list:
    """Boxes (frame pixels) around each group of moved thumbnail cells (cells one apart
    joined), a cell of margin around each; groups under ``min_cells`` cells are noise."""
    grown = cv2.dilate(moved.astype(np.uint8), np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    h, w = hw
    cy, cx = h / moved.shape[0], w / moved.shape[1]
    out = []
    for k in range(1, n):
        if int((moved & (labels == k)).sum()) < min_cells:
            continue
        c0, r0, cw, rh = stats[k, :4]
        out.append(
            (int(c0 * cx), int(r0 * cy), int(min(w, (c0 + cw) * cx)), int(min(h, (r0 + rh) * cy)))
        )
    return out


def _people_cells(faces: np.ndarray, hw: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Thumbnail cells where a tracked person's own movement is expected: 2.5 face sizes
    either side of the face's centre, from 1.5 face sizes above it to 5 below (head, hair,
    shoulders, arms and body)."""
    mask = np.zeros(shape, bool)
    sy, sx = shape[0] / hw[0], shape[1] / hw[1]
    for x1, y1, x2, y2 in np.asarray(faces, np.float64).reshape(-1, 4):
        cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
        c0, c1 = int(max(0, (cx - 2.5 * s) * sx)), int(min(shape[1], (cx + 2.5 * s) * sx + 1))
        r0, r1 = int(max(0, (cy - 1.5 * s) * sy)), int(min(shape[0], (cy + 5 * s) * sy + 1))
        mask[r0:r1, c0:c1] = True
    return mask
