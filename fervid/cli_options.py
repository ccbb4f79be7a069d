"""The options the ``fervid`` commands share, declared once as click decorators, and the
parsing of the values that are lists (``--same 1,4``)."""

from __future__ import annotations

import click

from .options import EpisodeOptions, VideoOptions, click_options
from .writers import WRITERS

BACKENDS = ("auto", "torch", "openvino")  # fervid.classify.BACKENDS (tested equal)


def common_options(f):
    f = click.option(
        "--format",
        "fmt",
        default="csv",
        type=click.Choice(list(WRITERS)),
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


def ray_options(f):
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


def resources(ray_workers, num_cpus, num_gpus):
    from .ray_jobs import Resources  # Ray's side imports the whole pipeline

    return Resources(workers=ray_workers, num_cpus=num_cpus, num_gpus=num_gpus)


def video_option(what: str):
    """``--video``: the analysed video of a table, ``what`` for."""
    return click.option(
        "--video",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help=f"The analysed video ({what}). Default: the video beside the table with its name "
        "(clip.mp4 for clip.fervid.csv).",
    )


def numbers(values: tuple[str, ...], what: str) -> list[list[str]]:
    """Comma-separated lists of numbers (or P@SECONDS), each at least two long."""
    out = []
    for v in values:
        items = [x.strip() for x in v.split(",") if x.strip()]
        if len(items) < 2:
            raise click.UsageError(f"{what} {v!r}: give two or more, separated by commas")
        out.append(items)
    return out


def persons(groups: list[list[str]]) -> list[list[int]]:
    try:
        return [[int(p.removeprefix("P").removeprefix("p")) for p in g] for g in groups]
    except ValueError:
        raise click.UsageError("--same takes person numbers, e.g. --same 1,4") from None


def annotate_options(f):
    """The options of ``fervid annotate``."""
    f = click.option(
        "--ray-split",
        default=None,
        type=click.FloatRange(0, min_open=True),
        metavar="MINUTES",
        help="With --ray-address: cut longer videos into parts of this many minutes analysed in "
        "parallel, then stitched (track ids continued across the cuts).",
    )(f)
    f = ray_options(f)
    f = click.option(
        "--resume",
        is_flag=True,
        help="Continue interrupted runs from their last complete chunk of frames (same rows as an "
        "uninterrupted run; the video is then drawn from the rows).",
    )(f)
    f = click_options(EpisodeOptions)(f)
    f = click.option(
        "--page",
        "--report",
        "page",
        is_flag=True,
        help="Also write a page to review the result (VIDEO.fervid.html): the video, a "
        "timeline per person, the people with their faces (--report: its older name).",
    )(f)
    f = click.option(
        "--elan",
        is_flag=True,
        help="Also write the episodes for ELAN (VIDEO.fervid.eaf, one tier per person) and "
        "as tab-separated text (VIDEO.fervid.episodes.tsv; ELAN's and BORIS's imports).",
    )(f)
    f = click.option(
        "--plot", is_flag=True, help="Also write a PNG timeline of each person's emotions."
    )(f)
    f = click.option("--no-video", is_flag=True, help="Write the table only.")(f)
    f = click_options(VideoOptions)(f)
    f = common_options(f)
    f = click.option(
        "--out-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Write outputs here instead of beside each input.",
    )(f)
    f = click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))(f)
    return f


def regroup_options(f):
    """``fervid regroup``'s corrections: --people, --same, --apart, --cut, --reset."""
    f = click.option("--reset", is_flag=True, help="Forget the corrections given before.")(f)
    f = click.option(
        "--cut",
        type=click.FloatRange(0),
        metavar="SECONDS",
        help="Where the track named at two times by --apart is parted (default: where its "
        "face's embedding changes most between them, read from the video).",
    )(f)
    f = click.option(
        "--apart",
        multiple=True,
        metavar="A,B[,...]",
        help="These tracks are different people: track ids (the face column) or P@SECONDS "
        "(person P's track at that time in the video). Two times of one track part it "
        "between them, where its face changes most (or at --cut). Repeat for more.",
    )(f)
    f = click.option(
        "--same",
        multiple=True,
        metavar="P,Q[,...]",
        help="These persons (the table's numbers now) are one person. Repeat for more.",
    )(f)
    return click.option(
        "--people",
        type=click.IntRange(0),
        default=None,
        help="How many people appear (0: not known). Default: as the run was asked.",
    )(f)
