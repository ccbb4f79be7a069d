"""A video's output files as one typed set.

Every kind of file a video's analysis gives is declared once, in :data:`KINDS`: its name
after ``VIDEO.fervid`` (``.csv``, ``.people.csv``, ...), what it is to :func:`check_output`,
how fervid recognises a file of that kind as its own (an existing one is replaced only
then), and, for the kinds made from a finished table, its writer. :class:`VideoOutputs` is one
video's set: where its files go and which kinds were asked for. :func:`write_derived` writes
the kinds made from a finished table (plot, people, episodes, faces, ELAN, page); ``fervid
annotate``, ``fervid report`` and ``fervid regroup`` all write them through it. Adding an
output or a format is one entry of :data:`KINDS`.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .elan import write_eaf, write_episodes_tsv
from .face_pictures import Kept, central_candidates, is_fervid_folder, write_faces
from .identity.store import identity_path_of, is_identity_file, read_identity
from .images import VIDEO_EXTS
from .options import EpisodeOptions
from .outputs import (
    OutputError,
    OutputLock,
    OutputSkip,
    atomic_path,
    check_output,
    check_writable,
    is_fervid_output,
    is_fervid_png,
    is_fervid_text,
    may_replace,
    partial_path,
    unfinished,
)
from .pages import is_fervid_page, write_video_page
from .persons import Takeaway, read_people
from .plot import plot_timeline
from .rows import TableFacts, check_video_table, read_csv, video_schema_of, write_csv
from .video import VideoInfo, is_fervid_video
from .writers import WRITERS, working_table, write_format


@dataclass
class Derived:
    """What the outputs made from a finished table are made from: the table, the analysed
    video (for the people's pictures; None: no pictures), the video the page plays, the
    video's duration, and what one streamed pass over the table found (read once)."""

    table: Path
    video: Path | None = None
    annotated: Path | None = None
    duration: float = 0.0
    episodes: EpisodeOptions | None = None
    faces: dict[int, Path] = field(default_factory=dict)
    shown: Path | None = None  # the table's name for the reader (a sorted copy is read)
    kept: dict[tuple[int, int], Kept] | None = None  # face crops kept during the pass
    known_identity: dict | None = None  # the tracks' embeddings, when the caller has them

    @functools.cached_property
    def classes(self) -> tuple[str, ...]:
        return video_schema_of(self.table).classes

    @functools.cached_property
    def identity(self) -> dict | None:
        """The tracks' embeddings: the caller's, else the identity file beside the table (read
        only when a picture is chosen), or None (none kept, or not readable)."""
        if self.known_identity is not None:
            return self.known_identity
        path = identity_path_of(self.shown or self.table)
        if not path.exists():
            return None
        try:
            return read_identity(path)
        except (ValueError, OSError):
            return None

    @functools.cached_property
    def found(self) -> Takeaway:
        return read_people(self.table, options=self.episodes)

    @property
    def title(self) -> str:
        return (self.video or self.shown or self.table).name


def _write_csv(df, path: Path) -> None:
    with atomic_path(path) as tmp:
        write_csv(df, tmp, index=False)


def _write_plot(d: Derived, path: Path) -> None:
    plot_timeline(d.table, d.classes, path, title=d.title)


def _write_faces(d: Derived, path: Path) -> None:
    if d.video is not None:
        chosen = central_candidates(d.found, d.identity)
        d.faces = write_faces(d.video, chosen, path, kept=d.kept)


def _write_page(d: Derived, path: Path) -> None:
    write_video_page(
        path,
        video=d.annotated or d.video,
        people=d.found.people,
        episodes=d.found.episodes,
        seen=d.found.seen,
        marks=d.found.marks,
        classes=d.classes,
        faces=d.faces,
        duration=d.duration,
        title=d.video.name if d.video else (d.shown or d.table).name,
        table=d.shown or d.table,
        max_gap=(d.episodes or EpisodeOptions()).max_gap,
    )


def _starts_with(text: str) -> Callable[[Path], bool]:
    def check(path: Path) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.readline().startswith(text)
        except (OSError, UnicodeDecodeError):
            return False

    return check


def _head_has(mark: str) -> Callable[[Path], bool]:
    def check(path: Path) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                return mark in fh.read(2000)
        except (OSError, UnicodeDecodeError):
            return False

    return check


@dataclass(frozen=True)
class OutputKind:
    """One kind of a video's outputs: its name, the ending of its file after ``VIDEO.fervid``,
    what it is to :func:`fervid.outputs.check_output` (``csv`` for any text or table,
    ``mp4``, ``png``, or ``folder``), how fervid tells a file of this kind is its own, and
    for the kinds made from a finished table, the writer (``write(derived, path)``)."""

    name: str
    suffix: str
    media: str
    is_ours: Callable[[Path], bool]
    write: Callable[[Derived, Path], None] | None = None


#: Every kind of a video's outputs, in the order they are written and listed.
KINDS: dict[str, OutputKind] = {
    k.name: k
    for k in (
        *(OutputKind(fmt, f".{fmt}", "csv", is_fervid_output) for fmt in WRITERS),
        OutputKind("mp4", ".mp4", "mp4", is_fervid_video),
        OutputKind("png", ".png", "png", is_fervid_png, _write_plot),
        OutputKind(
            "people",
            ".people.csv",
            "csv",
            _starts_with("person,first_s,"),
            lambda d, p: _write_csv(d.found.people, p),
        ),
        OutputKind(
            "episodes",
            ".episodes.csv",
            "csv",
            _starts_with("person,emotion,start_s,"),
            lambda d, p: _write_csv(d.found.episodes, p),
        ),
        OutputKind("faces", ".people", "folder", is_fervid_folder, _write_faces),
        OutputKind(
            "eaf",
            ".eaf",
            "csv",
            _head_has('AUTHOR="fervid"'),
            lambda d, p: write_eaf(
                d.found.episodes, p, media=d.annotated or d.video, persons=d.found.people["person"]
            ),
        ),
        OutputKind(
            "tsv",
            ".episodes.tsv",
            "csv",
            is_fervid_text("tier\tbegin\tend\tannotation"),
            lambda d, p: write_episodes_tsv(d.found.episodes, p),
        ),
        OutputKind("html", ".html", "csv", is_fervid_page, _write_page),
        OutputKind("identity", ".identity.json", "csv", is_identity_file),
    )
}

#: The kinds made from a finished table, by :func:`write_derived`.
DERIVED = tuple(k for k, kind in KINDS.items() if kind.write is not None)


@dataclass(frozen=True)
class VideoOutputs:
    """One video's outputs: ``base`` (``folder/clip``) names them (``folder/clip.fervid.csv``
    and the rest); ``kinds`` are those asked for; ``fmt`` is the table's format."""

    base: Path
    kinds: frozenset[str] = frozenset()
    fmt: str = "csv"

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or self.fmt not in WRITERS:
            raise ValueError(f"unknown outputs: {', '.join(sorted(unknown)) or self.fmt}")
        object.__setattr__(self, "kinds", frozenset(self.kinds))

    @classmethod
    def of_table(cls, table: str | os.PathLike, kinds: Iterable[str] = ()) -> VideoOutputs:
        """The outputs named after a video table: ``clip.fervid.csv`` ->
        ``clip.fervid.people.csv`` and the rest (another name: ``NAME.csv`` ->
        ``NAME.fervid.people.csv``)."""
        table = Path(table)
        name = table.name
        for ext in (".fervid.csv", ".csv"):
            if name.lower().endswith(ext):
                return cls(table.with_name(name[: -len(ext)]), frozenset(kinds))
        return cls(table, frozenset(kinds))

    def path(self, kind: str) -> Path:
        return self.base.with_name(self.base.name + ".fervid" + KINDS[kind].suffix)

    @property
    def table(self) -> Path:
        """The CSV the rows are streamed to: the CSV output itself, or for another format a
        name of its own beside that output (``clip.fervid.parquet.csv``)."""
        return working_table(self.path(self.fmt), self.fmt)

    def asked(self) -> list[str]:
        """The kinds asked for, in :data:`KINDS`' order."""
        return [k for k in KINDS if k in self.kinds]

    def existing(self, kinds: Iterable[str] = KINDS) -> list[str]:
        """Of ``kinds``, those whose file exists and is fervid's."""
        return [k for k in kinds if self.path(k).exists() and KINDS[k].is_ours(self.path(k))]

    def remove_others(self) -> list[Path]:
        """After a run asked to redo a video (``--overwrite``): the files of an earlier run of
        kinds not asked for this time (an annotated video with ``--no-video`` now, the other
        format's table, ELAN's files, the page, the plot) are removed, fervid's own only, so
        that nothing of the run before stays beside the new outputs. Returns them."""
        gone = []
        for k in self.existing(k for k in KINDS if k not in self.kinds):
            path = self.path(k)
            if path.is_dir():
                for p in path.iterdir():
                    p.unlink()
                path.rmdir()
            else:
                path.unlink()
            gone.append(path)
        return gone

    def check_names(self, inputs: Iterable[Path], kinds: Iterable[str] | None = None) -> None:
        """Refuse (:class:`OutputError`) outputs among ``kinds`` (default: those asked for)
        that are an input, or whose name says they are another kind of file."""
        inputs = list(inputs)
        for k in self.asked() if kinds is None else kinds:
            path, kind = self.path(k), KINDS[k]
            if kind.media != "folder":
                check_output(path, inputs=inputs, kind=kind.media)
            elif path.exists() and not path.is_dir():
                raise OutputError(f"{path}: exists and is not a folder")

    def check_run(self, video: Path, *, overwrite: bool, resume: bool) -> None:
        """Before a video is analysed: refuse outputs that are the input, or files fervid
        did not write (OutputError); skip a video whose outputs exist unless asked to redo or
        resume it (OutputSkip). The working table and every partial file are checked too."""
        self.check_names([video])
        existing = [k for k in sorted(self.kinds) if self.path(k).exists()]
        if existing and not (overwrite or resume):
            names = ", ".join(str(self.path(k)) for k in existing)
            raise OutputSkip(f"skipped, outputs exist ({names}); --overwrite to redo")
        # a video finished before runs kept their identity (fervid regroup) is finished too
        done = self.kinds - {"identity"} <= set(existing)
        if resume and done and not partial_path(self.table).exists():
            raise OutputSkip("finished earlier; skipped")
        paths = {self.path(k): k for k in self.kinds} | {self.table: "csv"}
        for path, k in paths.items():
            kind = KINDS[k]
            may_replace(path, kind.is_ours)
            if kind.media != "folder":
                may_replace(
                    partial_path(path),
                    lambda p, kind=kind: kind.is_ours(p) or unfinished(p, kind.media),
                )
        check_writable(self.table.parent)


def write_derived(
    table: str | os.PathLike,
    outputs: VideoOutputs,
    kinds: Iterable[str],
    *,
    video: str | os.PathLike | None,
    annotated: str | os.PathLike | None = None,
    episodes: EpisodeOptions | None = None,
    duration: float | None = None,
    shown: str | os.PathLike | None = None,
    kept: dict[tuple[int, int], Kept] | None = None,
    identity: dict | None = None,
) -> list[str]:
    """Write the outputs of ``kinds`` (of :data:`DERIVED`) made from the finished video table
    ``table`` to their paths in ``outputs``, the table read once. ``video``: the analysed
    video (for the people's pictures and the video's duration; None: no pictures),
    ``annotated``: the video the page plays and ELAN links (default ``video``); ``shown``:
    the table's name for the reader, when ``table`` is a sorted copy of it; ``kept``: the face
    crops kept during the pass (:meth:`fervid.face_pictures.PictureKeeper.crops`);
    ``identity``: the tracks' embeddings when the caller holds them (else the identity file
    beside the table is read, if the pictures are written). Returns the kinds written, in
    order."""
    video = Path(video) if video is not None else None
    wanted = [k for k in DERIVED if k in set(kinds)]
    if duration is None:
        known = video is not None and wanted
        duration = VideoInfo.from_path(video).duration_s if known else 0.0
    d = Derived(
        Path(table),
        video,
        Path(annotated) if annotated is not None else video,
        duration,
        episodes,
        shown=Path(shown) if shown is not None else None,
        kept=kept,
        known_identity=identity,
    )
    for k in wanted:
        KINDS[k].write(d, outputs.path(k))
    return wanted


def write_table_format(outputs: VideoOutputs) -> Path:
    """The finished working table in the format asked for (for CSV it is the output; for
    another format the working CSV is removed once the file is written:
    :func:`fervid.writers.write_format`)."""
    return write_format(outputs.table, outputs.path(outputs.fmt), outputs.fmt)


def plan_outputs(
    videos: list[tuple[Path, Path | None]], out_dir: str | os.PathLike | None, **kw
) -> dict[Path, VideoOutputs]:
    """Each video's outputs, never the same for two videos of one run: with ``out_dir``,
    videos found in a folder keep their sub-folders; two videos whose names would still meet
    (``clip.mp4`` and ``clip.mov``) keep their extension in the name (``clip.mov.fervid.csv``),
    and a number is added if even that is not enough. ``kw``: :class:`VideoOutputs`' ``kinds``
    and ``fmt``."""
    bases = {}
    for video, root in videos:
        if out_dir is None:
            base = video.parent
        elif root is not None:
            base = Path(out_dir) / video.parent.relative_to(root)
        else:
            base = Path(out_dir)
        bases[video] = base
    key = {v: (os.path.realpath(bases[v]), v.stem) for v, _ in videos}
    count: dict = {}
    for k in key.values():
        count[k] = count.get(k, 0) + 1
    used: set = set()
    plan = {}
    for video, _ in videos:
        stem = video.stem if count[key[video]] == 1 else video.name
        name, n = stem, 2
        while (os.path.realpath(bases[video]), name) in used:
            name, n = f"{stem}-{n}", n + 1
        used.add((os.path.realpath(bases[video]), name))
        plan[video] = VideoOutputs(bases[video] / name, **kw)
    return plan


def find_video(table: Path) -> Path | None:
    """The analysed video beside a table named after it (``clip.fervid.csv`` ->
    ``clip.mp4``, ``clip.mov``, ...), or None."""
    stem = VideoOutputs.of_table(table).path("csv").name[: -len(".fervid.csv")]
    for p in sorted(table.parent.glob(f"{glob.escape(stem)}.*")):
        if p.suffix.lower() in VIDEO_EXTS and ".fervid" not in p.name and p.is_file():
            return p
    return None


def report_table(
    table: str | os.PathLike,
    *,
    video: str | os.PathLike | None = None,
    elan: bool = False,
    page: bool = True,
    overwrite: bool = False,
    options: EpisodeOptions | None = None,
) -> dict[str, Path]:
    """The outputs made from an existing video table (``fervid report``): people, episodes,
    one picture per person (when the video is found beside the table or given), the page,
    and with ``elan`` the EAF and the episodes as text. Existing outputs are replaced only
    with ``overwrite`` and only when fervid wrote them. Returns what was written, by kind."""
    table = Path(table)
    with OutputLock(table):  # an annotate --overwrite of the video cannot change it meanwhile
        return _report_locked(table, video, elan, page, overwrite, options)


def _report_locked(table: Path, video, elan: bool, page: bool, overwrite: bool, options):
    facts = check_video_table(table)  # before anything is written: one line if it is damaged
    video = Path(video) if video is not None else find_video(table)
    kinds = {"people", "episodes"} | ({"faces"} if video else set())
    kinds |= ({"html"} if page else set()) | ({"eaf", "tsv"} if elan else set())
    outputs = VideoOutputs.of_table(table, kinds)
    inputs = [table] + ([video] if video else [])
    for k in sorted(kinds):
        path = outputs.path(k)
        if k != "faces":
            check_output(path, inputs=inputs, kind="csv")
        if path.exists() and not overwrite:
            raise OutputError(f"{path} exists: --overwrite to replace it")
        may_replace(path, KINDS[k].is_ours)
    mp4 = outputs.path("mp4")
    annotated = mp4 if mp4.exists() and is_fervid_video(mp4) else None
    with OutputLock(outputs.path("people")), in_time_order(table, facts) as rows:
        write_derived(rows, outputs, kinds, video=video, annotated=annotated or video,
                      episodes=options, shown=table)  # fmt: skip
    return {k: outputs.path(k) for k in sorted(kinds)}


@contextlib.contextmanager
def in_time_order(table: Path, facts: TableFacts) -> Iterator[Path]:
    """The table itself when its rows are in time order (as fervid writes them), else a copy
    sorted by time (stable: a frame's faces keep their order), held in memory once and
    removed afterwards: a table sorted by person, say, gives the same people and episodes."""
    if facts.ordered:
        yield table
        return
    df = read_csv(table, keep_default_na=True)
    with tempfile.TemporaryDirectory(prefix="fervid-") as tmp:
        copy = Path(tmp) / table.name
        write_csv(df.sort_values("time_s", kind="stable"), copy, index=False)
        del df
        yield copy
