"""A long video analysed in parts, made whole again: where the parts are cut
(:func:`split_ranges`), one table from the parts' tables with track ids continued across each
cut (:func:`stitch`), and the whole video's persons from the parts' identities
(:func:`persons_across_parts`). Plain files and data: no Ray needed, each step callable alone.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .identity.columns import persons_in_file
from .identity.grouping import cluster_tracks, join_summaries
from .identity.store import identity_path_of, read_identity, run_settings, write_identity
from .options import VideoOptions
from .outputs import atomic_path
from .rows import RowSchema
from .track import iou_matrix
from .video import VideoInfo

#: Seconds around a cut within which a part's track continues one of the part before.
CONTINUE_WINDOW = 2.0


def split_ranges(video: str | Path, options: VideoOptions, seconds: float | None) -> list[tuple]:
    """The time ranges a long video is cut into (one range when it is not cut)."""
    start, end = options.start, options.end
    if not seconds:
        return [(start, end)]

    duration = VideoInfo.from_path(video).duration_s
    lo, hi = start or 0.0, min(end, duration) if end is not None else duration
    if hi - lo < 1.5 * seconds:
        return [(start, end)]
    cuts = [lo + k * seconds for k in range(int((hi - lo) // seconds) + 1)]
    if hi - cuts[-1] < 0.5 * seconds:  # a short tail joins the part before it
        cuts = cuts[:-1]
    bounds = cuts + [end]
    return [(bounds[k] if k else start, bounds[k + 1]) for k in range(len(cuts))]


def part_path(table: Path, k: int) -> Path:
    return table.with_name(f"{table.name}.part{k}.csv")


def persons_across_parts(
    video, table: Path, identities: Sequence[dict | None], mappings, seen, options: VideoOptions
) -> None:
    """Persons for the whole stitched video: the parts' track identities joined (tracks
    continued across a cut are one track) and grouped once more, and kept beside the table
    (a part finished by an earlier run gives its identity from its file; a part without
    one keeps each of its tracks apart)."""
    summaries = []
    for k, summary in enumerate(identities):
        path = identity_path_of(part_path(table, k))
        if summary is None and path.exists():
            try:
                summary = read_identity(path)
            except ValueError:
                summary = None
        summaries.append(summary)
        path.unlink(missing_ok=True)
    merged = join_summaries(summaries, mappings, seen)
    persons_in_file(table, cluster_tracks(merged, people=options.people))
    if options.reid:
        write_identity(identity_path_of(table), merged, video=video, **run_settings(options))


def stitch(
    parts: Sequence[Path], out: Path, *, drop_parts: bool = False
) -> tuple[list[dict], dict[int, tuple[float, float]]]:
    """One table from the tables of consecutive parts of a video: rows in order, track ids
    continued across each cut (a face in the first analysed frame of a part takes the id of
    the track it overlaps most, at IoU >= 0.3, among the tracks seen in the last 2 s of the
    part before; the others get new ids). Returns, per part, its track ids (as written in
    it) -> the stitched ids; and each stitched track's first and last time seen."""
    # recent: global id -> (time, box) last seen; mappings: per part, its ids -> global ids;
    # seen: global id -> (first, last) time seen
    state = {"next_id": 0, "recent": {}, "mappings": [], "seen": {}}
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        for k, part in enumerate(parts):
            with open(part, newline="", encoding="utf-8") as pf:
                reader = csv.reader(pf)
                header = next(reader)
                if k == 0:
                    w.writerow(header)
                w.writerows(_continued(reader, RowSchema.from_header(header), state))
    if drop_parts:
        for part in parts:
            Path(part).unlink(missing_ok=True)
    return state["mappings"], state["seen"]


def _continued(reader, schema: RowSchema, state: dict):
    """A part's rows with their track ids continued from the parts before (``state``)."""
    face, time_s = schema.index("face"), schema.index("time_s")
    recent, head = state["recent"], []
    # the part's first seconds decide which ids continue; the rest is streamed
    for r in reader:
        head.append(r)
        if float(r[time_s]) - float(head[0][time_s]) > CONTINUE_WINDOW:
            break
    mapping = _continue_ids(head, recent, schema)
    state["mappings"].append(mapping)
    for r in itertools.chain(head, reader):
        if r[face] != "":
            if r[face] not in mapping:
                mapping[r[face]] = state["next_id"]
                state["next_id"] += 1
            r[face] = str(mapping[r[face]])
            gid, t = int(r[face]), float(r[time_s])
            recent[gid] = (t, schema.box(r))
            state["seen"][gid] = (state["seen"].get(gid, (t, t))[0], t)
        yield r
    state["next_id"] = max([state["next_id"], *(i + 1 for i in recent)])


def _continue_ids(
    rows: list[list[str]], recent: dict, schema: RowSchema, window: float = CONTINUE_WINDOW
) -> dict[str, int]:
    """A part's track ids -> the ids of the tracks from the part before that they continue:
    each of the part's tracks first seen in its first ``window`` seconds takes, at its first
    box, the best-overlapping (IoU >= 0.3) track seen in the ``window`` seconds before that,
    not yet taken."""
    if not rows or not recent:
        return {}
    face, time_s = schema.index("face"), schema.index("time_s")
    t_start = float(rows[0][time_s])
    firsts: dict[str, tuple[float, list[float]]] = {}
    for r in rows:
        if r[face] != "" and r[face] not in firsts:
            firsts[r[face]] = (float(r[time_s]), schema.box(r))
    mapping: dict[str, int] = {}
    for local, (t, box) in sorted(firsts.items(), key=lambda kv: kv[1][0]):
        if t - t_start > window:
            break
        live = [
            (i, b)
            for i, (tl, b) in recent.items()
            if t - tl <= window and i not in mapping.values()
        ]
        if not live:
            continue
        m = iou_matrix(np.array([b for _, b in live], np.float32), np.array([box], np.float32))
        if m.max() >= 0.3:
            mapping[local] = live[int(m[:, 0].argmax())][0]
    return mapping
