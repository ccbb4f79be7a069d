"""Distances between face descriptors, read against a cohort of other people's faces,
and the probability that two faces are one person: the numbers every part of identity shares."""

from __future__ import annotations

import functools
from importlib.resources import files

import numpy as np

#: Distance (read against the cohort, below) between two descriptors under which they are
#: taken as one person: 0.1% of different people's pairs fall under it (bench/identity.py,
#: the half of the people it is chosen on; docs/identity.md).
THRESHOLD = 0.55
#: The whole-video pass then joins two groups still apart, never seen together, when each is
#: the other's nearest group (any group, even one seen with it) and they are closer than
#: LOOSE: on simulated videos of the half of the people it was chosen on, people split
#: 6.8% -> 1.1%, wrong merges per video 0.0002 -> 0.0036 (docs/identity.md).
LOOSE = 0.62
#: Distance (read against the cohort) from a track's embeddings beyond which a new embedding
#: of its face is taken as someone else's, and the track is split there (a cut not seen, one
#: face taken for another). Chosen on long single-person tracks (no split) and faces swapped
#: in place (docs/identity.md).
JUMP = 0.65
#: The same, for a check made because the face changed abruptly (the box jumped, the size or
#: the look changed): on the shared real recordings no check of one person's face came
#: farther than 0.534 (bench/track_check.py); docs/identity.md.
JUMP_ABRUPT = 0.58
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


def same_probability(d: np.ndarray | float) -> np.ndarray:
    """P(same person) for descriptor distance ``d`` (the fitted logistic curve)."""
    z = np.clip((np.asarray(d, np.float64) - CONF_MID) / CONF_SCALE, -50, 50)
    return 1.0 / (1.0 + np.exp(z))


@functools.lru_cache(maxsize=1)
def _cohort() -> np.ndarray:

    with files("fervid.models").joinpath(COHORT_FILE).open("rb") as f:
        return np.load(f, allow_pickle=False).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _cohort_norms() -> np.ndarray:
    """The cohort's squared norms, worked out once (each new track's scale reads them)."""
    cohort = _cohort()
    return (cohort * cohort).sum(1)


def squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
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
        sq = squared_distances(x[a : a + 256], cohort, cc)
        near = np.partition(sq, COHORT_K - 1, axis=1)[:, :COHORT_K]
        out[a : a + 256] = COHORT_TYPICAL / np.sqrt(near).mean(1)
    return np.clip(out, *SCALE_BOUNDS)
