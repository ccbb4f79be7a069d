"""A finished video's people chosen again, without analysing it again (``fervid regroup``).

An ``annotate`` run keeps what it knew of who is who beside its table,
``VIDEO.fervid.identity.json``: each track's embeddings, the pairs of tracks seen in the same
frame, the number of people asked for, and the corrections given so far. From it
:func:`regroup_table` groups the tracks into people again
(:func:`fervid.identity.grouping.cluster_tracks`) with another number of people (``people``),
persons a person says are one (``same``) and tracks they say are two people (``apart``);
rewrites the table's ``person`` and ``person_confidence`` columns; draws the annotated video
again; and writes again the outputs made from the table (people, episodes, faces, plot, ELAN,
page) that exist (:func:`fervid.video_outputs.write_derived`). Corrections are
kept (as tracks) in the identity file, so that later runs build on them. :func:`regroup_frame`
does the same for the DataFrame of :func:`fervid.analyze_video` (its identity travels in
``df.attrs["fervid"]``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from .identity.columns import persons_in_file
from .identity.grouping import cluster_tracks
from .identity.store import identity_path_of, read_identity, write_identity
from .options import EpisodeOptions
from .outputs import OutputLock, may_replace
from .pipeline import render_from_rows
from .rows import RowSchema, read_csv_chunks
from .video import VideoInfo, VideoSink, is_fervid_video
from .video_outputs import DERIVED, KINDS, VideoOutputs, find_video, write_derived


def tracks_by_person(table: str | os.PathLike, chunk_rows: int = 200_000) -> dict:
    """Each person of a video table -> its tracks -> (first, last) time seen, read in chunks."""
    spans: dict[int, dict[int, list[float]]] = {}
    cols = ["time_s", "face", "person"]
    for part in read_csv_chunks(table, chunk_rows, usecols=cols):
        _add_spans(spans, part)
    return spans


def _add_spans(spans: dict, rows: pd.DataFrame) -> dict:
    rows = rows.dropna(subset=["face", "person"])
    grouped = rows.groupby(["person", "face"])["time_s"].agg(["min", "max"])
    for (p, t), (lo, hi) in grouped.iterrows():
        span = spans.setdefault(int(p), {}).setdefault(int(t), [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    return spans


def regroup_frame(
    df: pd.DataFrame,
    *,
    people: int | None = None,
    same: Sequence[Sequence[int]] = (),
    apart: Sequence[Sequence[int | str]] = (),
) -> pd.DataFrame:
    """:func:`fervid.analyze_video`'s DataFrame with its people chosen again, as
    :func:`regroup_table` chooses them for a table (from the identity in
    ``df.attrs["fervid"]``): a new DataFrame, ``person`` and ``person_confidence`` changed."""

    ident = getattr(df.attrs.get("fervid"), "identity", None)
    if not ident:
        raise ValueError(
            "this DataFrame holds no identity (not from analyze_video, or made with reid=False)"
        )
    spans = _add_spans({}, df)
    where = "the DataFrame"
    blank = {**ident, "same": [], "apart": [], "people": None}
    count, same_tracks, apart_pairs = _corrections(
        where, spans, blank, people=people, same=same, apart=apart, reset=True
    )
    persons = cluster_tracks(ident, people=count, same=same_tracks, apart=apart_pairs)
    out = df.copy()
    face = out["face"]
    known = face.notna()
    tracks = face[known].astype(int)
    out.loc[known, "person"] = tracks.map(lambda t: persons[t][0]).to_numpy()
    conf = tracks.map(lambda t: persons[t][1]).astype(float).round(3)
    out.loc[known, "person_confidence"] = conf.to_numpy()
    return out


def parse_face(text: str, spans: dict, table: Path | str) -> int:
    """A track named by a user: its id (the ``face`` column), or ``P@S``, the track of
    person P (``2`` or ``P2``, as the page and the video label it) seen at (or nearest to)
    second S."""
    text = text.strip()
    try:
        if "@" not in text:
            return int(text)
        p, s = text.split("@")
        person, at = int(p.removeprefix("P").removeprefix("p")), float(s)
    except ValueError:
        raise ValueError(
            f"{text!r}: not a track (a number from the face column, or P@SECONDS)"
        ) from None
    if person not in spans:
        raise ValueError(f"person {person} is not in {table}")

    def off(item) -> float:
        lo, hi = item[1]
        return max(lo - at, at - hi, 0.0)

    return int(min(spans[person].items(), key=off)[0])


def regroup_table(
    table: str | os.PathLike,
    *,
    people: int | None = None,
    same: Sequence[Sequence[int]] = (),
    apart: Sequence[Sequence[int | str]] = (),
    reset: bool = False,
    video: str | os.PathLike | None = None,
    options: EpisodeOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Choose a finished video's people again (see the module's text): ``people`` how many
    appear (0: not known), ``same`` sets of persons (the table's numbers now) that are one,
    ``apart`` sets of tracks (ids, or ``"P@S"``) that are each a different person; earlier
    corrections are kept unless ``reset``. Returns ``{"people": before, after, "written":
    {kind: path}}``. Raises ValueError (one line) for a table or identity fervid did not
    write, an unknown person or track, or corrections that contradict the video."""
    table = Path(table)
    RowSchema.of_file(table)  # a video table, or a one-line refusal
    ident_path = identity_path_of(table)
    ident = read_identity(ident_path)
    spans = tracks_by_person(table)
    _check_matches(table, spans, ident)
    count, same_tracks, apart_pairs = _corrections(
        table, spans, ident, people=people, same=same, apart=apart, reset=reset
    )
    persons = cluster_tracks(ident, people=count, same=same_tracks, apart=apart_pairs)
    video = _video_for(table, video)
    _check_outputs(table)
    with OutputLock(table):
        written = _rewrite(table, persons, video, ident, options, progress)
        kept = {k: ident[k] for k in ("video", "start", "end")}
        write_identity(ident_path, ident, **kept, people=count, same=same_tracks, apart=apart_pairs)
    written = {k: written[k] for k in KINDS if k in written}
    return {"people": (len(spans), len({p for p, _ in persons.values()})), "written": written}


def _corrections(table: Path | str, spans: dict, ident: dict, *, people, same, apart, reset):
    """(number of people or None, sets of tracks that are one, pairs of tracks apart): what
    the user says now, in tracks, added to what was said before (unless ``reset``)."""
    _check_same(table, same, spans, ident["cooccur"])
    new_same = [[t for p in group for t in spans[int(p)]] for group in same]
    new_apart = [_tracks_apart(group, spans, table) for group in apart if len(group) > 1]
    pairs = [(g[i], g[j]) for g in new_apart for i in range(len(g)) for j in range(i + 1, len(g))]
    count = people if people is not None else (None if reset else ident["people"])
    if reset:
        return count or None, new_same, pairs
    return count or None, ident["same"] + new_same, ident["apart"] + pairs


def _tracks_apart(group, spans: dict, table: Path | str) -> list[int]:
    """The tracks a user says are different people; two names of one track are refused."""
    tracks = [parse_face(str(f), spans, table) for f in group]
    for i, t in enumerate(tracks):
        if t in tracks[:i]:
            first = group[tracks.index(t)]
            raise ValueError(
                f"{first} and {group[i]} are one track ({t}): the tracker followed that face "
                "from one to the other, and a track is not parted"
            )
    return tracks


def _check_same(table: Path | str, same, spans: dict, cooccur) -> None:
    """Persons said to be one that are not in the table, or were seen in the same frame:
    refused, in the user's words."""
    for p in (p for group in same for p in group):
        if int(p) not in spans:
            raise ValueError(f"person {p} is not in {table}")
    pairs = {(int(a), int(b)) for a, b in cooccur}
    for group in same:
        for i, p in enumerate(group):
            for q in group[i + 1 :]:
                if any((min(a, b), max(a, b)) in pairs for a in spans[p] for b in spans[q]):
                    raise ValueError(
                        f"persons {p} and {q} are seen in the same frame: they cannot be one"
                    )


def _check_matches(table: Path, spans: dict, ident: dict) -> None:
    """The identity file is this table's: it knows every track of the table."""
    known = {int(t) for t in ident["tracks"]}
    missing = sorted({t for per in spans.values() for t in per} - known)
    if missing:
        raise ValueError(
            f"{table}: track {missing[0]} is not in {identity_path_of(table).name}; the table "
            "and its identity file are not from one run"
        )


def _check_outputs(table: Path) -> None:
    """Every output regroup may write again is fervid's, checked before anything changes."""
    outputs = VideoOutputs.of_table(table)
    for kind in ("mp4", *DERIVED):
        may_replace(outputs.path(kind), KINDS[kind].is_ours)


def _video_for(table: Path, video) -> Path | None:
    """The analysed video, needed when the table has an annotated video to draw again."""
    video = Path(video) if video is not None else find_video(table)
    mp4 = VideoOutputs.of_table(table).path("mp4")
    if video is None and mp4.exists() and is_fervid_video(mp4):
        raise ValueError(
            f"{mp4} is drawn with the people and needs the analysed video to be drawn again: "
            "give it with --video PATH"
        )
    return video


def _rewrite(table: Path, persons: dict, video, ident: dict, options, progress) -> dict:
    """The table's persons, then everything drawn or written from it that exists."""
    outputs = VideoOutputs.of_table(table)
    persons_in_file(table, persons)
    written = {"csv": table}
    mp4 = outputs.path("mp4")
    if video is not None and mp4.exists() and is_fervid_video(mp4):
        _redraw(table, video, mp4, ident, progress)
        written["mp4"] = mp4
    kinds = set(outputs.existing(DERIVED)) - ({"faces"} if video is None else set())
    if kinds & {"eaf", "tsv"}:  # ELAN's two files go together, as --elan writes them
        kinds |= {"eaf", "tsv"}
    kinds |= {"people", "episodes"} | ({"faces"} if video is not None else set())
    with OutputLock(outputs.path("people")):
        done = write_derived(table, outputs, kinds, video=video, annotated=_annotated(mp4, video),
                             episodes=options)  # fmt: skip
    return written | {k: outputs.path(k) for k in done}


def _annotated(mp4: Path, video: Path | None) -> Path | None:
    return mp4 if mp4.exists() and is_fervid_video(mp4) else video


def _redraw(table: Path, video: Path, mp4: Path, ident: dict, progress) -> None:
    start, end = ident["start"], ident["end"]
    classes = RowSchema.of_file(table).classes
    info = VideoInfo.from_path(video)
    with VideoSink(mp4, info, audio_from=video, time_offset=start or 0.0, end=end) as sink:
        render_from_rows(video, table, sink, classes, start=start, end=end, progress=progress)
