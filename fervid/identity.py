"""Who is who across a whole video: a face embedding for identity and the people it finds.

- :class:`FaceEmbedder`: dlib's ResNet face descriptor (128 numbers per face; 99.38% on LFW
  by its authors), its weights read from the ``face-recognition-models`` package: installed
  by pip, nothing downloaded at run time. Faces are aligned by dlib's 5-point landmark model
  inside the detector's box (the prebuilt ``dlib-bin`` wheel); the network runs in PyTorch
  (:mod:`fervid._dlib_resnet`: dlib's descriptors, in batches, on the model's device).
- :class:`PersonTracker`: ``update(faces, image, t) -> (persons, confidences)`` for each
  analysed frame. It keeps a few embeddings per track (taken at the track's birth, then every
  ``interval`` seconds and when the track is seen again after a gap, at most ``max_samples``,
  only for faces large and sharp enough), the pairs of tracks seen in the same frame (never one
  person), and gives each new track the person it matches among those not in view, or a new
  person. Its state is plain data (``--resume``).
- :func:`cluster_tracks`: the whole-video pass: tracks merged into people by average-linkage
  on their embeddings, never two tracks seen in the same frame, stopping at the distance
  threshold or, when the number of people is known, at that number; then mutual nearest
  groups joined (two groups never seen together, each the other's nearest, closer than a
  looser distance); people numbered in order
  of first appearance; each track's confidence from the distance to its own people or to the
  nearest other.

Distances are read against a cohort of other people's faces (:func:`cohort_scale`): where
faces crowd, as look-alikes do for the descriptor, they grow. The distance threshold and the
confidence curve were chosen by measurement on pairs of photos of the same and of different
people, the join of mutual nearest groups on simulated videos (``bench/identity.py``,
docs/identity.md).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .faces import Faces

log = logging.getLogger(__name__)

#: Distance (read against the cohort, below) between two descriptors under which they are
#: taken as one person: 0.1% of different people's pairs fall under it (bench/identity.py,
#: the half of the people it is chosen on; docs/identity.md).
THRESHOLD = 0.55
#: The whole-video pass then joins two groups still apart, never seen together, when each is
#: the other's nearest group (any group, even one seen with it) and they are closer than
#: LOOSE: on simulated videos of the half of the people it was chosen on, people split
#: 6.8% -> 1.1%, wrong merges per video 0.0002 -> 0.0036 (docs/identity.md).
LOOSE = 0.62
#: P(same person | distance) = 1 / (1 + exp((d - MID) / SCALE)), fitted on the same pairs.
CONF_MID, CONF_SCALE = 0.61, 0.02
#: Distances are read against a cohort of other people's faces (cohort normalisation, as in
#: speaker and face verification): each descriptor gets a scale, COHORT_TYPICAL over its
#: mean distance to its COHORT_K nearest faces of the cohort, and the distance of two is multiplied
#: by the square root of their scales' product. Where faces crowd (look-alikes to the
#: descriptor) distances grow, where they are sparse they shrink. The cohort: descriptors of
#: 5,853 faces of the AffectNet and RAF-DB training images, each in colour and in grey
#: (fervid/models/identity_cohort.npy, float16, no names); docs/identity.md.
COHORT_FILE = "identity_cohort.npy"
COHORT_K = 10
#: the cohort distance of a typical face (the median over the photos of the half of the
#: people the thresholds were chosen on), so that normalised distances keep the scale of raw
#: ones
COHORT_TYPICAL = 0.552
#: a descriptor's scale is kept within these bounds, so that one far from every face (not a
#: face) cannot pull everything near it
SCALE_BOUNDS = (0.8, 1.25)
#: The smallest face (long side of the detector's box, px) whose embedding is used: at 44 px
#: a face's descriptor is 0.2 from its full-size one, at 22 px 0.45 (docs/identity.md).
MIN_FACE = 40
#: Sharpness floor (variance of the Laplacian of the 150 px face chip): 99% of the news photos'
#: faces are above 9; a Gaussian blur of 3 px brings a sharp face to 3 (docs/identity.md).
MIN_SHARPNESS = 5.0

INSTALL_HINT = (
    "re-identification needs dlib and its models: pip install dlib-bin face-recognition-models"
)


class IdentityUnavailable(RuntimeError):
    """dlib or its model files are missing; the message says how to install them."""


def same_probability(d: np.ndarray | float) -> np.ndarray:
    """P(same person) for descriptor distance ``d`` (the fitted logistic curve)."""
    z = np.clip((np.asarray(d, np.float64) - CONF_MID) / CONF_SCALE, -50, 50)
    return 1.0 / (1.0 + np.exp(z))


@functools.lru_cache(maxsize=1)
def _cohort() -> np.ndarray:
    from importlib.resources import files

    with files("fervid.models").joinpath(COHORT_FILE).open("rb") as f:
        return np.load(f, allow_pickle=False).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _cohort_norms() -> np.ndarray:
    """The cohort's squared norms, worked out once (each new track's scale reads them)."""
    cohort = _cohort()
    return (cohort * cohort).sum(1)


def _squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), ``b_norms`` being ``b``'s squared norms
    (one matrix product instead of a difference per pair; rounding kept off zero)."""
    return np.maximum((a * a).sum(1)[:, None] + b_norms[None, :] - 2 * a @ b.T, 0)


def cohort_scale(descriptors: np.ndarray) -> np.ndarray:
    """Each descriptor's scale (N,): :data:`COHORT_TYPICAL` over its mean distance to its
    :data:`COHORT_K` nearest faces of the cohort, within :data:`SCALE_BOUNDS`. The distance
    of two descriptors, normalised, is their distance times ``sqrt(scale_a * scale_b)``."""
    x = np.asarray(descriptors, np.float32).reshape(-1, 128)
    cohort, cc = _cohort(), _cohort_norms()
    out = np.empty(len(x), np.float64)
    for a in range(0, len(x), 256):
        sq = _squared_distances(x[a : a + 256], cohort, cc)
        near = np.partition(sq, COHORT_K - 1, axis=1)[:, :COHORT_K]
        out[a : a + 256] = COHORT_TYPICAL / np.sqrt(near).mean(1)
    return np.clip(out, *SCALE_BOUNDS)


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian over the middle of a face picture (RGB): low when blurred.
    On a 150 px aligned chip, the threshold :data:`MIN_SHARPNESS` applies."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    return float(cv2.Laplacian(gray, cv2.CV_32F)[h // 5 : 4 * h // 5, w // 5 : 4 * w // 5].var())


def _model_dir() -> str:
    import importlib.util
    import os

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise IdentityUnavailable(INSTALL_HINT)
    # the package's own __init__ imports pkg_resources, which new setuptools lack: find its
    # files without importing it
    return os.path.join(spec.submodule_search_locations[0], "models")


#: dlib's descriptor network's weights, in the ``face-recognition-models`` folder
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"


@functools.lru_cache(maxsize=1)
def _dlib_models(folder: str):
    """dlib and its landmark model, read once per process (about half a second each time
    otherwise: a cost per video that the measurements showed)."""
    import os

    try:
        import dlib
    except ImportError:
        raise IdentityUnavailable(INSTALL_HINT) from None
    try:
        shape = dlib.shape_predictor(os.path.join(folder, "shape_predictor_5_face_landmarks.dat"))
    except RuntimeError as exc:
        raise IdentityUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return dlib, shape


@functools.lru_cache(maxsize=2)
def _descriptor_net(folder: str, device: torch.device):
    """The descriptor network on ``device``, read once per process and device."""
    import os

    from ._dlib_resnet import DlibFaceNet

    try:
        net = DlibFaceNet.from_file(os.path.join(folder, DESCRIPTOR_FILE))
    except (RuntimeError, OSError, ValueError) as exc:
        raise IdentityUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return net.to(device, memory_format=torch.channels_last)


class FaceEmbedder:
    """128-number identity descriptors of faces (``embed(image, boxes)``), and whether a face
    is fit for one (``big_enough``, ``sharpness``)."""

    def __init__(
        self,
        min_face: int = MIN_FACE,
        min_sharpness: float = MIN_SHARPNESS,
        device: torch.device | str = "cpu",
    ) -> None:
        folder = _model_dir()
        self._dlib, self._shape = _dlib_models(folder)
        self.device = torch.device(device)
        self._net = _descriptor_net(folder, self.device)
        self.min_face, self.min_sharpness = min_face, min_sharpness

    def chips(self, image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        """The faces in ``boxes`` aligned as the network expects (150x150 RGB)."""
        dlib = self._dlib
        image = np.ascontiguousarray(image, dtype=np.uint8)
        shapes = dlib.full_object_detections()
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            rect = dlib.rectangle(int(x1), int(y1), int(math.ceil(x2)), int(math.ceil(y2)))
            shapes.append(self._shape(image, rect))
        if len(shapes) == 0:
            return []
        return dlib.get_face_chips(image, shapes, size=150, padding=0.25)

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors (N, 128) float32 of aligned chips."""
        if not chips:
            return np.zeros((0, 128), np.float32)
        x = torch.from_numpy(np.stack(chips)).to(self.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            vecs = self._net(x.contiguous(memory_format=torch.channels_last))
        return vecs.cpu().numpy()

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Descriptors (N, 128) of the faces in ``boxes`` (x1, y1, x2, y2) of an RGB image."""
        return self.embed_chips(self.chips(image, boxes))

    def sharpness(self, chip: np.ndarray) -> float:
        return sharpness(chip)

    def big_enough(self, box: Sequence[float]) -> bool:
        return max(box[2] - box[0], box[3] - box[1]) >= self.min_face


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


def cluster_tracks(
    summary: dict,
    *,
    people: int | None = None,
    threshold: float = THRESHOLD,
    loose: float = LOOSE,
    same: Sequence[Sequence[int]] = (),
    apart: Sequence[Sequence[int]] = (),
    cohort: bool = True,
) -> dict[int, tuple[int, float]]:
    """Track id -> (person, confidence) for the whole video (``summary``:
    :meth:`PersonTracker.summary`). Tracks with embeddings are merged by average linkage
    while the nearest two groups are closer than ``threshold`` (or, with ``people``, until
    that many groups are left), never two groups with tracks seen in the same frame; then two
    groups never seen together are joined when each is the other's nearest group and they
    are closer than ``loose`` (``loose=0`` turns this off). A track without a usable
    embedding stays its own person (confidence NaN). People are numbered 0, 1, ... in order
    of first appearance. Distances are read against the cohort (:func:`cohort_scale`;
    ``cohort=False``: raw Euclidean distances).

    A person's word comes first: each set of tracks in ``same`` is one person from the start,
    and the two tracks of each pair in ``apart`` are never one person (nor anybody one of
    them is the same as). Raises ValueError for a track the summary does not know, for one
    person seen twice in a frame, or for two tracks both apart and the same."""
    tracks = {int(k): v for k, v in summary["tracks"].items()}
    unit = _units(tracks, summary["cooccur"], same, apart)
    known = sorted(t for t, v in tracks.items() if v["samples"])
    out: dict[int, float] = {}
    found: list[list[int]] = []
    if known:
        means = [np.mean(np.asarray(tracks[t]["samples"], np.float64), 0) for t in known]
        cannot = [(unit[int(a)], unit[int(b)]) for a, b in [*summary["cooccur"], *apart]]
        means = np.stack(means)
        scale = cohort_scale(means) if cohort else None
        groups = _Groups(known, means, cannot, unit, scale)
        groups.agglomerate(threshold if people is None else math.inf, people or 1)
        if people is None and loose > 0:
            groups.join_mutual_nearest(loose)
        found = groups.members()
        out = groups.confidences()
    found = _with_unknown(found, [t for t in tracks if t not in out], unit)
    found.sort(key=lambda g: min(tracks[t]["first_t"] for t in g))
    return {t: (person, out.get(t, math.nan)) for person, group in enumerate(found) for t in group}


def _units(tracks: dict, cooccur, same, apart) -> dict[int, int]:
    """Each track's unit: the tracks a person said are one (``same``, sets joined where they
    share a track) share the smallest of their ids; checked against ``cooccur`` and
    ``apart``."""
    unit = {t: t for t in tracks}

    def root(t: int) -> int:
        if int(t) not in unit:
            raise ValueError(f"track {t} is not in this video")
        t = int(t)
        while unit[t] != t:
            t = unit[t]
        return t

    for group in same:
        for t in group[1:]:
            a, b = sorted((root(group[0]), root(t)))
            unit[b] = a
    for t in unit:
        unit[t] = root(t)
    for a, b in apart:
        if int(a) == int(b):
            raise ValueError(f"track {a} cannot be apart from itself")
    for pairs, why in ((cooccur, "seen in the same frame"), (apart, "asked to be apart")):
        for a, b in pairs:
            if root(a) == root(b) and int(a) != int(b):
                raise ValueError(f"tracks {a} and {b} are {why}: they cannot be one person")
    return unit


def _with_unknown(found: list[list[int]], unknown: list[int], unit: dict[int, int]):
    """The groups of tracks with embeddings, and the tracks without: each joins the group of
    its unit (a person said it is one of theirs) or stays apart with its unit's others."""
    where = {unit[t]: k for k, group in enumerate(found) for t in group}
    alone: dict[int, list[int]] = {}
    for t in unknown:
        if unit[t] in where:
            found[where[unit[t]]].append(t)
        else:
            alone.setdefault(unit[t], []).append(t)
    return found + list(alone.values())


class _Groups:
    """Tracks grouped into people, with the average-linkage distance between any two groups
    (sums of their tracks' distances are kept, so a merge costs one row, not a pass over
    every pair: 3,000 tracks take about a second, and 8 bytes and a flag per pair of tracks)
    and whether any two of their tracks were seen in the same frame."""

    def __init__(
        self,
        known: list[int],
        means: np.ndarray,
        cannot,
        unit: dict[int, int] | None = None,
        scale: np.ndarray | None = None,
    ) -> None:
        """``cannot``: pairs of units never one person (seen together, or said apart);
        ``unit``: each track's unit (tracks said to be one person), by default itself;
        ``scale``: each track's :func:`cohort_scale` (None: raw distances)."""
        self.known, self.means, n = known, means, len(known)
        self.root = np.ones(n) if scale is None else np.sqrt(scale)
        unit = unit or {t: t for t in known}
        at: dict[int, list[int]] = {}
        for k, t in enumerate(known):
            at.setdefault(unit[t], []).append(k)
        self.seen = np.eye(n, dtype=bool)
        for a, b in cannot:
            if int(a) in at and int(b) in at:
                self.seen[np.ix_(at[int(a)], at[int(b)])] = True
                self.seen[np.ix_(at[int(b)], at[int(a)])] = True
        self.sums, self.size = self.distances(slice(None)), np.ones(n)
        self.alive = np.ones(n, bool)
        self.groups = [[k] for k in range(n)]
        for ks in at.values():  # what a person said is one, first
            for k in ks[1:]:
                self.merge(ks[0], k)

    def distances(self, rows: slice) -> np.ndarray:
        """Distances from the tracks ``rows`` to every track (Euclidean, times the square
        roots of their scales)."""
        a, b = self.means[rows], self.means
        d = np.sqrt(_squared_distances(a, b, (b * b).sum(1)))
        d *= self.root[rows][:, None] * self.root[None, :]
        d[np.arange(len(a)), np.arange(len(b))[rows]] = 0.0
        return d

    def linkage(self, k: int) -> np.ndarray:
        """Group k's average-linkage distance to every group (inf: itself, gone)."""
        row = self.sums[k] / (self.size[k] * self.size)
        row[~self.alive] = np.inf
        row[k] = np.inf
        return row

    def merge(self, i: int, j: int) -> None:
        self.sums[i] += self.sums[j]
        self.sums[:, i] = self.sums[i]
        self.seen[i] |= self.seen[j]
        self.seen[:, i] = self.seen[i]
        self.size[i] += self.size[j]
        self.alive[j] = False
        self.groups[i] += self.groups[j]
        self.groups[j] = []

    def _nearest(self, masked: bool) -> tuple[np.ndarray, np.ndarray, object]:
        """Each group's nearest group and its distance (``masked``: among the groups it may
        join, else among all), and a function that works a row out again."""
        n = len(self.known)
        best, arg = np.full(n, np.inf), np.zeros(n, int)

        def refresh(k: int) -> None:
            row = self.linkage(k)
            if masked:
                row[self.seen[k]] = np.inf
            arg[k] = int(np.argmin(row))
            best[k] = row[arg[k]]

        for k in np.flatnonzero(self.alive):
            refresh(int(k))
        return best, arg, refresh

    def _merge_and_refresh(self, i: int, j: int, best, arg, refresh) -> None:
        self.merge(i, j)
        best[j] = np.inf
        # a merged group is no nearer to anyone than the nearer of its two parts, so only
        # the rows that pointed at them look again
        for k in np.flatnonzero(self.alive & ((arg == i) | (arg == j))):
            refresh(int(k))
        refresh(i)

    def agglomerate(self, threshold: float, fewest: int) -> None:
        """Merge the nearest two groups never seen together while closer than ``threshold``
        and more than ``fewest`` groups are left."""
        best, arg, refresh = self._nearest(masked=True)
        while self.alive.sum() > fewest:
            i = int(np.argmin(best))
            if not best[i] < threshold:
                break
            i, j = sorted((i, int(arg[i])))
            self._merge_and_refresh(i, j, best, arg, refresh)

    def join_mutual_nearest(self, loose: float) -> None:
        """Join, one pair at a time (nearest first), two groups that may be one person, each
        the other's nearest group (any group of the video is a rival, even one seen with
        them) and closer than ``loose``: a return that lies beyond the threshold from its
        person but nearer to it than to anybody else in the video."""
        best, arg, refresh = self._nearest(masked=False)
        while self.alive.sum() > 2:
            ks = np.flatnonzero(self.alive)
            mates = arg[ks]
            ok = (best[ks] < loose) & (best[ks] <= best[mates]) & ~self.seen[ks, mates]
            if not ok.any():
                break
            k = int(ks[ok][np.argmin(best[ks][ok])])
            i, j = sorted((k, int(arg[k])))
            self._merge_and_refresh(i, j, best, arg, refresh)

    def members(self) -> list[list[int]]:
        return [[self.known[k] for k in g] for g in self.groups if g]

    def confidences(self) -> dict[int, float]:
        """Each track's confidence: P(same) with the other tracks of its group (their mean
        distance), or, alone, 1 - P(same) with the nearest other group."""
        idx = np.flatnonzero(self.alive)
        member = np.zeros((len(idx), len(self.known)))
        for r, k in enumerate(idx):
            member[r, self.groups[k]] = 1.0
        size = member.sum(1)
        # each track's mean distance to each group, a block of tracks at a time
        n, step = len(self.known), 1024
        to_group = (
            np.concatenate(
                [self.distances(slice(a, a + step)) @ member.T for a in range(0, n, step)]
            )
            / size
        )
        out = {}
        for r, k in enumerate(idx):
            for p in self.groups[k]:
                if size[r] > 1:
                    conf = same_probability(to_group[p, r] * size[r] / (size[r] - 1))
                elif len(idx) > 1:
                    conf = 1 - same_probability(np.delete(to_group[p], r).min())
                else:
                    conf = 1.0
                out[self.known[p]] = float(conf)
        return out


def join_summaries(
    summaries: Sequence[dict | None],
    mappings: Sequence[dict[str, int]],
    seen: dict[int, tuple[float, float]],
) -> dict:
    """One summary for consecutive parts of a video: each part's tracks renamed by its
    ``mappings`` (its ids -> the stitched ids; a track continued across a cut joins the
    one before), co-occurrences kept; tracks of the stitched table (``seen``: id -> first
    and last time) that no summary knows get no embedding (each its own person)."""
    tracks: dict[int, dict] = {}
    cooccur: set[tuple[int, int]] = set()
    for summary, mapping in zip(summaries, mappings):
        if not summary:
            continue
        for tid, tr in summary["tracks"].items():
            g = mapping.get(str(tid))
            if g is None:
                continue
            cur = tracks.setdefault(g, {**tr, "samples": []})
            cur["first_t"] = min(cur["first_t"], tr["first_t"])
            cur["last_t"] = max(cur["last_t"], tr["last_t"])
            cur["samples"] = cur["samples"] + list(tr["samples"])
        for a, b in summary["cooccur"]:
            ga, gb = mapping.get(str(a)), mapping.get(str(b))
            if ga is not None and gb is not None and ga != gb:
                cooccur.add((min(ga, gb), max(ga, gb)))
    for tid, (first, last) in seen.items():
        tracks.setdefault(tid, {"first_t": first, "last_t": last, "person": -1, "samples": []})
    return {
        "tracks": {str(k): v for k, v in tracks.items()},
        "cooccur": sorted([a, b] for a, b in cooccur),
        "next_person": 0,
    }
