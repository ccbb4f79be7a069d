"""What a researcher takes away from a video's rows: one row per person (:func:`people`) and
the emotion episodes of each person (:func:`episodes`), read from a fervid video table (a
DataFrame, or a CSV streamed in chunks: memory flat for any length).

An episode is a maximal stretch where one emotion holds for one person, found on the
(smoothed) probabilities with hysteresis: it starts when the emotion's probability reaches
``enter`` (and is the highest), goes on while it stays at or above ``exit``, bridges gaps (the
probability below ``exit``, or the person out of sight) of at most ``max_gap`` seconds, ends
when another emotion reaches ``enter``, and is kept when it lasts at least ``min_duration``
seconds. One emotion holds at a time, so a person's episodes never overlap (one ELAN tier per
person). Each analysed frame stands for ``step`` seconds (the
time between analysed frames: ``every`` / fps), so that durations and seconds visible add up
with ``--every N``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from .face_pictures import best_of, candidate, keep_best
from .face_pose import looking_away
from .options import EpisodeOptions
from .rows import RowSchema, read_csv, read_csv_chunks

#: A track whose ``person_confidence`` is under this, in a person of two or more tracks, was
#: joined to that person on a weak match: the people table names the weakest (on the
#: simulated videos of bench/identity.py about 1% of right joins read under it; docs/identity.md).
WEAK_JOIN = 0.8

EPISODE_COLUMNS = [
    "person",
    "emotion",
    "start_s",
    "end_s",
    "duration_s",
    "peak",
    "peak_s",
    "mean",
]


@dataclass
class _Open:
    """An episode in progress."""

    emotion: int
    start: float
    last: float  # the last time at or above ``exit``
    peak: float
    peak_t: float
    total: float = 0.0
    n: int = 0


@dataclass
class _Person:
    """Running sums of one person's rows."""

    first: float
    last: float = 0.0
    rows: int = 0
    score: float = 0.0
    probs: np.ndarray | None = None
    top: np.ndarray | None = None
    tracks: set = field(default_factory=set)
    open: _Open | None = None
    seen: list = field(default_factory=list)  # [start, end] stretches in view
    #: looking away and speaking: (rows where it is known, rows where it is so)
    counts: dict = field(default_factory=lambda: {"away": [0, 0], "speaking": [0, 0]})
    marks: dict = field(default_factory=lambda: {"away": [], "speaking": []})  # stretches


class PeopleReader:
    """One pass over a video table's face rows, in time order: the people and their
    episodes. Feed it chunks (:meth:`add`), then :meth:`finish`."""

    def __init__(self, classes: tuple[str, ...], step: float, options: EpisodeOptions) -> None:
        self.classes, self.step, self.o = tuple(classes), float(step), options
        self.people: dict[int, _Person] = {}
        self.episodes: list[dict] = []
        # person -> track -> heap of face_pictures.Candidate (its best-looking rows, for its
        # picture), and person -> track -> rows
        self.by_track: dict[int, dict[int, list]] = {}
        self.track_rows: dict[int, dict[int, int]] = {}
        self.joins: dict[int, dict[int, tuple]] = {}  # person -> track -> (confidence, first t)
        wanted = [c for c in classes if options.neutral or c != "neutral"]
        self._watch = [self.classes.index(c) for c in wanted]

    def add(self, person, t, probs, score, track, boxes, conf=None, pose=None, talk=None):
        """Rows of a chunk, column by column (``conf``: ``person_confidence``; ``pose``:
        (N, 2) yaw and pitch; ``talk``: speaking; each None where the table has none)."""
        away = looking_away(pose[:, 0], pose[:, 1]) if pose is not None else None
        for k in range(len(person)):
            pid, tk, tr = int(person[k]), float(t[k]), int(track[k])
            posed = pose is not None and bool(np.isfinite(pose[k]).all())
            turned = posed and self._turned(pose[k])  # seen, but out of the episodes
            self._row(pid, tk, probs[k], float(score[k]), tr, episode=not turned)
            talking = float(talk[k]) if talk is not None else None
            self._measures(pid, tk, bool(away[k]) if posed else None, talking)
            self._add_track(pid, tk, tr, score[k], boxes[k], conf, k)

    def _add_track(self, pid: int, t: float, tr: int, score, box, conf, k: int) -> None:
        """A row's track: its weakest join, its best rows for the picture, its row count."""
        if conf is not None and conf[k] == conf[k]:  # not NaN
            joins = self.joins.setdefault(pid, {})
            if tr not in joins:
                joins[tr] = (float(conf[k]), t)
        heap = self.by_track.setdefault(pid, {}).setdefault(tr, [])
        keep_best(heap, candidate(score, box, t, tr))
        rows = self.track_rows.setdefault(pid, {})
        rows[tr] = rows.get(tr, 0) + 1

    def _turned(self, pose) -> bool:
        limit = self.o.max_turn
        return bool(limit > 0 and (abs(pose[0]) > limit or abs(pose[1]) > limit))

    def _measures(self, pid: int, t: float, away, talk) -> None:
        """Counts and stretches of looking away and speaking (None: not measured)."""
        s = self.people[pid]
        for name, on in (("away", away), ("speaking", talk)):
            if on is None or on != on:
                continue
            s.counts[name][0] += 1
            if on:
                s.counts[name][1] += 1
                self._extend(s.marks[name], t)

    def _extend(self, stretches: list, t: float) -> None:
        """A row at ``t`` added to stretches of time: the last one goes on when ``t`` is the
        next analysed frame, else a new one begins."""
        if stretches and t - stretches[-1][1] <= 0.5 * self.step + 1e-9:
            stretches[-1][1] = t + self.step
        else:
            stretches.append([t, t + self.step])

    def _row(self, pid, t: float, p: np.ndarray, score: float, track: int, episode=True) -> None:
        s = self.people.get(pid)
        if s is None:
            n = len(self.classes)
            s = self.people[pid] = _Person(t, probs=np.zeros(n), top=np.zeros(n, np.int64))
        self._extend(s.seen, t)
        s.last, s.rows, s.score = t, s.rows + 1, s.score + score
        s.probs += p
        s.top[int(np.argmax(p))] += 1
        s.tracks.add(track)
        if episode:
            self._episode(pid, s, t, p)

    def _episode(self, pid: int, s: _Person, t: float, p: np.ndarray) -> None:
        """One emotion holds at a time: an episode ends when its emotion stays under
        ``exit`` (or the person unseen) longer than ``max_gap``, or when another emotion
        reaches ``enter``."""
        o, ep = self.o, s.open
        if ep is not None and t - ep.last > o.max_gap + self.step + 1e-9:
            self._close(pid, ep, ep.last + self.step)
            ep = s.open = None
        c = self._watch[int(np.argmax(p[self._watch]))] if self._watch else -1
        if c >= 0 and p[c] >= o.enter and (ep is None or ep.emotion != c):
            if ep is not None:
                self._close(pid, ep, min(ep.last + self.step, t))
            s.open = _Open(c, t, t, float(p[c]), t, float(p[c]), 1)
        elif ep is not None and p[ep.emotion] >= o.exit:
            v = float(p[ep.emotion])
            ep.last, ep.total, ep.n = t, ep.total + v, ep.n + 1
            if v > ep.peak:
                ep.peak, ep.peak_t = v, t

    def _close(self, pid: int, ep: _Open, end: float) -> None:
        if end - ep.start + 1e-9 < self.o.min_duration:
            return
        self.episodes.append(
            {
                "person": pid,
                "emotion": self.classes[ep.emotion],
                "start_s": round(ep.start, 3),
                "end_s": round(end, 3),
                "duration_s": round(end - ep.start, 3),
                "peak": round(ep.peak, 4),
                "peak_s": round(ep.peak_t, 3),
                "mean": round(ep.total / ep.n, 4),
            }
        )

    def finish(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(people, episodes) as DataFrames; episodes still open at the end of the video
        end there."""
        for pid, s in self.people.items():
            if s.open is not None:
                self._close(pid, s.open, s.open.last + self.step)
                s.open = None
        eps = pd.DataFrame(self.episodes, columns=EPISODE_COLUMNS)
        eps = eps.sort_values(["person", "start_s", "emotion"], kind="stable")
        return self._people_frame(eps), eps.reset_index(drop=True)

    def seen(self) -> dict[int, list[list[float]]]:
        """Per person, the stretches of time in view: detected on consecutive analysed frames
        (a frame without the person ends one)."""
        return {
            pid: [[round(a, 3), round(b, 3)] for a, b in s.seen] for pid, s in self.people.items()
        }

    def _people_frame(self, eps: pd.DataFrame) -> pd.DataFrame:
        rows = []
        counts = eps.groupby(["person", "emotion"]).size() if len(eps) else pd.Series(dtype=int)
        for pid in sorted(self.people):
            s = self.people[pid]
            share = s.top / s.rows
            row = {
                "person": pid,
                "first_s": round(s.first, 3),
                "last_s": round(s.last + self.step, 3),
                "seconds_visible": round(s.rows * self.step, 3),
                "rows": s.rows,
                "tracks": len(s.tracks),
                **self._weakest(pid),
                "dominant": self.classes[int(np.argmax(s.top))],
                "mean_score": round(s.score / s.rows, 4),
                "share_looking_away": _share(*s.counts["away"]),
                "share_speaking": _share(*s.counts["speaking"]),
            }
            for k, c in enumerate(self.classes):
                row[f"share_{c}"] = round(float(share[k]), 4)
            for k, c in enumerate(self.classes):
                row[f"mean_{c}"] = round(float(s.probs[k] / s.rows), 4)
            for c in self.classes:
                row[f"episodes_{c}"] = int(counts.get((pid, c), 0))
            rows.append(row)
        return pd.DataFrame(rows, columns=people_columns(self.classes))

    def _weakest(self, pid: int) -> dict:
        """A person of two or more tracks: the lowest ``person_confidence`` of its tracks, and
        when that track begins (NaN for a person of one track, or none measured)."""
        joins = self.joins.get(pid, {})
        if len(self.people[pid].tracks) < 2 or not joins:
            return {"weakest_join": np.nan, "weakest_join_s": np.nan}
        conf, t = min(joins.values())
        return {"weakest_join": round(conf, 3), "weakest_join_s": round(t, 3)}


def _share(known: int, so: int) -> float:
    return round(so / known, 4) if known else np.nan


def people_columns(classes: Iterable[str]) -> list[str]:
    classes = list(classes)
    head = ["person", "first_s", "last_s", "seconds_visible", "rows", "tracks"]
    head += ["weakest_join", "weakest_join_s", "dominant"]
    return [
        *head,
        "mean_score",
        "share_looking_away",
        "share_speaking",
        *(f"share_{c}" for c in classes),
        *(f"mean_{c}" for c in classes),
        *(f"episodes_{c}" for c in classes),
    ]


def _chunks(table, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if isinstance(table, pd.DataFrame):
        yield table
        return
    yield from read_csv_chunks(table, chunk_rows)


def _who(columns) -> str:
    return "person" if "person" in columns else "face"


def frame_step(table, chunk_rows: int = 200_000) -> float:
    """The time between analysed frames: the median gap between consecutive analysed
    frames' times (``every`` / fps for a constant frame rate)."""
    times: list[float] = []
    for part in _chunks(table, chunk_rows):
        times.extend(part["time_s"].drop_duplicates().tolist())
        if len(times) > 5000:
            break
    t = np.unique(np.asarray(times, float))
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.04


class Takeaway(NamedTuple):
    """What :func:`read_people` finds: the people, their episodes, the stretches of time
    each person is in view, and the time between analysed frames."""

    people: pd.DataFrame
    episodes: pd.DataFrame
    seen: dict[int, list[list[float]]]
    step: float
    by_track: dict[int, dict[int, list]]  # person -> track -> its best rows (Candidate)
    track_rows: dict[int, dict[int, int]]  # person -> track -> rows
    #: person -> {"away": stretches looking away, "speaking": stretches speaking}
    marks: dict[int, dict[str, list]] = {}

    @property
    def candidates(self) -> dict[int, list]:
        """Each person's best rows of all its tracks (:class:`face_pictures.Candidate`)."""
        return {pid: best_of(heaps.values()) for pid, heaps in self.by_track.items()}


def read_people(
    table: pd.DataFrame | str | os.PathLike,
    *,
    options: EpisodeOptions | None = None,
    step: float | None = None,
    chunk_rows: int = 200_000,
) -> Takeaway:
    """People, episodes and time in view of a video table in one streamed pass (see
    :func:`people` and :func:`episodes`)."""
    schema = _schema(table)
    who = _who(schema.columns)
    step = frame_step(table) if step is None else step
    reader = PeopleReader(schema.classes, step, options or EpisodeOptions())
    for part in _chunks(table, chunk_rows):
        part = part.dropna(subset=["face"])
        reader.add(
            part[who].to_numpy(int),
            part["time_s"].to_numpy(float),
            part[list(schema.classes)].to_numpy(float),
            part["score"].to_numpy(float),
            part["face"].to_numpy(int),
            part[["x1", "y1", "x2", "y2"]].to_numpy(float),
            part["person_confidence"].to_numpy(float) if "person_confidence" in part else None,
            part[["yaw", "pitch"]].to_numpy(float) if "yaw" in part else None,
            part["speaking"].to_numpy(float) if "speaking" in part else None,
        )
    people_df, episodes_df = reader.finish()
    marks = {
        pid: {k: [[round(a, 3), round(b, 3)] for a, b in v] for k, v in p.marks.items()}
        for pid, p in reader.people.items()
    }
    return Takeaway(
        people_df, episodes_df, reader.seen(), step, reader.by_track, reader.track_rows, marks
    )


def _schema(table) -> RowSchema:
    if isinstance(table, pd.DataFrame):
        columns = list(table.columns)
        if "person" not in columns:  # a table from before re-identification
            columns = columns[:3] + ["person", "person_confidence"] + columns[3:]
        return RowSchema.from_header(columns)
    try:
        return RowSchema.of_file(table)
    except ValueError:
        header = list(read_csv(table, nrows=0).columns)
        return _schema(pd.DataFrame(columns=header))


def people(table: pd.DataFrame | str | os.PathLike, **kw) -> pd.DataFrame:
    """One row per person of a video table (a DataFrame or a CSV path): first and last seen
    (s), seconds visible, rows and tracks, the weakest join (of two or more tracks, the lowest
    ``person_confidence`` and when that track begins: under :data:`WEAK_JOIN`, check it), the
    dominant emotion, mean detector score, the
    share of visible time per emotion (the top class; the shares sum to 1), the mean
    probabilities, and the number of episodes per emotion. ``kw``: :func:`read_people`'s."""
    return read_people(table, **kw)[0]


def episodes(table: pd.DataFrame | str | os.PathLike, **kw) -> pd.DataFrame:
    """The emotion episodes of each person of a video table: ``person, emotion, start_s,
    end_s, duration_s, peak, peak_s, mean`` (see the module's description);
    ``options=EpisodeOptions(enter=..., exit=..., min_duration=..., max_gap=...,
    neutral=...)``."""
    return read_people(table, **kw)[1]
