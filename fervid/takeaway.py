"""A finished video table turned into what a researcher takes away, in one streamed pass:
the people table, the episodes, one picture per person, ELAN's EAF and the episodes as
tab-separated text, and the page to review (:func:`write_takeaway`). It runs after
``fervid annotate`` and on an existing table (``fervid report``), so old runs get them too."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from .outputs import atomic_path
from .persons import EpisodeOptions, read_people, write_faces
from .rows import RowSchema

#: The outputs this module writes (keys of :data:`fervid.outputs.VIDEO_OUTPUTS`).
KINDS = ("people", "episodes", "faces", "eaf", "tsv", "html")


def write_takeaway(
    table: str | os.PathLike,
    outs: dict[str, Path],
    wanted: set[str],
    *,
    video: str | os.PathLike | None,
    annotated: str | os.PathLike | None = None,
    options: EpisodeOptions | None = None,
    duration: float = 0.0,
) -> dict:
    """Write the outputs in ``wanted`` (of :data:`KINDS`) of the video table ``table`` to
    their paths in ``outs``. ``video``: the analysed video (for the pictures of the people;
    None: no pictures), ``annotated``: the video the page plays (default ``video``).
    Returns the people and episode counts."""
    from .elan import write_eaf, write_episodes_tsv

    classes = RowSchema.of_file(table).classes
    got = read_people(table, options=options)
    if "people" in wanted:
        _csv(got.people, outs["people"])
    if "episodes" in wanted:
        _csv(got.episodes, outs["episodes"])
    faces = {}
    if ("faces" in wanted or "html" in wanted) and video is not None:
        faces = write_faces(video, got.candidates, outs["faces"])
    if "eaf" in wanted:
        write_eaf(got.episodes, outs["eaf"], media=annotated or video, persons=got.people["person"])
    if "tsv" in wanted:
        write_episodes_tsv(got.episodes, outs["tsv"])
    if "html" in wanted:
        from .report import write_video_page

        write_video_page(
            outs["html"],
            video=annotated or video or table,
            people=got.people,
            episodes=got.episodes,
            seen=got.seen,
            classes=classes,
            faces=faces,
            duration=duration,
            title=Path(video).name if video else "",
            table=table,
        )
    return {"people": len(got.people), "episodes": len(got.episodes)}


def _csv(df, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def outputs_of_table(table: Path) -> dict[str, Path]:
    """The outputs named after a video table: ``clip.fervid.csv`` -> ``clip.fervid.people.csv``
    and the rest (another name: ``NAME.csv`` -> ``NAME.fervid.people.csv``)."""
    from .outputs import video_outputs

    name = table.name
    for ext in (".fervid.csv", ".csv"):
        if name.lower().endswith(ext):
            return video_outputs(table.with_name(name[: -len(ext)]))
    return video_outputs(table)


def find_video(table: Path) -> Path | None:
    """The analysed video beside a table named after it (``clip.fervid.csv`` ->
    ``clip.mp4``, ``clip.mov``, ...), or None."""
    from .images import VIDEO_EXTS

    stem = outputs_of_table(table)["csv"].name[: -len(".fervid.csv")]
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
    """The researcher's outputs of an existing video table (``fervid report``): people,
    episodes, one picture per person (when the video is found beside the table or given),
    the page, and with ``elan`` the EAF and the episodes as text. Existing outputs are
    replaced only with ``overwrite`` and only when fervid wrote them. Returns what was
    written."""
    from .outputs import OutputError, OutputLock, check_output, is_ours, may_replace
    from .video import VideoInfo, is_fervid_video

    table = Path(table)
    RowSchema.of_file(table)  # a video table, or a one-line refusal
    outs = outputs_of_table(table)
    video = Path(video) if video is not None else find_video(table)
    wanted = {"people", "episodes"} | ({"faces"} if video else set())
    wanted |= ({"html"} if page else set()) | ({"eaf", "tsv"} if elan else set())
    for k in sorted(wanted):
        if k != "faces":
            check_output(outs[k], inputs=[table] + ([video] if video else []), kind="csv")
        if outs[k].exists() and not overwrite:
            raise OutputError(f"{outs[k]} exists: --overwrite to replace it")
        may_replace(outs[k], lambda p, k=k: is_ours(p, k))
    annotated = outs["mp4"] if outs["mp4"].exists() and is_fervid_video(outs["mp4"]) else None
    duration = VideoInfo.from_path(video).duration_s if video else 0.0
    with OutputLock(outs["people"]):
        write_takeaway(
            table,
            outs,
            wanted,
            video=video,
            annotated=annotated or video,
            options=options,
            duration=duration,
        )
    return {k: outs[k] for k in sorted(wanted)}
