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

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from .identity.columns import persons_in_file
from .identity.grouping import cluster_tracks
from .identity.parting import Part, part_in_file, part_tracks
from .identity.store import identity_path_of, read_identity, write_identity
from .options import EpisodeOptions
from .outputs import JSON_MARK, OutputLock, may_replace, write_text_atomic
from .render import render_from_rows
from .rows import check_video_table, read_csv_chunks, video_schema_of
from .video import VideoInfo, VideoSink, is_fervid_video
from .video_outputs import DERIVED, KINDS, VideoOutputs, find_video, in_time_order, write_derived

#: What marks the journal of a regroup under way (its ``written_by``).
JOURNAL_MARK = "fervid regroup journal"


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
    if _part_requests(apart, spans, where, None)[0]:
        raise ValueError(
            "two times of one track: a track is parted in a table (regroup_table, fervid "
            "regroup), from the video's frames, not in a DataFrame"
        )
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
    cut: float | None = None,
    video: str | os.PathLike | None = None,
    options: EpisodeOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Choose a finished video's people again (see the module's text): ``people`` how many
    appear (0: not known), ``same`` sets of persons (the table's numbers now) that are one,
    ``apart`` sets of tracks (ids, or ``"P@S"``) that are each a different person; earlier
    corrections are kept unless ``reset``. Two times of one track in ``apart`` (``"P@S1",
    "P@S2"``) part that track between them: where its face's embedding changes most (read
    from the video), or at ``cut`` seconds. Returns ``{"people": before, after, "written":
    {kind: path}, "parted": [Part]}``. Raises ValueError (one line) for a table or identity
    fervid did not write, an unknown person or track, or corrections that contradict the
    video."""
    table = Path(table)
    with OutputLock(table):  # first: an annotate --overwrite finishing now cannot come between
        finish_interrupted(table, video=video, options=options, progress=progress)
        facts = check_video_table(table)  # a cut or damaged table: one line, nothing written
        ident = read_identity(identity_path_of(table))
        spans = tracks_by_person(table)
        _check_matches(table, spans, ident)
        requests, apart = _part_requests(apart, spans, table, cut)
        count, same_tracks, apart_pairs = _corrections(
            table, spans, ident, people=people, same=same, apart=apart, reset=reset
        )
        video = _video_for(table, video, ident)
        _check_outputs(table)
        ident, parts = part_tracks(table, ident, requests, video=video, cut=cut)
        apart_pairs = apart_pairs + [[p.track, p.new] for p in parts]
        persons = cluster_tracks(ident, people=count, same=same_tracks, apart=apart_pairs)
        kept = {**ident, "people": count, "same": same_tracks, "apart": apart_pairs}
        written = _transaction(table, persons, video, kept, facts, options, progress, parts)
    written = {k: written[k] for k in KINDS if k in written}
    people_after = len({p for p, _ in persons.values()})
    return {"people": (len(spans), people_after), "written": written, "parted": parts}


def journal_path_of(table: Path) -> Path:
    """Where a regroup under way writes what it is doing: ``clip.fervid.regroup.json``."""
    return table.with_name(table.stem + ".regroup.json")


def _transaction(table: Path, persons, video, ident: dict, facts, options, progress, parts=()):
    """Rewrite the table's tracks parted (``parts``) and persons and everything made from
    it as one transaction: what is to be done is written first (a journal beside the table,
    with the identity file it was worked out from), then done, then the identity kept and
    the journal removed. A run stopped in between (Ctrl-C, a kill, a full disk) leaves the
    journal: the next regroup of that table finishes it first (:func:`finish_interrupted`),
    each step done again being the same (a track parted already is not parted again)."""
    journal = journal_path_of(table)
    may_replace(journal, _is_journal)
    record = {
        JSON_MARK: JOURNAL_MARK,
        "persons": {str(t): [p, None if c != c else c] for t, (p, c) in persons.items()},
        "identity": ident,
        "parts": [[p.track, p.new, p.cut] for p in parts],
        "from": _digest(identity_path_of(table)),
        "video": str(video) if video is not None else None,
    }
    write_text_atomic(journal, json.dumps(record))
    for p in parts:
        part_in_file(table, p, ident.get("smooth"))
    written = _rewrite(table, persons, video, ident, facts, options, progress)
    _keep(table, ident)
    journal.unlink()
    return written


def finish_interrupted(table: Path, *, video=None, options=None, progress=None) -> bool:
    """Finish a regroup of ``table`` that was stopped part way (its journal is there): the
    same persons written into the table and everything made from it again, the identity
    kept. A journal whose identity file has changed since (the video annotated again) is
    out of date: removed, nothing done. Call with the table's lock held. Whether one was
    finished."""
    journal = journal_path_of(table)
    if not journal.exists() or not _is_journal(journal):
        return False
    record = json.loads(journal.read_text(encoding="utf-8"))
    if record.get("from") != _digest(identity_path_of(table)):
        journal.unlink()
        return False
    persons = {int(t): (int(p), math.nan if c is None else float(c))
               for t, (p, c) in record["persons"].items()}  # fmt: skip
    video = Path(video) if video is not None else record["video"] and Path(record["video"])
    facts = check_video_table(table)
    smooth = record["identity"].get("smooth")
    for track, new, cut in record.get("parts", []):
        part_in_file(table, Part(int(track), int(new), float(cut)), smooth)
    _rewrite(table, persons, video, record["identity"], facts, options, progress)
    _keep(table, record["identity"])
    journal.unlink()
    return True


def _keep(table: Path, ident: dict) -> None:
    kept = {k: ident[k] for k in ("video", "start", "end", "people", "same", "apart")}
    write_identity(identity_path_of(table), ident, **kept, smooth=ident.get("smooth"))


def _is_journal(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(JSON_MARK) == JOURNAL_MARK
    except (OSError, ValueError, AttributeError):
        return False


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


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
    """The tracks a user says are different people; two names of one track are refused
    (:func:`_part_requests` takes a track named at two times first)."""
    tracks = [parse_face(str(f), spans, table) for f in group]
    for i, t in enumerate(tracks):
        if t in tracks[:i]:
            first = group[tracks.index(t)]
            raise ValueError(
                f"{first} and {group[i]} are one track ({t}): to part a track, name it alone "
                "with two times inside it (--apart P@S1,P@S2)"
            )
    return tracks


def _part_requests(apart, spans: dict, table: Path | str, cut: float | None):
    """The groups of ``apart`` that name one track at two times inside it ((track, first
    time, second time): to be parted between them), and the other groups."""
    requests, rest = [], []
    for group in apart:
        names = [str(f) for f in group]
        tracks = [parse_face(f, spans, table) for f in names]
        if len(names) != 2 or tracks[0] != tracks[1] or not all("@" in f for f in names):
            rest.append(group)
            continue
        times = sorted(float(f.split("@")[1]) for f in names)
        lo, hi = next(span for per in spans.values() for t, span in per.items() if t == tracks[0])
        if times[0] < lo - 0.5 or times[1] > hi + 0.5 or times[0] == times[1]:
            raise ValueError(
                f"{names[0]} and {names[1]} both name track {tracks[0]} (seen {lo:.2f}-"
                f"{hi:.2f} s): to part it, give two different times inside it"
            )
        if any(r[0] == tracks[0] for r in requests):
            raise ValueError(f"track {tracks[0]} is named twice to be parted: one cut at a time")
        requests.append((tracks[0], *times))
    if cut is not None and len(requests) != 1:
        raise ValueError(
            f"--cut {cut:g} says where one track is parted: name that track at two times "
            "inside it with --apart P@S1,P@S2"
        )
    return requests, rest


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
    """The identity file is this table's: it names this table's video, knows every track of
    the table, and each track's first and last time are the table's."""
    name = identity_path_of(table).name
    stem = VideoOutputs.of_table(table).base.name
    if stem not in (ident["video"], Path(ident["video"]).stem):
        raise ValueError(
            f"{table}: {name} is the identity of {ident['video']}, not of this table's video"
        )
    tracks = ident["tracks"]
    for t, (lo, hi) in ((t, span) for per in spans.values() for t, span in per.items()):
        tr = tracks.get(str(t))
        if tr is None or abs(tr["first_t"] - lo) > 0.01 or abs(tr["last_t"] - hi) > 0.01:
            raise ValueError(
                f"{table}: track {t} is not in {name} as the table has it; the table and its "
                "identity file are not from one run"
            )


def _check_outputs(table: Path) -> None:
    """Every output regroup may write again is fervid's, checked before anything changes."""
    outputs = VideoOutputs.of_table(table)
    for kind in ("mp4", *DERIVED):
        may_replace(outputs.path(kind), KINDS[kind].is_ours)


def _video_for(table: Path, video, ident: dict) -> Path | None:
    """The analysed video, needed when the table has an annotated video to draw again; one
    given (``--video``) must be the one the table was made from, by its name."""
    if video is not None and Path(video).name != ident["video"]:
        raise ValueError(
            f"--video {video}: {table.name} was made from {ident['video']}; give that video "
            "(its people would be drawn on another video's frames)"
        )
    video = Path(video) if video is not None else find_video(table)
    mp4 = VideoOutputs.of_table(table).path("mp4")
    if video is None and mp4.exists() and is_fervid_video(mp4):
        raise ValueError(
            f"{mp4} is drawn with the people and needs the analysed video to be drawn again: "
            "give it with --video PATH"
        )
    return video


def _rewrite(table: Path, persons: dict, video, ident: dict, facts, options, progress) -> dict:
    """The table's persons, then everything drawn or written from it that exists (from a
    copy in time order when the table's rows are not)."""
    outputs = VideoOutputs.of_table(table)
    persons_in_file(table, persons)
    written = {"csv": table}
    mp4 = outputs.path("mp4")
    with in_time_order(table, facts) as rows:
        if video is not None and mp4.exists() and is_fervid_video(mp4):
            _redraw(rows, video, mp4, ident, progress)
            written["mp4"] = mp4
        done = _derived(rows, table, outputs, video, mp4, options, ident)
    return written | {k: outputs.path(k) for k in done}


def _derived(rows: Path, table: Path, outputs: VideoOutputs, video, mp4: Path, options, ident):
    kinds = set(outputs.existing(DERIVED)) - ({"faces"} if video is None else set())
    if kinds & {"eaf", "tsv"}:  # ELAN's two files go together, as --elan writes them
        kinds |= {"eaf", "tsv"}
    kinds |= {"people", "episodes"} | ({"faces"} if video is not None else set())
    with OutputLock(outputs.path("people")):
        return write_derived(rows, outputs, kinds, video=video, annotated=_annotated(mp4, video),
                             episodes=options, shown=table, identity=ident)  # fmt: skip


def _annotated(mp4: Path, video: Path | None) -> Path | None:
    return mp4 if mp4.exists() and is_fervid_video(mp4) else video


def _redraw(table: Path, video: Path, mp4: Path, ident: dict, progress) -> None:
    start, end = ident["start"], ident["end"]
    classes = video_schema_of(table).classes
    info = VideoInfo.from_path(video)
    with VideoSink(mp4, info, audio_from=video, time_offset=start or 0.0, end=end) as sink:
        render_from_rows(video, table, sink, classes, start=start, end=end, progress=progress)
