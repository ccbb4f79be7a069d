"""The identity kept beside a video table (``VIDEO.fervid.identity.json``): each track's
embeddings, the pairs of tracks seen in the same frame, the range analysed, the number of people
asked for and a person's corrections, for ``fervid regroup``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..outputs import JSON_MARK, is_fervid_json, write_text_atomic

IDENTITY_VERSION = 1
#: What marks an identity file (its ``written_by``).
IDENTITY_MARK = "fervid identity"


def identity_path_of(table: str | os.PathLike) -> Path:
    """Where a video table's identity is kept: ``clip.fervid.csv`` ->
    ``clip.fervid.identity.json``."""
    table = Path(table)
    return table.with_name(table.stem + ".identity.json")


def is_identity_file(path: Path) -> bool:
    """An identity file fervid wrote."""
    if not is_fervid_json(path):
        return False
    return json.loads(Path(path).read_text(encoding="utf-8")).get(JSON_MARK) == IDENTITY_MARK


def write_identity(
    path: str | os.PathLike,
    summary: dict,
    *,
    video: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    people: int | None = None,
    same: Sequence[Sequence[int]] = (),
    apart: Sequence[Sequence[int]] = (),
    smooth: float | None = None,
) -> None:
    """Keep a video's identity (``summary``: :meth:`fervid.identity.tracker.PersonTracker.summary`)
    with the range analysed, the number of people asked for, the corrections (tracks) and
    the time constant the probabilities were smoothed with (``smooth``, seconds: a track
    parted later starts its smoothing afresh)."""
    d = {
        JSON_MARK: IDENTITY_MARK,
        "version": IDENTITY_VERSION,
        "video": os.path.basename(os.fsdecode(video)),
        "start": start,
        "end": end,
        "people": people,
        "same": [sorted(int(t) for t in g) for g in same],
        "apart": [[int(a), int(b)] for a, b in apart],
        "smooth": smooth,
        "tracks": summary["tracks"],
        "cooccur": summary["cooccur"],
    }
    write_text_atomic(path, json.dumps(d))


def run_settings(options) -> dict:
    """What :func:`write_identity` keeps of a run's :class:`~fervid.options.VideoOptions`."""
    keys = ("start", "end", "people", "smooth")
    return {k: getattr(options, k) for k in keys}


def read_identity(path: str | os.PathLike) -> dict:
    """An identity file, or ValueError (one line) when it is missing or not one."""
    path = Path(path)
    if not path.exists():
        raise ValueError(
            f"{path}: not found; the people of a video can be chosen again only after a run "
            "that kept them (fervid annotate with re-identification, CSV table): annotate it again"
        )
    if not is_identity_file(path):
        raise ValueError(f"{path}: not an identity file fervid wrote")
    d = json.loads(path.read_text(encoding="utf-8"))
    if d.get("version") != IDENTITY_VERSION:
        raise ValueError(f"{path}: identity version {d.get('version')} is not {IDENTITY_VERSION}")
    why = _damage(d)
    if why:
        raise ValueError(f"{path}: a damaged identity file ({why}); annotate the video again")
    return d


def _damage(d: dict) -> str | None:
    """What is wrong with an identity file's contents, or None: every field of the type it
    must have, every embedding 128 finite numbers, every track named by a pair known."""
    if not isinstance(d.get("video"), str):
        return "no video name"
    for key in ("start", "end"):
        v = d.get(key)
        if v is not None and not (_number(v) and math.isfinite(v) and v >= 0):
            return f"{key} is not a time"
    if d.get("people") is not None and not (_integer(d["people"]) and d["people"] >= 0):
        return "people is not a count"
    smooth = d.get("smooth")
    if smooth is not None and not (_number(smooth) and math.isfinite(smooth) and smooth >= 0):
        return "smooth is not a time"
    tracks = d.get("tracks")
    if not isinstance(tracks, dict):
        return "no tracks"
    for tid, tr in tracks.items():
        why = _track_damage(tid, tr)
        if why:
            return why
    known = {int(t) for t in tracks}
    for key, size in (("cooccur", 2), ("apart", 2), ("same", None)):
        groups = d.get(key)
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
            return f"{key} is not a list of tracks"
        for g in groups:
            if (size and len(g) != size) or not all(_integer(t) and t in known for t in g):
                return f"{key} names a track it does not have: {g}"
    return None


def _track_damage(tid, tr) -> str | None:
    if not (isinstance(tid, str) and tid.isdigit() and isinstance(tr, dict)):
        return f"track {tid!r} is not a track"
    if not all(_number(tr.get(k)) and math.isfinite(tr[k]) for k in ("first_t", "last_t")):
        return f"track {tid}: no first or last time"
    samples = tr.get("samples")
    if not isinstance(samples, list):
        return f"track {tid}: no embeddings"
    for v in samples:
        if not (isinstance(v, list) and len(v) == 128 and all(_number(x) for x in v)):
            return f"track {tid}: an embedding is not 128 numbers"
        if not all(math.isfinite(x) for x in v):
            return f"track {tid}: an embedding is not finite"
    times = tr.get("sample_t", [])
    if not (isinstance(times, list) and all(_number(t) and math.isfinite(t) for t in times)):
        return f"track {tid}: the embeddings' times are not times"
    return None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
