"""``fervid``: the command line, a thin layer over :mod:`fervid.api`."""

from __future__ import annotations

import csv
import logging
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


def _load(model_path, device):
    from .checkpoint import CheckpointError
    from .classify import load_model

    try:
        return load_model(model_path, device=device)
    except (CheckpointError, ValueError) as exc:
        raise click.UsageError(str(exc).splitlines()[0]) from None


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


def _video_inputs(inputs: tuple[str, ...]) -> list[Path]:
    from .images import VIDEO_EXTS, walk_files

    out: list[Path] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            out += [v for v in walk_files(p, VIDEO_EXTS) if ".fervid" not in v.name]
        else:
            out.append(p)
    return out


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
):
    """Annotate videos: per-frame CSV (VIDEO.fervid.csv) and annotated video (VIDEO.fervid.mp4).

    INPUTS are video files or folders of videos."""
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("--end must be after --start", param_hint="--end")
    if detect_size and detect_size < 64:
        raise click.BadParameter("must be 0 or >= 64", param_hint="--detect-size")
    videos = _video_inputs(inputs)
    if not videos:
        raise click.UsageError("no video files found in the given inputs")
    model = _load(model_path, device)
    quiet = ctx.obj["quiet"]
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    opts = {
        "batch_size": batch_size,
        "every": every,
        "detect_interval": detect_interval,
        "start": start,
        "end": end,
        "min_face_size": min_face_size,
        "detect_size": detect_size,
        "smooth": smooth,
    }
    failed: list[str] = []
    for video in videos:
        try:
            ok = _annotate_one(
                video,
                model,
                opts,
                out_dir=out_dir,
                no_video=no_video,
                plot=plot,
                overwrite=overwrite,
                resume=resume,
                quiet=quiet,
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
    if failed:
        click.echo(
            f"{len(failed)} of {len(videos)} input(s) failed: " + ", ".join(failed), err=True
        )
        sys.exit(1)


def _outputs(video: Path, out_dir: str | None) -> dict[str, Path]:
    base = Path(out_dir) if out_dir else video.parent
    stem = video.stem
    return {
        "csv": base / f"{stem}.fervid.csv",
        "mp4": base / f"{stem}.fervid.mp4",
        "png": base / f"{stem}.fervid.png",
    }


def _annotate_one(
    video: Path, model, opts: dict, *, out_dir, no_video, plot, overwrite, resume, quiet
) -> bool:
    from tqdm import tqdm

    from .api import annotate_video, summarize_csv
    from .video import VideoError, VideoInfo

    outs = _outputs(video, out_dir)
    wanted = {"csv"} | (set() if no_video else {"mp4"}) | ({"png"} if plot else set())
    for k in wanted:
        if outs[k].resolve() == video.resolve():
            click.echo(f"{video}: output {outs[k]} would overwrite the input; skipped", err=True)
            return False
    existing = [str(outs[k]) for k in sorted(wanted) if outs[k].exists()]
    if existing and not overwrite:
        click.echo(
            f"{video}: skipped, outputs exist ({', '.join(existing)}); --overwrite to redo",
            err=True,
        )
        return True
    try:
        info = VideoInfo.from_path(video)
    except VideoError as exc:
        click.echo(f"{video}: {_tail(exc, video)}", err=True)
        return False
    total_s = (opts["end"] or info.duration_s or 0) - (opts["start"] or 0)
    total = int(total_s * info.fps) if total_s > 0 else None
    bar = tqdm(total=total, desc=video.name, unit="frame", disable=quiet or None, leave=False)
    try:
        report = annotate_video(
            video,
            outs["csv"],
            model=model,
            annotated=None if no_video else outs["mp4"],
            resume=resume,
            progress=bar.update,
            **opts,
        )
    except (VideoError, ValueError) as exc:
        bar.close()
        click.echo(f"{video}: {_tail(exc, video)}", err=True)
        return False
    finally:
        bar.close()
    if plot:
        from .plot import plot_timeline

        plot_timeline(outs["csv"], model.classes, outs["png"], title=video.name)
    s = summarize_csv(outs["csv"])
    done = f"{report.frames} frames ({report.analysed} analysed"
    if report.resumed_from is not None:
        done += f", resumed after frame {report.resumed_from}"
    lines = [
        f"{video}: {done}) in {report.seconds:.1f} s, {report.frames_per_s:.1f} frames/s; "
        f"{s['faces']} faces in {len(s['tracks'])} tracks"
    ]
    for t in s["tracks"][:10]:
        lines.append(
            f"  face {t['face']}: {t['emotion']} {t['share']:.0%} of {t['frames']} analysed frames"
        )
    lines.append("  -> " + ", ".join(str(outs[k]) for k in ("csv", "mp4", "png") if k in wanted))
    if not quiet:
        click.echo("\n".join(lines))
    if report.error:
        click.echo(
            f"{video}: truncated or damaged, processed up to the error ({report.error})", err=True
        )
        return False
    return True


def _tail(exc: BaseException, video: Path) -> str:
    msg = str(exc).splitlines()[0]
    prefix = f"{video}: "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


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
@click.pass_context
def scan(
    ctx, folder, csv_path, model_path, device, crops, min_face_size, detect_size, resume, overwrite
):
    """Scan a folder of photos (recursively): one CSV row per face."""
    from tqdm import tqdm

    from .api import iter_images, relpath, resolve_inputs
    from .writers import WRITERS, image_columns, repair_partial_csv

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if detect_size and detect_size < 64:
        raise click.BadParameter("must be 0 or >= 64", param_hint="--detect-size")
    root = Path(folder)
    final = (
        Path(csv_path) if csv_path else root.resolve().parent / f"{root.resolve().name}.fervid.csv"
    )
    partial = final.with_name(final.stem + ".partial" + final.suffix)
    if final.exists() and not (overwrite or resume):
        raise click.UsageError(
            f"{final} exists: --overwrite to replace it, --resume to continue it"
        )
    model = _load(model_path, device)
    columns = image_columns(model.classes)
    done: set[str] = set()
    if resume:
        if final.exists() and not partial.exists():
            os.replace(final, partial)
        if partial.exists():
            repair_partial_csv(partial)
            with open(partial, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is not None and header != columns:
                    raise click.UsageError(
                        f"{partial} was written with other columns (another "
                        "model?); cannot resume it"
                    )
                done = {row[0] for row in reader if row}
    elif partial.exists():
        partial.unlink()
    final.parent.mkdir(parents=True, exist_ok=True)
    paths, base = resolve_inputs(root)
    writer = WRITERS["csv"](partial, columns, append=resume)
    failed: list[str] = []
    n_faces = n_images = 0
    bar = tqdm(
        total=len(paths) - len(done & {relpath(p, base) for p in paths}),
        unit="img",
        disable=ctx.obj["quiet"] or None,
        leave=False,
    )
    try:
        for res in iter_images(
            paths,
            relative_to=base,
            model=model,
            crops=crops,
            min_face_size=min_face_size,
            detect_size=detect_size,
            skip=done.__contains__,
        ):
            writer.write(res.rows())
            n_images += 1
            n_faces += len(res.faces)
            if res.error:
                failed.append(f"{res.relpath} ({res.error})")
            bar.update(1)
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
    os.replace(partial, final)
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


def main() -> None:
    # OpenMP threads sleep between operations instead of spinning, which leaves the CPU to
    # the video encoder and decoder threads (measured: +13% frames/s with video, bench/video.py)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cli(prog_name="fervid")


if __name__ == "__main__":
    main()
