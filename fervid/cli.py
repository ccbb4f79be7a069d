"""``fervid``: the command line, a thin layer over :mod:`fervid.api`."""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
from pathlib import Path

import click

log = logging.getLogger(__name__)
CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"]}


def _device_option(f):
    return click.option(
        "--device",
        default="auto",
        help="auto (cuda, then mps, else cpu), cpu, cuda, cuda:N or mps.",
    )(f)


def _model_option(f):
    return click.option(
        "--model",
        "model_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="A fervid checkpoint (from fervid-train). Default: the bundled model.",
    )(f)


def _format_option(f):
    # the keys of fervid.writers.WRITERS, written out: the command starts without numpy
    return click.option(
        "--format",
        "fmt",
        default="csv",
        type=click.Choice(["csv", "jsonl", "parquet"]),
        help="Output format: CSV, JSON lines, or Parquet (pip install \"fervid[parquet]\"); the "
        "rows are streamed to a CSV first, which becomes the chosen format when done.",
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
        help="Run on a Ray cluster (pip install \"fervid[ray]\"): local starts one here, auto "
        "joins this machine's, ray://... a remote one. Inputs and outputs on shared storage.",
    )(f)


def _ray_setup(address, ray_workers, num_cpus, num_gpus):
    """Connect to the cluster; the workers' resources."""
    from .cluster import ClusterError, Resources, connect

    try:
        connect(address)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    return Resources(workers=ray_workers, num_cpus=num_cpus, num_gpus=num_gpus)


def _load(model_path, device):
    from .checkpoint import CheckpointError
    from .classify import load_model

    try:
        return load_model(model_path, device=device)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        from .errors import first_line

        msg = first_line(exc, 400)
        if isinstance(exc, RuntimeError) and "device" in msg:
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


@cli.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write outputs here instead of beside each input.",
)
@_model_option
@_device_option
@click.option(
    "--batch-size",
    default=16,
    type=click.IntRange(1, 1024),
    help="Frames detected and classified together.",
)
@click.option(
    "--every",
    default=1,
    type=click.IntRange(1),
    help="Analyse every Nth frame (the video still gets every frame).",
)
@click.option(
    "--detect-interval",
    default=1.0,
    type=click.FloatRange(0),
    help="Search the whole frame for faces at least this often (seconds), and also on scene "
    "cuts, when something moves outside the tracked faces (at most every 0.2 s) and when a "
    "tracked face is lost; in between, only near where each face is expected. A face that "
    "appears is found within this delay at worst. 0: every analysed frame.",
)
@click.option("--start", type=click.FloatRange(0), default=None, help="Start time (s).")
@click.option("--end", type=click.FloatRange(0, min_open=True), default=None, help="End time (s).")
@click.option(
    "--min-face-size",
    default=32,
    type=click.IntRange(4),
    help="Smallest face to find, in pixels of the original frame (smaller faces read poorly: "
    "docs/video.md; smaller values make whole-frame searches slower).",
)
@click.option(
    "--detect-size",
    default=960,
    type=click.IntRange(0),
    help="Long side (px) the detector sees on keyframes; boxes map back to full "
    "resolution; faces under 12 px at that size are not sought. 0: full resolution.",
)
@click.option(
    "--smooth",
    default=0.2,
    type=click.FloatRange(0),
    help="Per-track smoothing of probabilities, time constant in seconds (0: each frame's "
    "own probabilities).",
)
@click.option("--no-video", is_flag=True, help="Write the CSV only.")
@click.option("--plot", is_flag=True, help="Also write a PNG timeline of each track's emotions.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue interrupted runs from their last complete chunk of frames (same rows as an "
    "uninterrupted run; the video is then drawn from the rows).",
)
@_format_option
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
    inputs,
    out_dir,
    model_path,
    device,
    batch_size,
    every,
    detect_interval,
    start,
    end,
    min_face_size,
    detect_size,
    smooth,
    no_video,
    plot,
    overwrite,
    resume,
    fmt,
    ray_address,
    ray_workers,
    num_cpus,
    num_gpus,
    ray_split,
):
    """Annotate videos: per-frame CSV (VIDEO.fervid.csv) and annotated video (VIDEO.fervid.mp4).

    INPUTS are video files or folders of videos."""
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("--end must be after --start", param_hint="--end")
    if detect_size and detect_size < 64:
        raise click.BadParameter("must be 0 or >= 64", param_hint="--detect-size")
    for name, v in (("--start", start), ("--end", end)):
        if v is not None and not math.isfinite(v):
            raise click.BadParameter("must be a finite number of seconds", param_hint=name)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    found, unread = _video_inputs(inputs)
    if not found:
        if unread:
            sys.exit(1)
        raise click.UsageError("no video files found in the given inputs")
    from .outputs import plan_outputs
    from .writers import working_table

    plan = plan_outputs(found, out_dir)
    for outs in plan.values():
        outs["table"] = working_table(outs[fmt])
    videos = [v for v, _ in found]
    opts = opts_of(
        batch_size, every, detect_interval, start, end, min_face_size, detect_size, smooth
    )
    flags = {"no_video": no_video, "plot": plot, "overwrite": overwrite, "resume": resume,
             "fmt": fmt}  # fmt: skip
    if ray_address:
        resources = _ray_setup(ray_address, ray_workers, num_cpus, num_gpus)
        failed = _annotate_on_ray(ctx, videos, plan, model_path, device, resources,
                                  options=opts, split=ray_split, **flags)  # fmt: skip
    else:
        failed = _annotate_here(ctx, videos, plan, model_path, device, opts, flags)
    _exit_if_failed(unread + failed, len(unread) + len(videos))


def _annotate_here(ctx, videos, plan, model_path, device, opts, flags) -> list[str]:
    """The videos one after the other on this machine; the ones that failed."""
    model = _load(model_path, device)
    failed: list[str] = []
    for video in videos:
        try:
            ok = _annotate_one(
                video, model, opts, outs=plan[video], quiet=ctx.obj["quiet"], **flags
            )
        except KeyboardInterrupt:
            click.echo(
                f"interrupted: {video}'s rows so far are kept; run again with --resume to "
                "continue",
                err=True,
            )
            sys.exit(130)
        if not ok:
            failed.append(str(video))
    return failed


def _exit_if_failed(failed: list[str], total: int) -> None:
    if failed:
        click.echo(f"{len(failed)} of {total} input(s) failed: " + ", ".join(failed), err=True)
        sys.exit(1)


def _annotate_one(
    video: Path, model, opts: dict, *, outs, no_video, plot, overwrite, resume, fmt, quiet
) -> bool:
    from .outputs import OutputError

    wanted = _wanted(no_video, plot, fmt)
    ready = _ready(video, outs, wanted, overwrite=overwrite, resume=resume)
    if ready is not True:
        return ready is None  # skipped is not failed
    try:
        return _annotate_checked(
            video, model, opts, outs=outs, wanted=wanted, plot=plot, resume=resume, quiet=quiet,
            fmt=fmt,
        )  # fmt: skip
    except OutputError as exc:
        click.echo(f"{_printable(video)}: {_line(exc)}", err=True)
        return False


def _ready(video, outs, wanted, *, overwrite, resume) -> bool | None:
    """Check a video's outputs before any work: True to go on, None when the video is
    skipped, False when it fails (both said on stderr)."""
    from .outputs import OutputError, check_writable

    try:
        _check_outputs(video, outs, wanted, overwrite=overwrite, resume=resume)
        check_writable(outs["table"].parent)
    except _Skip as skip:
        click.echo(f"{_printable(video)}: {skip}", err=True)
        return None
    except OutputError as exc:
        click.echo(f"{_printable(video)}: {_line(exc)}", err=True)
        return False
    return True


def _wanted(no_video: bool, plot: bool, fmt: str) -> set[str]:
    """The outputs asked for: the table (in its format), the video, the plot."""
    return {fmt} | (set() if no_video else {"mp4"}) | ({"png"} if plot else set())


class _Skip(Exception):
    """Outputs exist and may be kept: the video is skipped (not a failure)."""


def opts_of(batch_size, every, detect_interval, start, end, min_face_size, detect_size, smooth):
    return {
        "batch_size": batch_size,
        "every": every,
        "detect_interval": detect_interval,
        "start": start,
        "end": end,
        "min_face_size": min_face_size,
        "detect_size": detect_size,
        "smooth": smooth,
    }


def _annotate_on_ray(ctx, videos, plan, model_path, device, resources, *, no_video, plot,
                     overwrite, resume, fmt, options, split) -> list[str]:  # fmt: skip
    """The videos as Ray tasks (one per video); outputs checked here first, as on one
    machine; a progress bar over the videos; the usual summary per video. Returns the
    videos that failed."""
    from tqdm import tqdm

    from .api import summarize_csv
    from .cluster import annotate_jobs
    from .writers import classes_of, write_format

    quiet = ctx.obj["quiet"]
    wanted = _wanted(no_video, plot, fmt)
    jobs, failed = [], []
    for video in videos:
        outs = plan[video]
        ready = _ready(video, outs, wanted, overwrite=overwrite, resume=resume)
        if ready is False:
            failed.append(str(video))
        elif ready:
            jobs.append((video, outs["table"], outs["mp4"] if "mp4" in wanted else None))
    bar = tqdm(total=len(jobs), unit="video", disable=quiet or None, leave=False)
    reports = annotate_jobs(
        jobs, model_path=model_path, device=device, options=options, resources=resources,
        resume=resume, split_seconds=split * 60 if split else None,
        on_done=lambda r: bar.update(1),
    )  # fmt: skip
    bar.close()
    for (video, csv_path, _), r in zip(jobs, reports):
        if r.get("error") and not r.get("frames"):
            click.echo(f"{_printable(video)}: {_printable(r['error'])}", err=True)
            failed.append(str(video))
            continue
        if plot:
            from .plot import plot_timeline

            plot_timeline(csv_path, classes_of(csv_path), plan[video]["png"], title=video.name)
        s = summarize_csv(csv_path)
        write_format(csv_path, plan[video][fmt])
        if not quiet:
            click.echo(
                f"{_printable(video)}: {r['frames']} frames ({r['analysed']} analysed) on "
                f"Ray in {r['seconds']:.1f} s; {s['faces']} faces in {len(s['tracks'])} tracks"
            )
        if r.get("error"):
            click.echo(f"{_printable(video)}: truncated or damaged ({r['error']})", err=True)
            failed.append(str(video))
    return failed


def _check_outputs(video, outs, wanted, *, overwrite, resume) -> None:
    """Refuse outputs that are the input, or files fervid did not write; skip a video whose
    outputs exist unless asked to redo or resume it."""
    from .outputs import check_output, is_fervid_output, may_replace, partial_path
    from .video import is_fervid_video

    for k in wanted:
        check_output(outs[k], inputs=[video], kind=k)
    existing = [k for k in sorted(wanted) if outs[k].exists()]
    if existing and not (overwrite or resume):
        names = ", ".join(str(outs[k]) for k in existing)
        raise _Skip(f"skipped, outputs exist ({names}); --overwrite to redo")
    if resume and set(existing) == wanted and not partial_path(outs["table"]).exists():
        raise _Skip("finished earlier; skipped")
    owned = {"mp4": is_fervid_video, "png": _is_fervid_png}
    paths = {outs[k]: k for k in wanted} | {outs["table"]: "csv"}
    for path, k in paths.items():
        own = owned.get(k, is_fervid_output)
        may_replace(path, own)
        may_replace(partial_path(path), lambda p, own=own, k=k: own(p) or _unfinished(p, k))


def _unfinished(path: Path, kind: str) -> bool:
    """A file of this kind cut off mid-write (by a kill), as fervid's partial files can be:
    an MP4 that starts with its file-type box, or a PNG with its signature."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    if kind == "mp4":
        return head[4:8] == b"ftyp" or not head
    if kind == "png":
        return head.startswith(b"\x89PNG") or not head
    return False


def _is_fervid_png(path: Path) -> bool:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.info.get("Software", "").startswith("fervid")
    except OSError:
        return False


def _annotate_checked(video, model, opts, *, outs, wanted, plot, resume, quiet, fmt) -> bool:
    from tqdm import tqdm

    from ._malloc import Releaser
    from .api import annotate_video
    from .outputs import OutputError
    from .video import VideoError, VideoInfo

    try:
        info = VideoInfo.from_path(video)
    except VideoError as exc:
        click.echo(f"{_printable(video)}: {_tail(exc, video)}", err=True)
        return False
    total_s = (opts["end"] or info.duration_s or 0) - (opts["start"] or 0)
    total = int(total_s * info.fps) if total_s > 0 else None
    bar = tqdm(total=total, desc=video.name, unit="frame", disable=quiet or None, leave=False)
    try:
        report = annotate_video(
            video,
            outs["table"],
            model=model,
            annotated=outs["mp4"] if "mp4" in wanted else None,
            resume=resume,
            progress=Releaser(bar.update),
            **opts,
        )
    except OutputError:
        raise
    except (VideoError, ValueError) as exc:
        bar.close()  # before the message, so that it is not drawn over
        click.echo(f"{_printable(video)}: {_tail(exc, video)}", err=True)
        return False
    finally:
        bar.close()
    if plot:
        from .plot import plot_timeline

        plot_timeline(outs["table"], model.classes, outs["png"], title=video.name)
    ok = _report(video, report, outs, wanted, quiet)
    from .writers import write_format

    write_format(outs["table"], outs[fmt])
    return ok


def _report(video, report, outs, wanted, quiet) -> bool:
    """The summary of one video; False when it failed (truncated or damaged)."""
    from .api import summarize_csv

    s = summarize_csv(outs["table"])
    done = f"{report.frames} frames ({report.analysed} analysed"
    if report.resumed_from is not None:
        done += f", resumed after frame {report.resumed_from}"
    if report.bad_packets:
        done += f", {report.bad_packets} undecodable packet(s) skipped"
    lines = [
        f"{_printable(video)}: {done}) in {report.seconds:.1f} s, "
        f"{report.frames_per_s:.1f} frames/s; "
        f"{s['faces']} faces in {len(s['tracks'])} tracks"
    ]
    for t in s["tracks"][:10]:
        lines.append(
            f"  face {t['face']}: {t['emotion']} {t['share']:.0%} of {t['frames']} analysed frames"
        )
    lines.append(
        "  -> " + ", ".join(str(outs[k]) for k in ("csv", "jsonl", "parquet", "mp4", "png")
                            if k in wanted)
    )  # fmt: skip
    if not quiet:
        click.echo("\n".join(lines))
    if report.error:
        click.echo(
            f"{_printable(video)}: truncated or damaged, processed up to the error "
            f"({report.error})",
            err=True,
        )
        return False
    return True


def _tail(exc: BaseException, video: Path) -> str:
    from .errors import first_line

    msg = first_line(exc, 400)
    prefix = f"{video}: "
    return _printable(msg[len(prefix) :] if msg.startswith(prefix) else msg)


# -- scan ------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("folder", type=click.Path(exists=True))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output CSV. Default: FOLDER.fervid.csv beside the folder.",
)
@_model_option
@_device_option
@click.option(
    "--crops",
    is_flag=True,
    help="Every image is already a face crop: classify it whole, no detection.",
)
@click.option(
    "--min-face-size", default=20, type=click.IntRange(4), help="Smallest face to find, in pixels."
)
@click.option(
    "--detect-size",
    default=1024,
    type=click.IntRange(0),
    help="Larger images are downscaled to this long side for detection. 0: never.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted scan of the same folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing CSV.")
@_format_option
@_ray_options
@click.pass_context
def scan(
    ctx, folder, csv_path, model_path, device, crops, min_face_size, detect_size, resume, overwrite,
    fmt, ray_address, ray_workers, num_cpus, num_gpus,
):  # fmt: skip
    """Scan a folder of photos (recursively): one CSV row per face."""
    from .outputs import OutputError, OutputLock, check_output, check_writable

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if detect_size and detect_size < 64:
        raise click.BadParameter("must be 0 or >= 64", param_hint="--detect-size")
    root = Path(folder)
    final = (
        Path(csv_path) if csv_path else root.resolve().parent / f"{root.resolve().name}.fervid.csv"
    )
    if fmt != "csv" and final.suffix.lower() == ".csv":
        final = final.with_suffix(f".{fmt}")
    model = _load(model_path, device)
    ray = None
    if ray_address:
        ray = (_ray_setup(ray_address, ray_workers, num_cpus, num_gpus), model_path, device)
    try:
        check_output(final, inputs=[root] if root.is_file() else [], kind=fmt)
        check_writable(final.parent)
        with OutputLock(final):
            _scan(ctx, root, final, model, crops, min_face_size, detect_size, resume, overwrite,
                  ray, fmt)  # fmt: skip
    except OutputError as exc:
        raise click.ClickException(_line(exc)) from None


def _scan(
    ctx, root, final, model, crops, min_face_size, detect_size, resume, overwrite, ray=None,
    fmt="csv",
) -> None:  # fmt: skip
    from tqdm import tqdm

    from ._malloc import Releaser
    from .api import relpath, resolve_inputs
    from .writers import CsvRowWriter, image_columns, working_table, write_format

    columns = image_columns(model.classes)
    table = working_table(final)  # the rows go here; another format is made from it
    partial = _prepare_scan_outputs(final, table, columns, resume=resume, overwrite=overwrite)
    done = _done_images(partial) if resume and partial.exists() else set()
    paths, base = resolve_inputs(root)
    writer = CsvRowWriter(partial, columns, append=resume)
    failed: list[str] = []
    n_faces = n_images = 0
    release = Releaser()
    bar = tqdm(
        total=len(paths) - len(done & {relpath(p, base) for p in paths}),
        unit="img",
        disable=ctx.obj["quiet"] or None,
        leave=False,
    )
    options = {"crops": crops, "min_face_size": min_face_size, "detect_size": detect_size}
    try:
        for rows in _image_rows(paths, base, model, options, done, ray):
            writer.write(rows)
            n_images += 1
            n_faces += sum(1 for r in rows if r[1] != "")
            if rows[0][-1]:
                failed.append(f"{_printable(rows[0][0])} ({rows[0][-1]})")
            bar.update(1)
            release(1)
    except KeyboardInterrupt:
        writer.close()
        bar.close()
        click.echo(
            f"interrupted: {n_images} images written to {partial}; run again with "
            "--resume to continue",
            err=True,
        )
        sys.exit(130)
    writer.close()
    bar.close()
    os.replace(partial, table)
    write_format(table, final)
    if not ctx.obj["quiet"]:
        click.echo(
            f"{n_images} images scanned ({len(done)} already done), {n_faces} faces -> {final}"
        )
    if failed:
        click.echo(f"{len(failed)} file(s) could not be read:", err=True)
        for f in failed[:20]:
            click.echo(f"  {f}", err=True)
        if len(failed) > 20:
            click.echo(f"  ... and {len(failed) - 20} more (see the error column)", err=True)
        sys.exit(1)


def _image_rows(paths, base, model, options, done, ray):
    """Each image's rows, in order: read here, or by a pool of Ray workers."""
    from .api import iter_images, relpath

    if ray is None:
        for res in iter_images(
            paths, relative_to=base, model=model, skip=done.__contains__, **options
        ):
            yield res.rows()
        return
    from .cluster import scan_rows

    resources, model_path, device = ray
    todo = [p for p in paths if relpath(p, base) not in done]
    for shard in scan_rows(todo, base, model_path=model_path, device=device, options=options,
                           resources=resources):  # fmt: skip
        yield from shard


def _prepare_scan_outputs(final: Path, table: Path, columns, *, resume: bool, overwrite: bool):
    """Check every existing output before touching any; returns the partial CSV's path
    (``final``: the output, ``table``: the CSV the rows go to, the same path for CSV)."""
    from .outputs import OutputError, is_fervid_csv, may_replace, partial_path

    partial = partial_path(table)
    if final.exists() and not (overwrite or resume):
        raise OutputError(f"{final} exists: --overwrite to replace it, --resume to continue it")
    may_replace(final)
    if final != table and resume and final.exists() and not partial.exists():
        raise OutputError(f"{final}: finished already; --overwrite to redo it")
    final = table
    may_replace(final)
    may_replace(partial)
    if resume:
        for p in (partial, final):
            if p.exists() and not is_fervid_csv(p, columns):
                raise OutputError(
                    f"{p} was written with other columns (another model?); cannot resume it"
                )
        if final.exists() and not partial.exists():
            os.replace(final, partial)
    else:
        partial.unlink(missing_ok=True)
    return partial


def _done_images(partial: Path) -> set[str]:
    """Images whose rows are complete in a partial CSV; the last one's rows may not be (a
    kill between two of its faces): they are cut, and it is done again."""
    from .writers import drop_last_item, repair_partial_csv

    repair_partial_csv(partial)
    drop_last_item(partial)
    with open(partial, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return {row[0] for row in reader if row}


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
