"""``fervid-train``: train one or several architectures (the study), evaluate checkpoints."""

from __future__ import annotations

import json
import logging
import sys

import click

from fervid.checkpoint import CheckpointError

from .data import DataError
from .models import REGISTRY, STUDY_ARCHS, PretrainedUnavailable

log = logging.getLogger(__name__)
CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"]}
ERRORS = (DataError, CheckpointError, PretrainedUnavailable, ValueError, OSError, RuntimeError)


def _archs(ctx, param, value: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for v in value or STUDY_ARCHS:
        names += [a.strip() for a in v.split(",") if a.strip()]
    bad = [a for a in names if a not in REGISTRY]
    if bad:
        raise click.BadParameter(
            f"unknown architecture(s) {', '.join(bad)}; choose from {', '.join(REGISTRY)}"
        )
    return names


@click.group(invoke_without_command=True, context_settings=CONTEXT)
@click.option(
    "--data",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Dataset root: RAF-DB layout or class folders (train/, val/, test/). Repeat for "
    "several datasets in one run: their classes are mapped onto the seven emotions.",
)
@click.option(
    "--archs",
    multiple=True,
    callback=_archs,
    metavar="NAMES",
    help=f"Architectures, comma-separated or repeated. Default: the study's five "
    f"({', '.join(STUDY_ARCHS)}). Registry: {', '.join(REGISTRY)}.",
)
@click.option("--epochs", default=20, type=click.IntRange(1), help="Training epochs.")
@click.option(
    "--time-budget",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="MINUTES",
    help="Per architecture: after the first epoch, train only as many epochs (at most "
    "--epochs) as fit in this many minutes; the schedule is planned to end there.",
)
@click.option(
    "--batch-size",
    default=64,
    type=click.IntRange(1),
    help="Images per step (per process under torchrun).",
)
@click.option(
    "--lr", default=1e-3, type=click.FloatRange(min=0, min_open=True), help="Peak learning rate."
)
@click.option(
    "--optimizer", default="adamw", type=click.Choice(["adamw", "sgd"]), help="Optimiser."
)
@click.option(
    "--schedule",
    default="cosine",
    type=click.Choice(["cosine", "plateau"]),
    help="After the warm-up: cosine decay to zero, or reduce-on-plateau of the selection "
    "metric.",
)
@click.option(
    "--plateau-patience",
    default=5,
    type=click.IntRange(0),
    help="plateau: epochs without improvement before the learning rate is cut.",
)
@click.option(
    "--plateau-factor",
    default=0.1,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="plateau: the cut's factor.",
)
@click.option(
    "--weight-decay", default=0.05, type=float, help="Weight decay (not on norms and biases)."
)
@click.option(
    "--warmup-epochs", default=1.0, type=float, help="Linear warm-up before the cosine schedule."
)
@click.option(
    "--label-smoothing",
    default=0.1,
    type=click.FloatRange(0, 1, max_open=True),
    help="Label smoothing.",
)
@click.option(
    "--input-size",
    type=click.IntRange(16, 1024),
    default=None,
    help="Input side in pixels. Default: each architecture's own (224, 300 for b3, 600 for b7).",
)
@click.option(
    "--pretrained/--no-pretrained",
    default=False,
    help="Start from torchvision's ImageNet weights (needs them online or in TORCH_HOME).",
)
@click.option(
    "--init",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Start from this fervid checkpoint's weights (fine-tuning; e.g. the bundled model). "
    "A head for other classes starts fresh.",
)
@click.option(
    "--balance",
    default="sampler",
    type=click.Choice(["sampler", "loss", "none"]),
    help="Class balance: inverse-frequency WeightedRandomSampler, class-weighted loss, or none.",
)
@click.option(
    "--balance-power",
    default=1.0,
    type=click.FloatRange(0, 1, min_open=True),
    help="Strength of balancing: class weight = count^-power "
    "(1: every class equally often; 0.5: square-root).",
)
@click.option(
    "--source-power",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Several --data: also balance the datasets, draw weight x count(dataset)^-power "
    "(1: each dataset equally often; 0: in proportion to its size).",
)
@click.option("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--amp",
    default="auto",
    type=click.Choice(["auto", "bf16", "fp16", "off"]),
    help="Mixed precision: auto = bf16/fp16 on CUDA, bf16 on CPUs with AMX, else off.",
)
@click.option("--clip-grad", default=1.0, type=float, help="Gradient norm clip (0: off).")
@click.option(
    "--ema/--no-ema",
    default=False,
    help="Keep and evaluate an exponential moving average of the weights.",
)
@click.option("--ema-decay", default=0.999, type=float, help="EMA decay per step.")
@click.option("--seed", default=0, type=int, help="Seed: same seed and data, same run.")
@click.option(
    "--workers",
    default=2,
    type=click.IntRange(0),
    help="DataLoader workers when streaming from disk.",
)
@click.option(
    "--cache",
    default="auto",
    type=click.Choice(["auto", "memory", "stream"]),
    help="Decode once into memory, or stream from disk. auto: memory when it fits in 3 GB.",
)
@click.option(
    "--select",
    default="balanced_acc",
    type=click.Choice(["balanced_acc", "acc", "macro_f1"]),
    help="Metric that picks the best checkpoint.",
)
@click.option(
    "--select-source",
    default="mean",
    metavar="mean|NAME",
    help="Several --data: select on the mean of --select over the datasets, or on one "
    "dataset's (its folder name, or rafdb).",
)
@click.option(
    "--eval-split",
    default="auto",
    type=click.Choice(["auto", "val", "holdout", "test"]),
    help="What selects the best epoch: auto = the dataset's val/ split, else a part of "
    "train held out (--holdout). 'test' selects on the test split (optimistic figures).",
)
@click.option(
    "--holdout",
    default=0.1,
    type=click.FloatRange(0, 1, max_open=True),
    help="Fraction of train held out (stratified, fixed seed) where a dataset has no val.",
)
@click.option(
    "--test/--no-test",
    default=True,
    help="Evaluate the best epoch once on each dataset's test split, if it has one "
    "(reported, never used for selection).",
)
@click.option(
    "--exclude",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A file listing training images to leave out (one path per line, relative to "
    "the file's folder), e.g. copies of another set's test images. Repeatable.",
)
@click.option(
    "--labels",
    default="dataset",
    type=click.Choice(["dataset", "ferplus"]),
    help="ferplus: train on FER+ crowd votes (ferplus.csv at a --data root) instead of the "
    "folder labels.",
)
@click.option(
    "--soft-labels",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A vote table (CSV: a path column relative to the file, one column per class) "
    "whose distributions are the training targets of the images it lists. Repeatable.",
)
@click.option(
    "--soft-min-valid",
    default=0.5,
    type=click.FloatRange(0, 1, min_open=True),
    help="Soft labels: skip an image whose votes for the classes (not contempt, unknown, "
    "not-a-face) are under this share of its votes.",
)
@click.option(
    "--eval-labels",
    default="dataset",
    type=click.Choice(["dataset", "majority"]),
    help="Soft labels: evaluate against the dataset's labels, or the votes' majority.",
)
@click.option(
    "--channels",
    default="auto",
    type=click.Choice(["auto", "grayscale", "rgb"]),
    help="Colour mode; auto: grayscale when the images are.",
)
@click.option(
    "--aug-scale",
    default=0.7,
    type=click.FloatRange(0.05, 1),
    help="Smallest area kept by the random resized crop.",
)
@click.option("--rotate", default=10.0, type=float, help="Max random rotation in degrees.")
@click.option("--jitter", default=0.3, type=float, help="Brightness/contrast/saturation jitter.")
@click.option(
    "--erase", default=0.25, type=click.FloatRange(0, 1), help="Random erasing probability."
)
@click.option(
    "--random-gray",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Colour models: probability of turning a training image grayscale.",
)
@click.option(
    "--mixup", default=0.0, type=click.FloatRange(0), help="Mixup Beta alpha (0: off)."
)
@click.option(
    "--cutmix", default=0.0, type=click.FloatRange(0), help="CutMix Beta alpha (0: off)."
)
@click.option(
    "--mix-prob",
    default=1.0,
    type=click.FloatRange(0, 1),
    help="Probability of mixing a batch (mixup or CutMix, chosen at random if both).",
)
@click.option(
    "--crop-scale",
    default=1.0,
    type=click.FloatRange(0.2, 5),
    help="Crop policy saved in the checkpoint: crop side = scale x the detector box's long side.",
)
@click.option(
    "--crop-shift",
    default=0.0,
    type=click.FloatRange(-1, 1),
    help="Crop policy: crop centre moved down by this fraction of the box height.",
)
@click.option(
    "--tta",
    default="none",
    type=click.Choice(["none", "hflip"]),
    help="Test-time augmentation for evaluation, saved in the checkpoint so that inference "
    "does the same: hflip averages each face with its mirror image.",
)
@click.option(
    "--ignore-unknown",
    is_flag=True,
    help="Skip class folders that are not one of the seven emotions (e.g. contempt) "
    "instead of refusing.",
)
@click.option(
    "--out",
    default="runs",
    type=click.Path(file_okay=False),
    help="Output folder: <out>/<arch>/ per run, the comparison report in <out>.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the runs found in --out from their last completed epoch.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx, data, archs, quiet, **opts):
    """Train emotion classifiers. Without a sub-command: train --archs on --data and write
    the comparison report (comparison.csv, comparison.md, plots) into --out."""
    from fervid import logs

    logs.configure(quiet=quiet)
    if ctx.invoked_subcommand is not None:
        return
    if not data:
        raise click.UsageError("--data is required (a dataset root); see --help")
    from .run import TrainConfig
    from .study import run_study

    cfg = TrainConfig(data=list(data), progress=not quiet and sys.stderr.isatty(), **opts)
    try:
        results = run_study(cfg, archs)
    except ERRORS as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; --resume continues from the last epoch") from None
    for r in results:
        click.echo(
            f"{r.arch}: acc {r.acc:.4f}  balanced {r.balanced_acc:.4f}  "
            f"macro-F1 {r.macro_f1:.4f}  fit {r.fit_seconds:.0f} s  -> {r.run_dir}"
        )


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset root.")
@click.option("--split", default="auto", help="Split to evaluate (auto: val, else test).")
@click.option("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--batch-size", default=128, type=click.IntRange(1), help="Images per forward pass.")
@click.option("--ignore-unknown", is_flag=True, help="Skip class folders that are not emotions.")
@click.option(
    "--json",
    "as_json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the metrics to this JSON file.",
)
def evaluate(checkpoint, data, split, device, batch_size, ignore_unknown, as_json):
    """Evaluate CHECKPOINT on a dataset split: accuracy, balanced accuracy, macro-F1,
    per-class recall, confusion matrix."""
    from fervid.outputs import check_output, write_text_atomic

    from .study import evaluate_checkpoint

    try:
        if as_json:
            check_output(as_json, inputs=[checkpoint], kind="json")
        m = evaluate_checkpoint(
            checkpoint,
            data,
            split=split,
            device=device,
            batch_size=batch_size,
            ignore_unknown=ignore_unknown,
            progress=sys.stderr.isatty(),
        )
    except ERRORS as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    click.echo(
        f"{m['arch']} on {m['split']} ({m['n']} images): accuracy {m['acc']:.4f}  "
        f"balanced accuracy {m['balanced_acc']:.4f}  macro-F1 {m['macro_f1']:.4f}"
    )
    width = max(len(c) for c in m["classes"])
    click.echo("per-class recall:")
    for c, r in zip(m["classes"], m["recall"]):
        click.echo(f"  {c:<{width}}  {r:.4f}")
    click.echo("confusion (rows true, columns predicted):")
    for c, row in zip(m["classes"], m["confusion"]):
        click.echo(f"  {c:<{width}}  " + " ".join(f"{v:5d}" for v in row))
    if as_json:
        try:
            write_text_atomic(as_json, json.dumps(m, indent=2) + "\n")
        except OSError as exc:
            raise click.ClickException(f"{as_json}: cannot write ({exc.strerror or exc})") from None


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--half/--no-half", default=True, help="Store the weights as fp16 (half size).")
@click.option(
    "--crop-scale",
    type=click.FloatRange(0.2, 5),
    default=None,
    help="Set the crop policy's scale (crop side / detector box long side).",
)
@click.option(
    "--crop-shift",
    type=click.FloatRange(-1, 1),
    default=None,
    help="Set the crop policy's vertical shift (box heights).",
)
@click.option(
    "--tta",
    type=click.Choice(["none", "hflip"]),
    default=None,
    help="Set the test-time augmentation inference applies.",
)
@click.option("--dataset", default=None, help="Set the dataset name recorded in the metadata.")
def export(checkpoint, output, half, crop_scale, crop_shift, tta, dataset):
    """Package CHECKPOINT (best.safetensors or last.pt) as one inference file OUTPUT,
    optionally fp16 and with its crop policy / test-time augmentation set."""
    from dataclasses import replace

    from fervid.checkpoint import CropPolicy, load_checkpoint, save_checkpoint

    try:
        state, meta = load_checkpoint(checkpoint)
        crop = CropPolicy(
            meta.crop.scale if crop_scale is None else crop_scale,
            meta.crop.shift_y if crop_shift is None else crop_shift,
        )
        meta = replace(meta, crop=crop, tta=tta or meta.tta, dataset=dataset or meta.dataset)
        path = save_checkpoint(output, state, meta, half=half)
    except ERRORS as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    click.echo(
        f"{path}: {meta.arch}, {len(meta.classes)} classes, {meta.input_size} px "
        f"{meta.channels}, crop x{meta.crop.scale} shift {meta.crop.shift_y}, "
        f"tta {meta.tta}, {path.stat().st_size / 2**20:.1f} MiB"
    )


def main() -> None:
    cli(prog_name="fervid-train")


if __name__ == "__main__":
    main()
