"""The identity kept beside a video table (``VIDEO.fervid.identity.json``): each track's
embeddings, the pairs of tracks seen in the same frame, the range analysed, the number of people
asked for and a person's corrections, for ``fervid regroup``."""

from __future__ import annotations

import json
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
) -> None:
    """Keep a video's identity (``summary``: :meth:`fervid.identity.tracker.PersonTracker.summary`)
    with the range analysed, the number of people asked for and the corrections (tracks)."""
    d = {
        JSON_MARK: IDENTITY_MARK,
        "version": IDENTITY_VERSION,
        "video": os.path.basename(os.fsdecode(video)),
        "start": start,
        "end": end,
        "people": people,
        "same": [sorted(int(t) for t in g) for g in same],
        "apart": [[int(a), int(b)] for a, b in apart],
        "tracks": summary["tracks"],
        "cooccur": summary["cooccur"],
    }
    write_text_atomic(path, json.dumps(d))


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
    return d
