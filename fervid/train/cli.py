"""``fervid-train``: train one or several architectures (the study), evaluate checkpoints."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import click

from fervid import logs
from fervid.architectures import REGISTRY, STUDY_ARCHS, PretrainedUnavailable
from fervid.calibration import TEMPERATURE_RANGE
from fervid.checkpoint import CheckpointError, CropPolicy, load_checkpoint, save_checkpoint
from fervid.errors import first_line
from fervid.outputs import (
    check_output,
    is_fervid_checkpoint,
    is_fervid_json,
    may_replace,
    write_json_report,
)

from .average import average_checkpoints
from .calibrate import calibrate_checkpoint
from .config import TrainConfig, click_options, source_options
from .data import DataError
from .study import evaluate_checkpoint, run_study

log = logging.getLogger(__name__)
CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"]}
ERRORS = (DataError, CheckpointError, PretrainedUnavailable, ValueError, OSError, RuntimeError)


def _claim_output(path: str, inputs: list[str], kind: str) -> None:
    """Refuse, before any work, an output (``kind`` "safetensors" or "json") that would
    replace one of the ``inputs`` or a file of that name that fervid did not write."""
    check_output(path, inputs=inputs, kind=kind)
    may_replace(Path(path), is_fervid_checkpoint if kind == "safetensors" else is_fervid_json)


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
    "--archs",
    multiple=True,
    callback=_archs,
    metavar="NAMES",
    help=f"Architectures, comma-separated or repeated. Default: the study's five "
    f"({', '.join(STUDY_ARCHS)}). Registry: {', '.join(REGISTRY)}.",
)
@click_options
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx, archs, quiet, **opts):
    """Train emotion classifiers. Without a sub-command: train --archs on --data and write
    the comparison report (comparison.csv, comparison.md, plots) into --out."""
    logs.configure(quiet=quiet)
    if ctx.invoked_subcommand is not None:
        return
    if not opts["data"]:
        raise click.UsageError("--data is required (a dataset root); see --help")

    cfg = TrainConfig(progress=not quiet and sys.stderr.isatty(), **opts)
    try:
        results = run_study(cfg, archs)
    except ERRORS as exc:
        raise click.ClickException(first_line(exc, 400)) from None
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
    try:
        if as_json:
            _claim_output(as_json, [checkpoint], "json")
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
        raise click.ClickException(first_line(exc, 400)) from None
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
            write_json_report(as_json, m)
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
@click.option(
    "--temperature",
    type=click.FloatRange(*TEMPERATURE_RANGE),
    default=None,
    help="Set the temperature applied to the probabilities (fervid-train calibrate fits it).",
)
@click.option("--dataset", default=None, help="Set the dataset name recorded in the metadata.")
def export(checkpoint, output, half, crop_scale, crop_shift, tta, temperature, dataset):
    """Package CHECKPOINT (best.safetensors or last.pt) as one inference file OUTPUT,
    optionally fp16 and with its crop policy / test-time augmentation set."""
    try:
        _claim_output(output, [checkpoint], "safetensors")
        state, meta = load_checkpoint(checkpoint)
        crop = CropPolicy(
            meta.crop.scale if crop_scale is None else crop_scale,
            meta.crop.shift_y if crop_shift is None else crop_shift,
        )
        meta = replace(meta, crop=crop, tta=tta or meta.tta, dataset=dataset or meta.dataset)
        if temperature is not None:
            meta = replace(meta, temperature=temperature)
        path = save_checkpoint(output, state, meta, half=half)
    except ERRORS as exc:
        raise click.ClickException(first_line(exc, 400)) from None
    click.echo(
        f"{path}: {meta.arch}, {len(meta.classes)} classes, {meta.input_size} px "
        f"{meta.channels}, crop x{meta.crop.scale} shift {meta.crop.shift_y}, "
        f"tta {meta.tta}, temperature {meta.temperature}, {path.stat().st_size / 2**20:.1f} MiB"
    )


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@click.argument("output", type=click.Path(dir_okay=False))
@source_options
@click.option("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--batch-size", default=128, type=click.IntRange(1), help="Images per forward pass.")
@click.option("--half/--no-half", default=True, help="Store the weights as fp16 (half size).")
@click.option(
    "--json",
    "as_json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the report to this JSON file.",
)
@click.option(
    "--prior-shift",
    type=click.FloatRange(-2, 2),
    default=None,
    metavar="TAU",
    help="Also multiply the probabilities by the training splits' class prior to the power "
    "TAU (the checkpoint's class weights; 0 removes them). A model trained with "
    "--logit-adjust 0 learns the data's own prior; -0.5 gives the class-balancing "
    "sampler's back (docs/default-model.md).",
)
def calibrate(checkpoint, output, device, batch_size, half, as_json, prior_shift, **sources):
    """Fit the temperature of CHECKPOINT's probabilities on the validation splits it was
    selected on (give the training run's --data, --exclude, --holdout, --labels, ...: never
    a test split) and write the calibrated model to OUTPUT. The top class never changes;
    probabilities become as confident as the model is right."""
    if not sources["data"]:
        raise click.UsageError("--data is required (the training run's dataset roots)")
    try:
        _claim_output(output, [checkpoint], "safetensors")
        if as_json:
            _claim_output(as_json, [checkpoint], "json")
        state, meta, report = calibrate_checkpoint(
            checkpoint, device=device, batch_size=batch_size, prior_shift=prior_shift, **sources
        )
        path = save_checkpoint(output, state, meta, half=half)
        if as_json:
            write_json_report(as_json, report)
    except ERRORS as exc:
        raise click.ClickException(first_line(exc, 400)) from None
    click.echo(f"temperature {report['before_temperature']} -> {report['temperature']}")
    if report["class_weights"] != report["before_class_weights"]:
        click.echo(f"class weights {report['before_class_weights']} -> {report['class_weights']}")
    for name, r in report["splits"].items():
        b, a = r["before"], r["after"]
        acc = f"{b['acc']:.4f}" + ("" if a["acc"] == b["acc"] else f" -> {a['acc']:.4f}")
        acc += f", balanced {b['balanced_acc']:.4f}" + (
            "" if a["balanced_acc"] == b["balanced_acc"] else f" -> {a['balanced_acc']:.4f}"
        )
        click.echo(
            f"  {name} ({b['images']} images, accuracy {acc}): ECE {b['ece']:.4f} -> "
            f"{a['ece']:.4f}, NLL {b['nll']:.4f} -> {a['nll']:.4f}, mean confidence "
            f"{b['mean_confidence']:.3f} -> {a['mean_confidence']:.3f}"
        )
    click.echo(f"-> {path}")


def _weights(ctx, param, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(w) for w in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give numbers separated by commas") from None


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option(
    "--weights",
    callback=_weights,
    metavar="W1,W2,...",
    help="One weight per checkpoint (normalised to sum to 1). Default: equal.",
)
@click.option("--half/--no-half", default=True, help="Store the weights as fp16 (half size).")
def average(checkpoints, output, weights, half):
    """Average the weights of CHECKPOINTS (one architecture) into OUTPUT: a model soup of
    several runs, or a model and its fine-tune interpolated (--weights 0.5,0.5). The readout
    (crop, test-time augmentation, class weights, temperature) is the first checkpoint's;
    calibrate the average again."""
    try:
        _claim_output(output, list(checkpoints), "safetensors")
        state, meta = average_checkpoints(list(checkpoints), weights=weights)
        path = save_checkpoint(output, state, meta, half=half)
    except ERRORS as exc:
        raise click.ClickException(first_line(exc, 400)) from None
    parts = ", ".join(f"{p['weight']:g} x {p['checkpoint']}" for p in meta.config["average_of"])
    click.echo(f"{path}: {meta.arch}, {parts}, {path.stat().st_size / 2**20:.1f} MiB")


def main() -> None:
    cli(prog_name="fervid-train")


if __name__ == "__main__":
    main()
