"""``fervid``: the command line, a thin layer over :mod:`fervid.api`: options (made from
:class:`~fervid.options.VideoOptions` and :class:`~fervid.options.ImageOptions`), the loop over
the inputs, messages and exit codes."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import sys
from pathlib import Path

import click

from .options import EpisodeOptions, ImageOptions, VideoOptions, cli_message, click_options

log = logging.getLogger(__name__)
CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"]}
TABLES = ("csv", "jsonl", "parquet")  # fervid.writers.WRITERS: the command starts without numpy
BACKENDS = ("auto", "torch", "openvino")  # fervid.classify.BACKENDS (tested equal)


def _common_options(f):
    f = click.option(
        "--format",
        "fmt",
        default="csv",
        type=click.Choice(TABLES),
        help='Output format: CSV, JSON lines, or Parquet (pip install "fervid[parquet]"); the '
        "rows are streamed to a CSV first, which becomes the chosen format when done.",
    )(f)
    f = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")(f)
    devices = "auto (cuda, then mps, else cpu), cpu, cuda, cuda:N or mps."
    f = click.option("--device", default="auto", help=devices)(f)
    f = click.option(
        "--backend",
        default="auto",
        type=click.Choice(BACKENDS),
        help="What runs the classifier: auto (OpenVINO on a CPU, int8 for the bundled model; "
        "PyTorch on a GPU or where OpenVINO cannot run), torch, or openvino. Not passed to "
        "Ray workers (they use auto).",
    )(f)
    return click.option(
        "--model",
        "model_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="A fervid checkpoint (from fervid-train). Default: the bundled model.",
    )(f)


def _ray_options(f):
    f = click.option(
        "--num-gpus",
        default=0.0,
        type=click.FloatRange(0),
        help="With --ray-address: GPUs each worker asks for.",
    )(f)
    f = click.option(
        "--num-cpus",
        default=1.0,
        type=click.FloatRange(0, min_open=True),
        help="With --ray-address: CPUs each worker asks for.",
    )(f)
    f = click.option(
        "--ray-workers",
        default=0,
        type=click.IntRange(0),
        help="With --ray-address: workers in the pool (0: as many as the cluster's CPUs allow).",
    )(f)
    return click.option(
        "--ray-address",
        default=None,
        metavar="local|auto|ray://HOST:PORT",
        help='Run on a Ray cluster (pip install "fervid[ray]"): local starts one here, auto '
        "joins this machine's, ray://... a remote one. Inputs and outputs on shared storage.",
    )(f)


def _resources(ray_workers, num_cpus, num_gpus):
    from .cluster import Resources

    return Resources(workers=ray_workers, num_cpus=num_cpus, num_gpus=num_gpus)


def _settings(cls, settings: dict):
    """The typed settings from the command line's values; a bad one is a usage error."""
    try:
        return cls(**settings)
    except ValueError as exc:
        raise click.UsageError(cli_message(exc, cls)) from None


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
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write outputs here instead of beside each input.",
)
@_common_options
@click_options(VideoOptions)
@click.option("--no-video", is_flag=True, help="Write the table only.")
@click.option("--plot", is_flag=True, help="Also write a PNG timeline of each person's emotions.")
@click.option(
    "--elan",
    is_flag=True,
    help="Also write the episodes for ELAN (VIDEO.fervid.eaf, one tier per person) and "
    "as tab-separated text (VIDEO.fervid.episodes.tsv; ELAN's and BORIS's imports).",
)
@click.option(
    "--report",
    "page",
    is_flag=True,
    help="Also write a page to review the result (VIDEO.fervid.html): the video, a "
    "timeline per person, the people with their faces.",
)
@click_options(EpisodeOptions)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue interrupted runs from their last complete chunk of frames (same rows as an "
    "uninterrupted run; the video is then drawn from the rows).",
)
@_ray_options
@click.option(
    "--ray-split",
    default=None,
    type=click.FloatRange(0, min_open=True),
    metavar="MINUTES",
    help="With --ray-address: cut longer videos into parts of this many minutes analysed in "
    "parallel, then stitched (track ids continued across the cuts).",
)
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
    from .outputs import plan_outputs
    from .writers import working_table

    episode_names = {f.name for f in dataclasses.fields(EpisodeOptions)}
    episodes = _settings(EpisodeOptions, {k: settings.pop(k) for k in episode_names})
    opts = _settings(VideoOptions, settings)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    found, unread = _video_inputs(inputs)
    if not found:
        if unread:
            sys.exit(1)
        raise click.UsageError("no video files found in the given inputs")
    plan = plan_outputs(found, out_dir)
    for outs in plan.values():
        outs["table"] = working_table(outs[fmt])
    wanted = {fmt, "people", "episodes", "faces"} | (set() if no_video else {"mp4"})
    wanted |= ({"png"} if plot else set()) | ({"eaf", "tsv"} if elan else set())
    wanted |= {"html"} if page else set()
    wanted |= {"identity"} if opts.reid and fmt == "csv" else set()
    model = None if ray_address else _load(model_path, device, backend)
    failed: list[str] = []
    videos = [v for v, _ in found if _ready(v, plan[v], wanted, overwrite, resume, failed)]
    if ray_address and videos:
        resources = _resources(ray_workers, num_cpus, num_gpus)
        failed += _annotate_on_ray(
            ctx,
            videos,
            plan,
            wanted,
            model_path,
            device,
            opts,
            resume,
            ray_address,
            resources,
            ray_split,
            episodes,
        )
    else:
        failed += [
            str(v)
            for v in videos
            if not _annotate_one(
                ctx, v, model, opts, plan[v], wanted, (resume, overwrite), episodes
            )
        ]
    _exit_if_failed(unread + failed, len(unread) + len(found))


def _video_inputs(inputs: tuple[str, ...]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """(video, the folder it was found in) for every input, folders walked recursively; and
    the folders that could not be read, each said on stderr (nothing skipped without a word)."""
    from .images import VIDEO_EXTS, walk_entries

    out: list[tuple[Path, Path | None]] = []
    unread: list[str] = []
    for s in inputs:
        p = Path(s)
        if not p.is_dir():
            out.append((p, None))
            continue
        for v, reason in walk_entries(p, VIDEO_EXTS):
            if reason:
                click.echo(f"Error: {_printable(v)}: {reason}", err=True)
                unread.append(str(v))
            elif ".fervid" not in v.name:
                out.append((v, p))
    return out, unread


def _ready(video, outs, wanted, overwrite, resume, failed: list[str]) -> bool:
    """Check a video's outputs before any work: True to go on; False when it is skipped or
    fails (said on stderr; a failure is added to ``failed``)."""
    from .outputs import OutputError, OutputSkip, check_video_outputs

    try:
        check_video_outputs(video, outs, wanted, overwrite=overwrite, resume=resume)
    except OutputSkip as skip:
        click.echo(f"{_printable(video)}: {_printable(skip)}", err=True)
        return False
    except OutputError as exc:
        click.echo(f"{_printable(video)}: {_line(exc)}", err=True)
        failed.append(str(video))
        return False
    return True


def _exit_if_failed(failed: list[str], total: int) -> None:
    if failed:
        click.echo(f"{len(failed)} of {total} input(s) failed: " + ", ".join(failed), err=True)
        sys.exit(1)


def _annotate_one(ctx, video: Path, model, opts, outs, wanted, flags, episodes) -> bool:
    """One video on this machine (``flags``: resume, overwrite); False when it failed (said
    on stderr)."""
    from tqdm import tqdm

    from ._malloc import Releaser
    from .annotation import finish_outputs
    from .api import annotate_video
    from .outputs import OutputSkip
    from .video import VideoError, VideoInfo

    resume, overwrite = flags

    try:
        info = VideoInfo.from_path(video)
        end = info.duration_s if opts.end is None else min(opts.end, info.duration_s)
        span = end - (opts.start or 0)
        frames = int(span * info.fps) if span > 0 else None
        with tqdm(
            total=frames,
            desc=video.name,
            unit="frame",
            leave=False,
            disable=ctx.obj["quiet"] or None,
        ) as bar:
            report = annotate_video(
                video,
                outs["table"],
                model=model,
                options=opts,
                resume=resume,
                overwrite=overwrite,
                annotated=outs["mp4"] if "mp4" in wanted else None,
                progress=Releaser(bar.update),
            )
        summary = finish_outputs(video, outs, wanted, model.classes, episodes)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: {_printable(video)}'s rows so far are kept; run again with "
            "--resume to continue",
            err=True,
        )
        sys.exit(130)
    except OutputSkip as skip:
        click.echo(f"{_printable(video)}: {_printable(skip)}", err=True)
        return True
    except (VideoError, ValueError, OSError) as exc:
        msg = _tail(exc, video)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            msg += "; the rows so far are kept: free space, then run again with --resume"
        click.echo(f"{_printable(video)}: {msg}", err=True)
        return False
    if not ctx.obj["quiet"]:
        click.echo(_summary(video, report, summary, outs, wanted))
    if report.error:
        click.echo(
            f"{_printable(video)}: truncated or damaged, processed up to the error "
            f"({report.error})",
            err=True,
        )
        return False
    return True


def _summary(video, report, summary, outs, wanted) -> str:
    """What one video gave: frames, speed, faces per track, the files written."""
    done = f"{report.frames} frames ({report.analysed} analysed"
    if report.resumed_from is not None:
        done += f", resumed after frame {report.resumed_from}"
    if report.bad_packets:
        done += f", {report.bad_packets} undecodable packet(s) skipped"
    lines = [
        f"{_printable(video)}: {done}) in {report.seconds:.1f} s, "
        f"{report.frames_per_s:.1f} frames/s; "
        f"{summary['faces']} faces in {summary['tracks']} tracks"
        + (f", {len(summary['people'])} people" if summary["by"] == "person" else "")
    ]
    for t in summary["people"][:10]:
        who = f"person {t['person']}" if summary["by"] == "person" else f"face {t['face']}"
        lines.append(f"  {who}: {t['emotion']} {t['share']:.0%} of {t['frames']} analysed frames")
    order = (*TABLES, "mp4", "png", "people", "episodes", "faces", "eaf", "tsv", "html", "identity")
    written = [str(outs[k]) for k in order if k in wanted]
    lines.append("  -> " + _printable(", ".join(written)))
    return "\n".join(lines)


def _annotate_on_ray(
    ctx, videos, plan, wanted, model_path, device, opts, resume, address, resources, split, episodes
) -> list[str]:
    """The videos as Ray tasks; a progress bar over the videos; the usual summary per video.
    Returns the videos that failed."""
    from tqdm import tqdm

    from .annotation import finish_outputs
    from .api import annotate_videos
    from .cluster import ClusterError
    from .rows import classes_of

    jobs = [(v, plan[v]["table"], plan[v]["mp4"] if "mp4" in wanted else None) for v in videos]
    with tqdm(total=len(jobs), unit="video", disable=ctx.obj["quiet"] or None, leave=False) as bar:
        try:
            reports = annotate_videos(
                jobs,
                model=model_path,
                device=device,
                options=opts,
                ray_address=address,
                ray_resources=resources,
                resume=resume,
                split_minutes=split,
                on_done=lambda r: bar.update(1),
            )
        except ClusterError as exc:
            raise click.ClickException(str(exc)) from None
    failed = []
    for video, r in zip(videos, reports):
        if r.get("error") and not r.get("frames"):
            click.echo(f"{_printable(video)}: {_printable(r['error'])}", err=True)
            failed.append(str(video))
            continue
        classes = classes_of(plan[video]["table"])
        s = finish_outputs(video, plan[video], wanted, classes, episodes)
        if not ctx.obj["quiet"]:
            click.echo(
                f"{_printable(video)}: {r['frames']} frames ({r['analysed']} analysed) on "
                f"Ray in {r['seconds']:.1f} s; {s['faces']} faces in {s['tracks']} tracks, "
                f"{len(s['people'])} people"
            )
        if r.get("error"):
            click.echo(f"{_printable(video)}: truncated or damaged ({r['error']})", err=True)
            failed.append(str(video))
    return failed


# -- report ----------------------------------------------------------------------------


def _video_option(what: str):
    """``--video``: the analysed video of a table, ``what`` for."""
    return click.option(
        "--video",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help=f"The analysed video ({what}). Default: the video beside the table with its name "
        "(clip.mp4 for clip.fervid.csv).",
    )


@cli.command(context_settings=CONTEXT)
@click.argument("table", type=click.Path(exists=True, dir_okay=False))
@_video_option("for the people's faces")
@click.option("--elan", is_flag=True, help="Also the ELAN document and the episodes as text.")
@click.option("--no-page", is_flag=True, help="No review page (VIDEO.fervid.html).")
@click.option("--overwrite", is_flag=True, help="Replace outputs fervid wrote before.")
@click_options(EpisodeOptions)
@click.pass_context
def report(ctx, table, video, elan, no_page, overwrite, **settings):
    """People, emotion episodes, faces, ELAN and the review page of an existing video table
    (VIDEO.fervid.csv), without analysing the video again."""
    from .checkpoint import CheckpointError
    from .outputs import OutputError
    from .takeaway import report_table
    from .video import VideoError

    episodes = _settings(EpisodeOptions, settings)
    try:
        written = report_table(
            table, video=video, elan=elan, page=not no_page, overwrite=overwrite, options=episodes
        )
    except (OutputError, VideoError, CheckpointError, ValueError, OSError) as exc:
        raise click.ClickException(_line(exc)) from None
    if not ctx.obj["quiet"]:
        click.echo(f"{_printable(table)} -> " + _printable(", ".join(map(str, written.values()))))


# -- regroup ---------------------------------------------------------------------------


def _numbers(values: tuple[str, ...], what: str) -> list[list[str]]:
    """Comma-separated lists of numbers (or P@SECONDS), each at least two long."""
    out = []
    for v in values:
        items = [x.strip() for x in v.split(",") if x.strip()]
        if len(items) < 2:
            raise click.UsageError(f"{what} {v!r}: give two or more, separated by commas")
        out.append(items)
    return out


def _persons(groups: list[list[str]]) -> list[list[int]]:
    try:
        return [[int(p.removeprefix("P").removeprefix("p")) for p in g] for g in groups]
    except ValueError:
        raise click.UsageError("--same takes person numbers, e.g. --same 1,4") from None


@cli.command(context_settings=CONTEXT)
@click.argument("table", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--people",
    type=click.IntRange(0),
    default=None,
    help="How many people appear (0: not known). Default: as the run was asked.",
)
@click.option(
    "--same",
    multiple=True,
    metavar="P,Q[,...]",
    help="These persons (the table's numbers now) are one person. Repeat for more.",
)
@click.option(
    "--apart",
    multiple=True,
    metavar="A,B[,...]",
    help="These tracks are different people: track ids (the face column) or P@SECONDS "
    "(person P's track at that time in the video). Repeat for more.",
)
@click.option("--reset", is_flag=True, help="Forget the corrections given before.")
@_video_option("to draw the annotated video and the faces again")
@click_options(EpisodeOptions)
@click.pass_context
def regroup(ctx, table, people, same, apart, reset, video, **settings):
    """Choose the people of an annotated video again, without analysing it again: another
    number of people, persons that are one, tracks that are two. Rewrites the table's person
    columns and the outputs made from it (video, people, episodes, faces, plot, ELAN, page)."""
    from .outputs import OutputError
    from .regroup import regroup_table
    from .video import VideoError

    episodes = _settings(EpisodeOptions, settings)
    try:
        done = regroup_table(
            table,
            people=people,
            same=_persons(_numbers(same, "--same")),
            apart=_numbers(apart, "--apart"),
            reset=reset,
            video=video,
            options=episodes,
        )
    except (OutputError, VideoError, ValueError, OSError) as exc:
        raise click.ClickException(_line(exc)) from None
    if not ctx.obj["quiet"]:
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
@_common_options
@click_options(ImageOptions)
@click.option("--resume", is_flag=True, help="Continue an interrupted scan of the same folder.")
@click.option(
    "--report",
    "page",
    is_flag=True,
    help="Also write a page of the faces with their labels, filterable by emotion "
    "(the table's name with .html).",
)
@_ray_options
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
    from .cluster import ClusterError
    from .outputs import OutputError, OutputSkip
    from .photos import ScanInterrupted

    opts = _settings(ImageOptions, settings)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    root = Path(folder)
    if not (root.is_dir() or root.is_file()):
        raise click.UsageError(f"{_printable(root)}: not a folder or a regular file")
    final = Path(csv_path or root.resolve().parent / f"{root.resolve().name}.fervid.photos.csv")
    if fmt != "csv" and final.suffix.lower() == ".csv":
        final = final.with_suffix(f".{fmt}")
    model = _load(model_path, device, backend)
    ray = {}
    if ray_address:
        ray = {
            "ray_address": ray_address,
            "model": model_path,
            "ray_resources": _resources(ray_workers, num_cpus, num_gpus),
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
