"""``fervid``: the command line, a thin layer over :mod:`fervid.api`: options (made from
:class:`~fervid.options.VideoOptions` and :class:`~fervid.options.ImageOptions`), the loop over
the inputs, messages and exit codes."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

import click

from .cli_options import (
    annotate_options,
    common_options,
    numbers,
    persons,
    ray_options,
    regroup_options,
    resources,
    video_option,
)
from .options import EpisodeOptions, ImageOptions, VideoOptions, cli_message, click_options

log = logging.getLogger(__name__)
CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"]}


def _settings(cls, settings: dict):
    """The typed settings from the command line's values; a bad one is a usage error."""
    try:
        return cls(**settings)
    except ValueError as exc:
        raise click.UsageError(cli_message(exc, cls)) from None


def _said_ignored(ray_address, backend) -> None:
    """No option is ignored without a word: Ray's workers choose their own backend."""
    if ray_address and backend != "auto":
        click.echo(f"--backend {backend}: not passed to Ray's workers (they use auto)", err=True)


def _load(model_path, device, backend="auto"):
    from .checkpoint import CheckpointError
    from .classify import load_model

    try:
        return load_model(model_path, device=device, backend=backend)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        msg = _line(exc)
        if (isinstance(exc, RuntimeError) and "device" in msg) or "not a device fervid" in msg:
            msg = f"--device {device}: not a device here (auto, cpu, cuda, cuda:N or mps)"
        raise click.UsageError(msg) from None


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="fervid")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx, quiet):
    """Facial emotion recognition for videos (annotate) and photo folders (scan)."""
    from . import logs
    from ._malloc import limit_arenas

    logs.configure(quiet=quiet)
    limit_arenas()  # memory stays flat over long videos (measured, fervid/_malloc.py)
    ctx.obj = {"quiet": quiet}


# -- annotate --------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@annotate_options
@click.pass_context
def annotate(
    ctx,
    elan,
    page,
    inputs,
    out_dir,
    model_path,
    device,
    backend,
    overwrite,
    fmt,
    no_video,
    plot,
    resume,
    ray_address,
    ray_workers,
    num_cpus,
    num_gpus,
    ray_split,
    **settings,
):
    """Annotate videos: per-frame CSV (VIDEO.fervid.csv) and annotated video (VIDEO.fervid.mp4).

    INPUTS are video files or folders of videos."""
    from .batch import Interrupted, annotate_many, find_videos, video_kinds
    from .ray_jobs import ClusterError

    episode_names = {f.name for f in dataclasses.fields(EpisodeOptions)}
    episodes = _settings(EpisodeOptions, {k: settings.pop(k) for k in episode_names})
    opts = _settings(VideoOptions, settings)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    found, unread = find_videos(inputs)
    for folder, reason in unread:
        click.echo(f"Error: {_printable(folder)}: {reason}", err=True)
    if not found:
        if unread:
            sys.exit(1)
        raise click.UsageError("no video files found in the given inputs")
    _said_ignored(ray_address, backend)
    kinds = video_kinds(
        fmt=fmt, video=not no_video, plot=plot, elan=elan, page=page, reid=opts.reid
    )
    outcomes = annotate_many(
        found,
        kinds=kinds,
        fmt=fmt,
        out_dir=out_dir,
        model=model_path if ray_address else _load(model_path, device, backend),
        device=device,
        options=opts,
        episodes=episodes,
        resume=resume,
        overwrite=overwrite,
        ray_address=ray_address,
        ray_resources=resources(ray_workers, num_cpus, num_gpus) if ray_address else None,
        split_minutes=ray_split,
        progress=_progress_bars(ctx.obj["quiet"]),
    )
    failed = [str(f) for f, _ in unread]
    try:
        for outcome in outcomes:
            if _said(outcome, ctx.obj["quiet"]):
                failed.append(str(outcome.video))
    except Interrupted as stop:
        click.echo(
            f"interrupted: {_printable(stop.video)}'s rows so far are kept; run again with "
            "--resume to continue",
            err=True,
        )
        sys.exit(130)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    _exit_if_failed(failed, len(unread) + len(found))


def _progress_bars(quiet: bool):
    """A progress bar per video (frames), or over the videos on Ray."""
    import contextlib

    from tqdm import tqdm

    from ._malloc import Releaser

    @contextlib.contextmanager
    def bar(video, total):
        name, unit = (video.name, "frame") if video is not None else (None, "video")
        with tqdm(total=total, desc=name, unit=unit, leave=False, disable=quiet or None) as b:
            yield Releaser(b.update)

    return bar


def _exit_if_failed(failed: list[str], total: int) -> None:
    if failed:
        click.echo(f"{len(failed)} of {total} input(s) failed: " + ", ".join(failed), err=True)
        sys.exit(1)


def _said(outcome, quiet: bool) -> bool:
    """Print what became of one video (a skip or a failure on stderr); whether it failed."""
    video = _printable(outcome.video)
    if outcome.skipped is not None:
        click.echo(f"{video}: {outcome.skipped}", err=True)
        return False
    if outcome.error is not None:
        click.echo(f"{video}: {outcome.error}", err=True)
        return True
    if not quiet:
        click.echo(_summary(outcome))
    if outcome.run.error:
        click.echo(
            f"{video}: truncated or damaged, processed up to the error ({outcome.run.error})",
            err=True,
        )
    return outcome.failed


def _summary(outcome, most: int = 10) -> str:
    """What one video gave: frames, speed, faces, tracks and people, each person's main
    emotion (the first ``most``), the files written."""
    report, summary = outcome.run, outcome.summary
    done = f"{report.frames} frames ({report.analysed} analysed"
    if report.resumed_from is not None:
        done += f", resumed after frame {report.resumed_from}"
    if report.bad_packets:
        done += f", {report.bad_packets} undecodable packet(s) skipped"
    where = " on Ray" if outcome.on_ray else ""
    people = summary["people"]
    lines = [
        f"{_printable(outcome.video)}: {done}){where} in {report.seconds:.1f} s, "
        f"{report.frames_per_s:.1f} frames/s (the whole job, outputs written after the "
        f"analysis too: {outcome.whole_s:.1f} s); "
        f"{summary['faces']} faces in {summary['tracks']} tracks"
        + (f" ({report.splits} split where the face became another)" if report.splits else "")
        + (f", {len(people)} people" if summary["by"] == "person" else "")
    ]
    for t in people[:most]:
        who = f"person {t['person']}" if summary["by"] == "person" else f"face {t['face']}"
        lines.append(f"  {who}: {t['emotion']} {t['share']:.0%} of {t['frames']} analysed frames")
    if len(people) > most:
        table = outcome.outputs.path("people")
        lines.append(f"  ... and {len(people) - most} more (see {_printable(table)})")
    written = [str(outcome.outputs.path(k)) for k in outcome.outputs.asked()]
    lines.append("  -> " + _printable(", ".join(written)))
    return "\n".join(lines)


# -- report ----------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("table", type=click.Path(exists=True, dir_okay=False))
@video_option("for the people's faces")
@click.option("--elan", is_flag=True, help="Also the ELAN document and the episodes as text.")
@click.option("--no-page", is_flag=True, help="No review page (VIDEO.fervid.html).")
@click.option("--overwrite", is_flag=True, help="Replace outputs fervid wrote before.")
@click_options(EpisodeOptions)
@click.pass_context
def report(ctx, table, video, elan, no_page, overwrite, **settings):
    """People, emotion episodes, faces, ELAN and the review page of an existing video table
    (VIDEO.fervid.csv), without analysing the video again."""
    from .video_outputs import report_table  # no PyTorch: a table is all it reads

    episodes = _settings(EpisodeOptions, settings)
    try:
        written = report_table(
            table, video=video, elan=elan, page=not no_page, overwrite=overwrite, options=episodes
        )
    except (ValueError, OSError) as exc:  # OutputError, VideoError: one line each
        raise click.ClickException(_line(exc)) from None
    if not ctx.obj["quiet"]:
        click.echo(f"{_printable(table)} -> " + _printable(", ".join(map(str, written.values()))))


# -- regroup ---------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("table", type=click.Path(exists=True, dir_okay=False))
@regroup_options
@video_option("to draw the annotated video and the faces again")
@click_options(EpisodeOptions)
@click.pass_context
def regroup(ctx, table, people, same, apart, cut, reset, video, **settings):
    """Choose the people of an annotated video again, without analysing it again: another
    number of people, persons that are one, tracks that are two, a track that holds two
    people parted. Rewrites the table's person columns and the outputs made from it (video,
    people, episodes, faces, plot, ELAN, page)."""
    from .regroup import regroup_table  # no PyTorch: the table and its identity file

    episodes = _settings(EpisodeOptions, settings)
    try:
        done = regroup_table(
            table,
            people=people,
            same=persons(numbers(same, "--same")),
            apart=numbers(apart, "--apart"),
            reset=reset,
            cut=cut,
            video=video,
            options=episodes,
        )
    except (ValueError, OSError) as exc:  # OutputError, VideoError: one line each
        raise click.ClickException(_line(exc)) from None
    if not ctx.obj["quiet"]:
        click.echo("".join(f"{p}\n" for p in done["parted"]), nl=False)
        before, after = done["people"]
        written = ", ".join(map(str, done["written"].values()))
        click.echo(f"{_printable(table)}: {after} people (were {before}) -> {_printable(written)}")


# -- scan ------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("folder", type=click.Path(exists=True))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output table. Default: FOLDER.fervid.photos.csv beside the folder (never the name "
    "of a video's outputs: talk/ and talk.mp4 do not meet).",
)
@common_options
@click_options(ImageOptions)
@click.option("--resume", is_flag=True, help="Continue an interrupted scan of the same folder.")
@click.option(
    "--page",
    "--report",
    "page",
    is_flag=True,
    help="Also write a page of the faces with their labels, filterable by emotion "
    "(the table's name with .html; --report: its older name).",
)
@ray_options
@click.pass_context
def scan(
    ctx,
    folder,
    csv_path,
    model_path,
    device,
    backend,
    overwrite,
    fmt,
    resume,
    page,
    ray_address,
    ray_workers,
    num_cpus,
    num_gpus,
    **settings,
):
    """Scan a folder of photos (recursively): one CSV row per face."""
    from tqdm import tqdm

    from ._malloc import Releaser
    from .api import scan_folder
    from .outputs import OutputError, OutputSkip
    from .photos import ScanInterrupted
    from .ray_jobs import ClusterError

    opts = _settings(ImageOptions, settings)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    root = Path(folder)
    if not (root.is_dir() or root.is_file()):
        raise click.UsageError(f"{_printable(root)}: not a folder or a regular file")
    final = Path(csv_path or root.resolve().parent / f"{root.resolve().name}.fervid.photos.csv")
    if fmt != "csv" and final.suffix.lower() == ".csv":
        final = final.with_suffix(f".{fmt}")
    _said_ignored(ray_address, backend)
    model = _load(model_path, device, backend)
    ray = {}
    if ray_address:
        ray = {
            "ray_address": ray_address,
            "model": model_path,
            "ray_resources": resources(ray_workers, num_cpus, num_gpus),
        }
    bar = tqdm(unit="img", disable=ctx.obj["quiet"] or None, leave=False)
    try:
        report = scan_folder(
            root,
            final,
            **({"model": model} | ray),
            device=device,
            options=opts,
            resume=resume,
            overwrite=overwrite,
            progress=Releaser(bar.update),
            on_total=bar.reset,
            fmt=fmt,
            page=final.with_suffix(".html") if page else None,
        )
    except ScanInterrupted as exc:
        bar.close()
        click.echo(f"interrupted: {exc}; run again with --resume to continue", err=True)
        sys.exit(130)
    except OutputSkip as skip:
        bar.close()
        click.echo(_printable(skip), err=True)
        return
    except (OutputError, ClusterError) as exc:
        raise click.ClickException(_line(exc)) from None
    finally:
        bar.close()
    _scan_summary(ctx, report)


def _scan_summary(ctx, report) -> None:
    if not ctx.obj["quiet"]:
        click.echo(
            f"{report.images} images scanned ({report.already_done} already done), "
            f"{report.faces} faces -> {_printable(report.out)}"
        )
    if report.failed:
        click.echo(f"{len(report.failed)} file(s) could not be read:", err=True)
        for path, why in report.failed[:20]:
            click.echo(f"  {_printable(path)} ({_printable(why)})", err=True)
        if len(report.failed) > 20:
            click.echo(f"  ... and {len(report.failed) - 20} more (see the error column)", err=True)
        sys.exit(1)


def _tail(exc: BaseException, video: Path) -> str:
    msg = _line(exc)
    prefix = _printable(f"{video}: ")
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def _line(exc: BaseException) -> str:
    from .errors import first_line

    return _printable(first_line(exc, 400))


def _printable(text: object) -> str:
    """``text`` (a path, say) as one printable line."""
    from .errors import printable

    return printable(str(text))


def main() -> None:
    # OpenMP threads sleep between operations instead of spinning, which leaves the CPU to
    # the video encoder and decoder threads (measured: +13% frames/s with video, bench/video.py)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cli(prog_name="fervid")


if __name__ == "__main__":
    main()
