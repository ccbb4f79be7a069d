"""A track parted where a user says it holds two people (``fervid regroup --apart P@S1,P@S2``
with both times in one track): where its face changes (:func:`find_cut`: between the two
times, the frame where the face's embedding changes most, read from the video's frames), the
identity with the track in two (:func:`parted_identity`), and the table's rows from the cut
on under a new track, their smoothing started afresh there (:func:`part_in_file`). Nothing
is carried across the cut: ``regroup`` makes the people, episodes and pictures again from
the parted table."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..rows import BOX, RowSchema, read_csv_chunks
from ..track import restart_smoothing
from .columns import rewrite_rows

#: Faces of the track embedded, spread over the two times, to find the change; a bisection
#: between the two faces on either side of it then finds its frame.
SCAN = 48
#: Embeddings kept for each part of the track (the tracker keeps as many).
KEEP = 4


@dataclass(frozen=True)
class Part:
    """Track ``track`` parted: from ``cut`` (seconds: its first row of the second part) on it
    is track ``new``; ``change``: the distance between the two parts' mean embeddings where
    the cut was found on the video (None: where the user said, not measured)."""

    track: int
    new: int
    cut: float
    change: float | None = None

    def __str__(self) -> str:
        how = "" if self.change is None else f", the faces either side {self.change:.2f} apart"
        return f"track {self.track} parted at {self.cut:.2f} s (track {self.new} from there{how})"


def track_rows(table: str | Path, track: int, chunk_rows: int = 200_000) -> pd.DataFrame:
    """Every row of one track, all columns, in time order (read in chunks)."""
    found = [p[p["face"] == track] for p in read_csv_chunks(table, chunk_rows)]
    rows = pd.concat(found) if found else pd.DataFrame()
    return rows.sort_values("time_s", kind="stable").reset_index(drop=True)


def part_tracks(table: Path, ident: dict, requests, *, video, cut: float | None):
    """The identity with each requested track ((track, first time, second time)) parted, and
    the :class:`Part` s: at ``cut`` seconds, or where the face changes most between the two
    times, found on the ``video``'s frames. ValueError (one line) where it cannot be."""
    parts, new, embedder = [], max(int(t) for t in ident["tracks"]) + 1, None
    for track, lo, hi in requests:
        if video is not None and embedder is None:
            from .embedder import FaceEmbedder  # PyTorch: only to embed faces

            embedder = FaceEmbedder()
        rows = track_rows(table, track)
        at, (vecs, sharp), change = _where(table, rows, track, lo, hi, video, cut, embedder)
        own = ident["tracks"][str(track)]
        if video is None and len(own.get("sample_t", [])) != len(own["samples"]):
            raise ValueError(
                f"{table}: its identity was kept before embeddings had times; give the video "
                "(--video PATH) to embed the two parts"
            )
        part = Part(track, new, float(rows["time_s"].iloc[at]), change)
        samples = part_samples(own, rows, at, {k: v for k, v in vecs.items() if k in sharp})
        ident = parted_identity(ident, part, rows, at, samples, partners(table, rows, at))
        parts.append(part)
        new += 1
    return ident, parts


def _where(table, rows: pd.DataFrame, track: int, lo: float, hi: float, video, cut, embedder):
    """Where a track is parted (its first row of the second part), the embeddings read (and
    which of them are sharp), and the distance between the two parts' (None where the user
    said where)."""
    times = rows["time_s"].to_numpy(np.float64)
    if cut is not None:
        if not lo < cut <= hi:
            raise ValueError(f"--cut {cut:g}: not between the two times given, {lo:g} and {hi:g} s")
        at = int(np.searchsorted(times, cut - 1e-9))
        found = spread_embeddings(video, rows, lo, hi, embedder) if video else ({}, set())
        change = None
    elif video is None:
        raise ValueError(
            f"{table}: to find where track {track} changes, the video is needed: give it with "
            "--video PATH, or say where with --cut SECONDS"
        )
    else:
        at, *found = find_cut(video, rows, lo, hi, embedder)
        change = _change_size(found[0], at)
    if not 0 < at < len(times):
        raise ValueError(f"track {track} has no row on one side of {float(cut or lo):g} s")
    return at, tuple(found), change


def _change_size(vecs: dict, at: int) -> float | None:
    """The distance between the mean embeddings before row ``at`` and from it on."""
    before = [v for k, v in vecs.items() if k < at]
    after = [v for k, v in vecs.items() if k >= at]
    if not before or not after:
        return None
    return round(float(np.linalg.norm(np.mean(before, 0) - np.mean(after, 0))), 3)


def find_cut(video, rows: pd.DataFrame, lo: float, hi: float, embedder):
    """The row of ``rows`` (one track's, in time order) where its face changes most between
    seconds ``lo`` and ``hi``: the first row of the second person; and the embeddings read on
    the way (row -> vector) and which of them are sharp (:func:`embed_rows`). ValueError (one
    line) when fewer than two faces between the two times could be embedded (too small, or
    frames that cannot be read)."""
    vecs, sharp = spread_embeddings(video, rows, lo, hi, embedder)
    known = sorted(vecs)
    if len(known) < 2:
        raise ValueError(
            f"the face between {lo:g} s and {hi:g} s could not be seen well enough to find "
            "where it changes: say where with --cut SECONDS"
        )
    split = change_point(np.stack([vecs[k] for k in known]))
    first = np.mean([vecs[k] for k in known[:split]], 0)
    second = np.mean([vecs[k] for k in known[split:]], 0)
    a, b = known[split - 1], known[split]
    while b - a > 1:
        mid = (a + b) // 2
        near = [k for k in (mid, mid - 1, mid + 1) if a < k < b]
        got, got_sharp = embed_rows(video, rows, near, embedder)
        sharp |= got_sharp
        if not got:
            break  # no face between them can be read: the cut goes on the later known one
        k = min(got, key=lambda j: abs(j - mid))
        vecs[k] = got[k]
        if np.linalg.norm(got[k] - first) <= np.linalg.norm(got[k] - second):
            a = k
        else:
            b = k
    return b, vecs, sharp


def spread_embeddings(video, rows: pd.DataFrame, lo: float, hi: float, embedder):
    """:func:`embed_rows` for :data:`SCAN` faces of ``rows`` spread from second ``lo`` to
    ``hi``."""
    inside = np.flatnonzero((rows["time_s"] >= lo - 1e-6) & (rows["time_s"] <= hi + 1e-6))
    if not len(inside):
        return {}, set()
    spread = np.unique(np.linspace(0, len(inside) - 1, SCAN).round().astype(int))
    return embed_rows(video, rows, [int(inside[k]) for k in spread], embedder)


def change_point(vecs: np.ndarray) -> int:
    """Where a sequence of embeddings (N >= 2, in time order) changes most: the ``i`` in
    1..N-1 that makes the two sides' means farthest apart, weighted by their sizes
    (``i (N - i) / N`` times the squared distance, as a two-segment least-squares fit)."""
    n = len(vecs)
    sums = np.cumsum(vecs, 0)
    i = np.arange(1, n)
    left = sums[:-1] / i[:, None]
    right = (sums[-1] - sums[:-1]) / (n - i)[:, None]
    gain = i * (n - i) / n * ((left - right) ** 2).sum(1)
    return int(np.argmax(gain)) + 1


def embed_rows(video, rows: pd.DataFrame, which: Sequence[int], embedder) -> tuple[dict, set]:
    """The embeddings of the faces of ``rows`` numbered ``which``, from the video's frames at
    their times (row -> vector; a face too small for one, or on a frame that cannot be read,
    left out), and the rows whose faces are sharp enough to be kept as a track's embeddings
    (a blurred or dark face still tells where the face changes: in dark footage it may be
    all there is). ``embedder``: a :class:`~fervid.identity.embedder.FaceEmbedder`."""
    from ..video import frames_at  # decoding only here: the rest reads tables

    frames = frames_at(video, [float(rows["time_s"].iloc[k]) for k in which])
    chips, keys, sharp = [], [], set()
    for k in which:
        image = frames.get(float(rows["time_s"].iloc[k]))
        box = rows.iloc[k][list(BOX)].to_numpy(np.float64)
        if image is None or not embedder.big_enough(box):
            continue
        chip = embedder.chips(image, box[None])[0]
        chips.append(chip)
        keys.append(k)
        if embedder.sharpness(chip) >= embedder.min_sharpness:
            sharp.add(k)
    return dict(zip(keys, embedder.embed_chips(chips))), sharp


def part_samples(track: dict, rows: pd.DataFrame, cut: int, vecs: dict) -> tuple[dict, dict]:
    """Each part's embeddings and their times: those read on the video (``vecs``, by row),
    and the track's own whose times say which part they are in; at most :data:`KEEP` each,
    spread over the part."""
    times = rows["time_s"].to_numpy(np.float64)
    pairs = [(float(times[k]), list(map(float, v))) for k, v in vecs.items()]
    own_t = track.get("sample_t", [])
    if len(own_t) == len(track["samples"]):
        pairs += list(zip(map(float, own_t), track["samples"]))
    at = float(times[cut])
    sides = ([p for p in pairs if p[0] < at], [p for p in pairs if p[0] >= at])
    out = []
    for side in sides:
        side.sort(key=lambda p: p[0])
        pick = np.unique(np.linspace(0, len(side) - 1, KEEP).round().astype(int)) if side else []
        chosen = [side[k] for k in pick]
        out.append({
            "samples": [[round(x, 5) for x in v] for _, v in chosen],
            "sample_t": [round(t, 6) for t, _ in chosen],
        })  # fmt: skip
    return out[0], out[1]


def partners(table: str | Path, rows: pd.DataFrame, cut: int, chunk_rows: int = 200_000):
    """The tracks seen on the same frames as the track before its cut, and after it."""
    frames = rows["frame"].to_numpy()
    before, after = set(frames[:cut].tolist()), set(frames[cut:].tolist())
    seen: tuple[set, set] = (set(), set())
    for part in read_csv_chunks(table, chunk_rows, usecols=["frame", "face"]):
        part = part.dropna(subset=["face"])
        for frames_of, found in zip((before, after), seen):
            found.update(part["face"][part["frame"].isin(frames_of)].astype(int).tolist())
    track = int(rows["face"].iloc[0])
    return seen[0] - {track}, seen[1] - {track}


def parted_identity(ident: dict, part: Part, rows, cut: int, samples, seen) -> dict:
    """A copy of the identity with ``part.track`` in two: its first part keeps the id, the
    second is ``part.new``; each part with its embeddings (``samples``: two dicts, from
    :func:`part_samples`) and its first and last times, the pairs seen together each on the
    part they were seen with (``seen``: from :func:`partners`), the two parts apart."""
    out = copy.deepcopy(ident)
    times = rows["time_s"].to_numpy(np.float64)
    tracks, old = out["tracks"], str(part.track)
    first = {**tracks[old], **samples[0], "last_t": float(times[cut - 1])}
    second = {**tracks[old], **samples[1], "first_t": float(times[cut]), "person": -1}
    tracks[old], tracks[str(part.new)] = first, second
    pairs = {tuple(sorted(map(int, p))) for p in out["cooccur"] if part.track not in p}
    pairs |= {tuple(sorted((part.track, o))) for o in seen[0]}
    pairs |= {tuple(sorted((part.new, o))) for o in seen[1]}
    out["cooccur"] = sorted(list(p) for p in pairs)
    return out


def part_in_file(table: Path, part: Part, smooth: float | None) -> bool:
    """The table's rows of ``part.track`` from ``part.cut`` on given to ``part.new``, their
    probabilities (and emotion, confidence) smoothed afresh from the cut when the run's time
    constant ``smooth`` is known; streamed, the table replaced at once. Done already (no
    row of the track from the cut on): nothing changes. Whether anything did."""
    rows = track_rows(table, part.track)
    after = np.flatnonzero(rows["time_s"].to_numpy(np.float64) >= part.cut - 1e-9)
    if not len(after):
        return False
    schema = RowSchema.of_file(table)
    fresh = _fresh_probs(rows, int(after[0]), schema, smooth or 0.0)
    face, frame, time_s = (schema.index(k) for k in ("face", "frame", "time_s"))
    first = schema.index("score") + 1
    emotion, confidence = schema.index("emotion"), schema.index("confidence")

    def change(block: list[list]) -> bool:
        done = False
        for r in block:
            if r[face] != str(part.track) or float(r[time_s]) < part.cut - 1e-9:
                continue
            r[face], done = str(part.new), True
            p = fresh.get(int(r[frame]))
            if p is not None:
                r[first : first + len(p)] = [round(float(v), 5) for v in p]
                r[emotion] = schema.classes[int(np.argmax(p))]
                r[confidence] = round(float(np.max(p)), 5)
        return done

    return rewrite_rows(table, change)


def _fresh_probs(rows: pd.DataFrame, cut: int, schema: RowSchema, smooth: float) -> dict:
    """Frame -> the probabilities of the track's rows from ``cut`` on, smoothed as if the
    track began there; only the rows that change (the smoothing's memory fades)."""
    probs = rows[list(schema.classes)].to_numpy(np.float64)
    ok = np.isfinite(probs).all(1)
    if smooth <= 0 or not ok[cut] or cut == 0 or not ok[cut - 1]:
        return {}
    keep = np.flatnonzero(ok)
    start = int(np.searchsorted(keep, cut))
    fresh = restart_smoothing(rows["time_s"].to_numpy()[keep], probs[keep], start, smooth)
    frames = rows["frame"].to_numpy()[keep][start:]
    moved = np.abs(fresh - probs[keep][start:]).max(1) >= 5e-6
    return {int(f): p for f, p, m in zip(frames, fresh, moved) if m and math.isfinite(p.sum())}
