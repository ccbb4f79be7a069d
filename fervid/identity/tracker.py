"""Persons for the tracks of a video as it is analysed (:class:`PersonTracker`): a few
embeddings per track, the pairs of tracks seen in the same frame (never one person), and for
each new track the person it matches among those not in view, or a new person. Its state is
plain data (``--resume``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..faces import Faces
from ..keyframes import pattern
from .distance import JUMP, JUMP_ABRUPT, THRESHOLD, cohort_scale, same_probability

if TYPE_CHECKING:  # the embedder needs PyTorch; the tracker's state does not
    from .embedder import FaceEmbedder

log = logging.getLogger(__name__)

#: A face whose 16 px grey thumbnail correlates under this with its track's on the frame
#: before has changed abruptly: it is checked at once (or, within MIN_CHECK seconds of its
#: last check, as soon as that has passed).
LOOK_CHANGE = 0.8
MIN_CHECK = 0.2


def _look(image: np.ndarray, box) -> np.ndarray | None:
    """A face's thumbnail, 16x16 grey, zero mean, unit norm (None: too small or flat)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    step = max(1, min(x2 - x1, y2 - y1) // 32)  # about 32 px taken, then averaged to 16
    crop = image[y1:y2:step, x1:x2:step]
    return pattern(cv2.resize(crop, (16, 16), interpolation=cv2.INTER_AREA).mean(2), flat=0.0)


@dataclass
class TrackIdentity:
    """What is known of one track's identity: its embeddings (a few), when it was first and
    last seen, the person it was given while the video ran."""

    first_t: float
    last_t: float
    person: int
    samples: list[list[float]] = field(default_factory=list)
    sample_t: list[float] = field(default_factory=list)  # when each sample was taken
    next_t: float = 0.0  # when to take the next embedding
    check_t: float = 0.0  # when to check the face again (once the samples are taken)
    _mean: tuple[int, np.ndarray | None] = field(default=(0, None), repr=False, compare=False)
    _root: tuple[int, float] = field(default=(0, 1.0), repr=False, compare=False)

    def mean(self) -> np.ndarray | None:
        """The mean of the samples (worked out again only when one is added)."""
        if self._mean[0] != len(self.samples):
            self._mean = (len(self.samples), np.mean(np.asarray(self.samples, np.float32), 0))
        return self._mean[1]

    def root_scale(self) -> float:
        """The square root of the mean's :func:`cohort_scale` (1 without samples)."""
        if self._root[0] != len(self.samples):
            root = math.sqrt(float(cohort_scale(self.mean())[0])) if self.samples else 1.0
            self._root = (len(self.samples), root)
        return self._root[1]


@dataclass
class PersonTracker:
    """Persons for the tracks of one video, as it is analysed: ``update(faces, image, t)``
    gives each face (with track ids) a person and a confidence (NaN while its track has no
    usable embedding)."""

    embedder: FaceEmbedder | None = None
    interval: float = 3.0  # seconds between two embeddings of one track
    max_samples: int = 4  # a track costs at most 4 embeddings (about 12 ms each here)
    #: a track seen again after this many seconds unseen (hidden, turned away, missed) is
    #: embedded again at once: it may come back looking otherwise, or be someone else
    gap: float = 1.0
    threshold: float = THRESHOLD
    #: a track's face is checked again at least this often (seconds), and at once when its box
    #: jumps or changes size abruptly: farther than ``jump`` from the track's embeddings, it is
    #: someone else (a cut not seen, one face taken for another): the track is split there
    check: float = 2.0
    jump: float = JUMP
    #: the same, for a check made because the face changed abruptly (its box jumped, its size
    #: or look changed): that change is itself a sign of another face, so less distance says so
    jump_abrupt: float = JUMP_ABRUPT
    #: gives a track a new id from the current frame on (the face tracker's ``split``); None:
    #: tracks are not checked along their length
    split: Callable[[int], int] | None = None
    #: distances read against the cohort (:func:`cohort_scale`), as the whole-video pass does
    cohort: bool = True
    tracks: dict[int, TrackIdentity] = field(default_factory=dict)
    cooccur: set[tuple[int, int]] = field(default_factory=set)
    next_person: int = 0
    # each track's confidence, worked out again only when an embedding is added (it depends
    # on the embeddings alone), not for every face of every frame
    _conf: dict[int, float] = field(default_factory=dict, repr=False)
    # the tracks with embeddings as arrays (ids, means, persons), made again only when an
    # embedding is added: a long video's thousands of tracks are compared in one step
    _table: tuple | None = field(default=None, repr=False)
    # the tracks seen with each track (``cooccur`` by track), so that a new track's match
    # does not read every pair of a long video
    _partners: dict[int, set[int]] = field(default_factory=dict, repr=False)
    _boxes: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # last box, by track
    _looks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # last thumbnail
    _pending: set[int] = field(default_factory=set, repr=False)  # changed, not checked yet
    #: the splits made: (old track, new track, time)
    splits: list[tuple[int, int, float]] = field(default_factory=list)

    def update(self, faces: Faces, image: np.ndarray, t: float) -> tuple[list[int], np.ndarray]:
        """Each face's person and confidence. A track whose face is found to be someone else's
        is split: the face's ``faces.track_ids`` entry becomes the new track's id."""
        ids = [int(i) for i in faces.track_ids]
        for tid in ids:
            if tid not in self.tracks:
                self.tracks[tid] = TrackIdentity(t, t, self._new_person())
        changed = self._changed(faces, image, ids) if self.split is not None else set()
        why = {k: self._due(tid, faces.boxes[k], t, k in changed) for k, tid in enumerate(ids)}
        due = [k for k, w in why.items() if w]
        if due and self.embedder is not None:
            self._sample(faces, image, t, due, {k for k in due if why[k] == "sample"})
            ids = [int(i) for i in faces.track_ids]
        for a in ids:
            for b in ids:
                if a < b and (a, b) not in self.cooccur:
                    self._seen_together(a, b)
        for k, tid in enumerate(ids):
            self._boxes[tid] = np.asarray(faces.boxes[k], np.float32)
        persons, conf = [], np.full(len(ids), np.nan, np.float32)
        for k, tid in enumerate(ids):
            tr = self.tracks[tid]
            tr.last_t = t
            persons.append(tr.person)
            if tr.samples:
                if tid not in self._conf:
                    self._conf[tid] = self._confidence(tid)
                conf[k] = self._conf[tid]
        return persons, conf

    def _due(self, tid: int, box, t: float, changed: bool) -> str:
        """Why the track's face is to be embedded now: "sample" (one every ``interval`` s, at
        most ``max_samples``, and back after a gap), "check" (every ``check`` s, and at once
        when the face changed abruptly), or "" (not now)."""
        tr = self.tracks[tid]
        if self.embedder is None or not self.embedder.big_enough(box):
            return ""
        back = bool(tr.samples) and t - tr.last_t > self.gap
        if len(tr.samples) < self.max_samples and (t >= tr.next_t or back):
            return "sample"
        if self.split is None or not tr.samples:
            return ""
        if changed or self._jumped(tid, box):
            self._pending.add(tid)
        soon = tid in self._pending and t >= tr.check_t - self.check + MIN_CHECK
        return "check" if back or t >= tr.check_t or soon else ""

    def _jumped(self, tid: int, box) -> bool:
        """The box moved by more than half its size or changed size by 40% since the last
        frame: the tracker may have taken one face for another."""
        last = self._boxes.get(tid)
        if last is None:
            return False
        box = np.asarray(box, np.float32)
        size, before = float(np.max(box[2:] - box[:2])), float(np.max(last[2:] - last[:2]))
        moved = float(np.linalg.norm((box[:2] + box[2:] - last[:2] - last[2:]) / 2))
        return moved > 0.5 * max(before, 1.0) or not 1 / 1.4 < size / max(before, 1.0) < 1.4

    def _changed(self, faces: Faces, image: np.ndarray, ids: list[int]) -> set[int]:
        """The faces that look unlike their track's face on the frame before (a 16 px
        thumbnail, correlation under :data:`LOOK_CHANGE`): cheap, every frame."""
        out = set()
        for k, tid in enumerate(ids):
            look = _look(image, faces.boxes[k])
            before = self._looks.get(tid)
            if before is not None and look is not None and float(look @ before) < LOOK_CHANGE:
                out.add(k)
            if look is not None:
                self._looks[tid] = look
        return out

    def _sample(self, faces: Faces, image: np.ndarray, t: float, due: list[int], keep) -> None:
        """Embed the faces ``due``: each checked against its track (a split where it is
        someone else's), and kept as a sample when in ``keep`` (or its track's first)."""
        chips = self.embedder.chips(image, faces.boxes[due])
        sharp = [self.embedder.sharpness(c) >= self.embedder.min_sharpness for c in chips]
        vecs = self.embedder.embed_chips([c for c, ok in zip(chips, sharp) if ok])
        it = iter(vecs)
        for k, ok in zip(due, sharp):
            tid = int(faces.track_ids[k])
            tr = self.tracks[tid]
            if not ok:  # blurred: soon again
                tr.next_t, tr.check_t = t + self.interval / 4, t + self.check / 4
                continue
            vec = next(it)
            tr.check_t = t + self.check
            abrupt = tid in self._pending
            self._pending.discard(tid)
            if self.split is not None and tr.samples and self._far(tid, vec, abrupt):
                faces.track_ids[k] = tid = self._split(tid, t)
                tr = self.tracks[tid]
            if tr.samples and k not in keep:
                continue  # a check only
            tr.next_t = t + self.interval
            first = not tr.samples
            tr.samples.append([round(float(v), 5) for v in vec])
            tr.sample_t.append(round(float(t), 6))
            self._forget()
            if first:
                visible = {int(i) for i in faces.track_ids}
                tr.person = self._match(tid, visible, tr.person)
                self._forget()  # its person may have changed

    def _far(self, tid: int, vec: np.ndarray, abrupt: bool = False) -> bool:
        """Whether an embedding of a track's face is too far from the track's to be its
        (``abrupt``: checked because the face changed abruptly)."""
        return self.distance_to(tid, vec) > (self.jump_abrupt if abrupt else self.jump)

    def distance_to(self, tid: int, vec: np.ndarray) -> float:
        """The distance of an embedding from a track's (the mean of its samples), read
        against the cohort as the other distances are."""
        tr = self.tracks[tid]
        d = float(np.linalg.norm(np.asarray(vec, np.float32) - tr.mean()))
        if self.cohort:
            d *= math.sqrt(float(cohort_scale(vec)[0])) * tr.root_scale()
        return d

    def _split(self, tid: int, t: float) -> int:
        """The track ends before ``t``; from ``t`` on its face is a new track (and person)."""
        new = self.split(tid)
        self.tracks[new] = TrackIdentity(t, t, self._new_person())
        self._boxes.pop(tid, None)
        self._looks[new] = self._looks.pop(tid, None)
        self.splits.append((tid, new, t))
        log.info("track %d split at %.2f s: another face from there on (track %d)", tid, t, new)
        return new

    def _match(self, tid: int, visible: set[int], own: int) -> int:
        """The person a track's first embedding belongs to: the nearest among the persons of
        other tracks not in view now and never seen with this one, under the threshold."""
        blocked = {self.tracks[o].person for o in visible if o != tid}
        blocked |= {self.tracks[o].person for o in self._cooccurring(tid)}
        best, best_d = own, self.threshold
        for person, d in sorted(self._distances(tid).items()):
            if person not in blocked and d < best_d:
                best, best_d = person, d
        return best

    def _distances(self, tid: int) -> dict[int, float]:
        """The mean distance from a track to each person's other tracks with embeddings."""
        if self._table is None:
            ids = [t for t, tr in self.tracks.items() if tr.samples]
            means = [self.tracks[t].mean() for t in ids]
            persons = [self.tracks[t].person for t in ids]
            roots = [self._root(self.tracks[t]) for t in ids]
            table = (ids, means, persons, roots)
            self._table = tuple(np.asarray(v) for v in table)
        ids, means, persons, roots = self._table
        others = ids != tid
        if not others.any() or not self.tracks[tid].samples:
            return {}
        own = self.tracks[tid]
        d = np.linalg.norm(means[others] - own.mean(), axis=1)
        d *= roots[others] * self._root(own)
        people, which = np.unique(persons[others], return_inverse=True)
        mean_d = np.bincount(which, weights=d) / np.bincount(which)
        return dict(zip(people.tolist(), mean_d.tolist()))

    def _root(self, tr: TrackIdentity) -> float:
        """The track's factor on its distances: its root scale, or 1 with raw distances."""
        return tr.root_scale() if self.cohort else 1.0

    def _seen_together(self, a: int, b: int) -> None:
        self.cooccur.add((a, b))
        self._partners.setdefault(a, set()).add(b)
        self._partners.setdefault(b, set()).add(a)

    def _forget(self) -> None:
        """Drop what is worked out from the embeddings and persons (they changed)."""
        self._conf.clear()
        self._table = None

    def _cooccurring(self, tid: int) -> set[int]:
        return self._partners.get(tid, set())

    def _confidence(self, tid: int) -> float:
        """How sure the track's person is: P(same) with its own person's other tracks, or,
        alone, 1 - P(same) with the nearest other person."""
        people = self._distances(tid)
        own = self.tracks[tid].person
        if own in people:
            return float(same_probability(people[own]))
        return float(1 - same_probability(min(people.values()))) if people else 1.0

    def _new_person(self) -> int:
        self.next_person += 1
        return self.next_person - 1

    # -- the whole video ---------------------------------------------------------------
    def summary(self) -> dict:
        """The tracks' identities as plain data (what :func:`cluster_tracks` takes)."""
        return {
            "tracks": {
                str(tid): {
                    "first_t": tr.first_t,
                    "last_t": tr.last_t,
                    "person": tr.person,
                    "samples": tr.samples,
                    "sample_t": tr.sample_t,
                    "next_t": tr.next_t,
                }
                for tid, tr in self.tracks.items()
            },
            "cooccur": sorted([a, b] for a, b in self.cooccur),
            "next_person": self.next_person,
        }

    def state_dict(self) -> dict:
        return self.summary()

    def load_state_dict(self, d: dict) -> None:
        self.tracks = {int(k): TrackIdentity(**v) for k, v in d["tracks"].items()}
        self.cooccur, self._partners = set(), {}
        for a, b in d["cooccur"]:
            self._seen_together(int(a), int(b))
        self.next_person = int(d["next_person"])
        self._forget()
