"""Persons for the tracks of a video as it is analysed (:class:`PersonTracker`): a few
embeddings per track, the pairs of tracks seen in the same frame (never one person), and for
each new track the person it matches among those not in view, or a new person. Its state is
plain data (``--resume``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..faces import Faces
from .distance import THRESHOLD, cohort_scale, same_probability

if TYPE_CHECKING:  # the embedder needs PyTorch; the tracker's state does not
    from .embedder import FaceEmbedder


@dataclass
class TrackIdentity:
    """What is known of one track's identity: its embeddings (a few), when it was first and
    last seen, the person it was given while the video ran."""

    first_t: float
    last_t: float
    person: int
    samples: list[list[float]] = field(default_factory=list)
    next_t: float = 0.0  # when to take the next embedding
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

    def update(self, faces: Faces, image: np.ndarray, t: float) -> tuple[list[int], np.ndarray]:
        ids = [int(i) for i in faces.track_ids]
        for a in ids:
            for b in ids:
                if a < b and (a, b) not in self.cooccur:
                    self._seen_together(a, b)
        due = [k for k, tid in enumerate(ids) if self._due(tid, faces.boxes[k], t)]
        if due and self.embedder is not None:
            self._sample(faces, image, t, due)
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

    def _due(self, tid: int, box, t: float) -> bool:
        tr = self.tracks.get(tid)
        if tr is None:
            self.tracks[tid] = tr = TrackIdentity(t, t, self._new_person())
        if self.embedder is None or len(tr.samples) >= self.max_samples:
            return False
        back = bool(tr.samples) and t - tr.last_t > self.gap
        return (t >= tr.next_t or back) and self.embedder.big_enough(box)

    def _sample(self, faces: Faces, image: np.ndarray, t: float, due: list[int]) -> None:
        chips = self.embedder.chips(image, faces.boxes[due])
        sharp = [self.embedder.sharpness(c) >= self.embedder.min_sharpness for c in chips]
        vecs = self.embedder.embed_chips([c for c, ok in zip(chips, sharp) if ok])
        it = iter(vecs)
        visible = {int(faces.track_ids[k]) for k in range(len(faces))}
        for k, ok in zip(due, sharp):
            tr = self.tracks[int(faces.track_ids[k])]
            tr.next_t = t + (self.interval if ok else self.interval / 4)
            if not ok:
                continue
            first = not tr.samples
            tr.samples.append([round(float(v), 5) for v in next(it)])
            self._forget()
            if first:
                tr.person = self._match(int(faces.track_ids[k]), visible, tr.person)
                self._forget()  # its person may have changed

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
