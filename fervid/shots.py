"""Where one shot of a video ends and the next begins: :class:`ShotCuts`, and
:func:`mark_cuts`, which marks a stream of frames with them.

A frame's *change* is one less the correlation of its grey thumbnail's pattern with the last
frame's (:func:`fervid.keyframes.pattern`: each less its mean, so the light does not matter:
a cut in dark or low-contrast footage scores as one in daylight). A frame is a cut where its
change is at least ``change`` and at least ``ratio`` times every change within ``ahead`` frames
either side of it: a cut is one abrupt change between two steady pictures, where a flash
changes the picture and changes it back, and a pan, a crossing shape or a moving person
change it over several frames. Flat frames (black, a fade's end) have no pattern: the next
frame is compared with the last one before them, and counts as a cut only if its picture is
another (``bridge``: a fade back to the same scene is no cut). A frame is decided once the
``ahead`` frames after it are seen. The thresholds were chosen on half of the shared real
recordings (``bench/cuts.py --half choose``), docs/video.md gives the figures.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .keyframes import pattern, thumbnail
from .video import Frame

#: A cut changes the picture's pattern by at least this (one less the correlation) ...
CHANGE = 0.05
#: ... and by at least this many times any change within ``AHEAD`` frames either side.
RATIO = 4.0
#: Across flat frames (black, a fade), the change a cut needs: another picture.
BRIDGE = 0.5
#: Frames seen after a frame before it is decided.
AHEAD = 2


@dataclass
class _Seen:
    index: int
    change: float
    last: np.ndarray | None  # the thumbnail of the last frame with a pattern, up to this one
    last_index: int
    decided: bool = False
    last_pattern: np.ndarray | None = None  # its pattern, worked out once


class ShotCuts:
    """Decides, frame by frame, where shots are cut (the module's doc says how). Feed every
    frame in order to :meth:`see`; each answer is ``(index, is_cut)`` for a frame ``ahead``
    frames back; :meth:`finish` decides the last ones."""

    def __init__(
        self, *, change: float = CHANGE, ratio: float = RATIO, bridge: float = BRIDGE,
        ahead: int = AHEAD,
    ):  # fmt: skip
        if not (change > 0 and ratio >= 1 and ahead >= 1):
            raise ValueError("a cut needs change > 0, ratio >= 1 and ahead >= 1")
        self.change, self.ratio, self.bridge, self.ahead = change, ratio, bridge, ahead
        self._seen: deque[_Seen] = deque(maxlen=2 * ahead + 1)

    def see(self, index: int, thumb: np.ndarray) -> list[tuple[int, bool]]:
        """Take the next frame's thumbnail (:func:`~fervid.keyframes.thumbnail`); the frames
        decided now."""
        prev = self._seen[-1] if self._seen else None
        last, last_index, before = (
            (prev.last, prev.last_index, prev.last_pattern) if prev else (None, -1, None)
        )
        now = pattern(thumb)
        change = 0.0
        if now is not None and before is not None:
            change = 1.0 - float(np.dot(now, before))
            if last_index < index - 1 and change < self.bridge:
                change = 0.0  # back from black to the same scene
        if now is not None:
            last, last_index, before = thumb, index, now
        self._seen.append(_Seen(index, change, last, last_index, last_pattern=before))
        return self._decide(len(self._seen) - 1 - self.ahead)

    def finish(self) -> list[tuple[int, bool]]:
        """The frames still undecided (the video ended): decided on the frames there are."""
        out = [d for k in range(len(self._seen)) for d in self._decide(k)]
        self._seen.clear()
        return out

    def _decide(self, k: int) -> list[tuple[int, bool]]:
        if k < 0 or self._seen[k].decided:
            return []
        seen = list(self._seen)
        seen[k].decided = True
        s = seen[k].change
        around = [x.change for j, x in enumerate(seen) if j != k and abs(j - k) <= self.ahead]
        cut = s >= self.change and s >= self.ratio * max(around, default=0.0)
        return [(seen[k].index, cut)]

    def state_dict(self, upto: int) -> dict:
        """Plain data to go on after frame ``upto``, decided (the frames seen after it are
        seen again)."""
        kept = [x for x in self._seen if x.index <= upto][-self.ahead :]
        return {
            "seen": [
                [x.index, x.change, None if x.last is None else x.last.tolist(), x.last_index]
                for x in kept
            ]
        }

    def load_state_dict(self, d: dict) -> None:
        self._seen.clear()
        for index, change, last, last_index in d["seen"]:
            thumb = None if last is None else np.asarray(last, np.uint8)
            seen = _Seen(int(index), float(change), thumb, int(last_index), True)
            seen.last_pattern = None if thumb is None else pattern(thumb)
            self._seen.append(seen)


def mark_cuts(frames: Iterable[Frame], cuts: ShotCuts) -> Iterator[Frame]:
    """``frames``, each marked ``cut`` where a new shot begins (``cuts.ahead`` frames are
    held back until they are decided)."""
    held: deque[Frame] = deque()
    for frame in frames:
        held.append(frame)
        for _, cut in cuts.see(frame.index, thumbnail(frame.image)):
            yield dataclasses.replace(held.popleft(), cut=cut)
    for _, cut in cuts.finish():  # every frame still held
        yield dataclasses.replace(held.popleft(), cut=cut)
