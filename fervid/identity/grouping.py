"""The whole-video pass (:func:`cluster_tracks`): tracks merged into people by average
linkage on their embeddings, never two tracks seen in the same frame, stopping at the distance
threshold or, when the number of people is known, at that number; then mutual nearest groups
joined; people numbered in order of first appearance; each track's confidence from the
distance to its own people or to the nearest other. And the identities of a video's parts
joined into one (:func:`join_summaries`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .distance import LOOSE, THRESHOLD, cohort_scale, same_probability, squared_distances

#: A joined track's confidence is P(same) at this quantile of its distances to its person's
#: other tracks: on bench/identity.py's simulated videos (the half of the people it was
#: chosen on / the other half) wrong joins read under 0.8 in 54% / 76% of cases and right
#: ones in 2.3% / 2.8%, where the mean distance flagged 21% / 29% of wrong joins (the
#: maximum: 80% / 89%, right 4.0% / 5.4%, and it would fall on every track of a person seen
#: in many tracks; docs/identity.md).
JOIN_QUANTILE = 0.75


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

    def distances(self, rows, cols=slice(None)) -> np.ndarray:
        """Distances from the tracks ``rows`` to the tracks ``cols`` (every track by default;
        Euclidean, times the square roots of their scales; a track's to itself 0)."""
        a, b = self.means[rows], self.means[cols]
        d = np.sqrt(squared_distances(a, b, (b * b).sum(1)))
        d *= self.root[rows][:, None] * self.root[cols][None, :]
        index = np.arange(len(self.known))
        d[np.equal.outer(index[rows], index[cols])] = 0.0
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
        """Each track's confidence: P(same) with the other tracks of its group, at the upper
        quartile of its distances to them (:data:`JOIN_QUANTILE`: a track joined on a weak
        match, near some of its person's tracks and far from others, reads low), or, alone,
        1 - P(same) with the nearest other group (mean distance)."""
        idx = np.flatnonzero(self.alive)
        member = np.zeros((len(idx), len(self.known)))
        for r, k in enumerate(idx):
            member[r, self.groups[k]] = 1.0
        size = member.sum(1)
        out = {}
        for r, k in enumerate(idx):
            members = np.asarray(self.groups[k])
            if size[r] > 1:  # P(same) at the upper quartile of its distances to the others
                d = self.distances(members, members)
                d = d[~np.eye(len(members), dtype=bool)].reshape(len(members), -1)
                conf = same_probability(np.quantile(d, JOIN_QUANTILE, axis=1))
                out.update({self.known[p]: float(c) for p, c in zip(members, conf)})
        # a track alone: its mean distance to each other group, a block of tracks at a time
        alone = [(r, self.groups[k][0]) for r, k in enumerate(idx) if size[r] == 1]
        for a in range(0, len(alone), 1024):
            block = alone[a : a + 1024]
            to_group = self.distances(np.array([p for _, p in block])) @ member.T / size
            for (r, p), row in zip(block, to_group):
                rival = np.delete(row, r).min() if len(idx) > 1 else np.inf
                out[self.known[p]] = float(1 - same_probability(rival))
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
            cur = tracks.setdefault(g, {**tr, "samples": [], "sample_t": []})
            cur["first_t"] = min(cur["first_t"], tr["first_t"])
            cur["last_t"] = max(cur["last_t"], tr["last_t"])
            cur["samples"] = cur["samples"] + list(tr["samples"])
            cur["sample_t"] = cur.get("sample_t", []) + list(tr.get("sample_t", []))
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
