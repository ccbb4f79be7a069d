"""The architecture comparison (the study) and its report; evaluating a checkpoint."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fervid.emotions import canonical
from fervid.outputs import atomic_path, is_fervid_text, may_replace, write_text_atomic

from .data import SplitData, open_dataset
from .distributed import dist_info
from .engine import confusion_matrix, evaluate, load_network, metrics_from_confusion
from .run import RunResult, TrainConfig, fit

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = [
    "arch",
    "params",
    "input_size",
    "epochs",
    "best_epoch",
    "acc",
    "balanced_acc",
    "macro_f1",
    "split",
    "val_acc",
    "val_balanced_acc",
    "fit_seconds",
    "seconds_per_epoch",
    "train_images_per_s",
    "peak_mem_mb",
    "fit_time_vs_fastest",
    "device",
]


def run_study(base: TrainConfig, archs: Sequence[str]) -> list[RunResult]:
    """Train each architecture with the same settings; write the report after each one.

    With ``resume``, an architecture whose run finished (its ``metrics.json`` written after
    its last epoch) is not trained again: its result is read back.
    """
    results: list[RunResult] = []
    for arch in archs:
        cfg = dataclasses.replace(base, arch=arch)
        done = finished_result(Path(base.out) / arch, cfg) if base.resume else None
        if done is not None:
            log.info("%s: finished earlier (%d epochs); not trained again", arch, done.epochs)
        results.append(done or fit(cfg))
        if dist_info()[0] == 0:
            write_report(results, Path(base.out))
    return results


def finished_result(run_dir: Path, cfg: TrainConfig) -> RunResult | None:
    """The result of a finished run in ``run_dir``, or None if it has not finished (or
    ``cfg`` asks for more epochs than it trained, with no time budget)."""
    metrics, state = run_dir / "metrics.json", run_dir / "last.pt"
    if not metrics.exists() or not state.exists():
        return None
    if metrics.stat().st_mtime < state.stat().st_mtime:
        return None  # trained further since the metrics were written
    try:
        d = json.loads(metrics.read_text())
        names = {f.name for f in dataclasses.fields(RunResult)}
        result = RunResult(**{k: v for k, v in d.items() if k in names})
    except (ValueError, TypeError):
        return None
    if cfg.epochs > result.epochs and not cfg.time_budget:
        return None
    return result


def comparison_rows(results: Sequence[RunResult]) -> list[dict]:
    fastest = min((r.fit_seconds for r in results if r.fit_seconds > 0), default=0.0)
    rows = []
    for r in results:
        d = dataclasses.asdict(r)
        row = {k: d[k] for k in COLUMNS if k in d}
        row["fit_time_vs_fastest"] = round(r.fit_seconds / fastest, 2) if fastest else 0.0
        for k in ("acc", "balanced_acc", "macro_f1", "val_acc", "val_balanced_acc"):
            row[k] = round(row[k], 4)
        rows.append(row)
    return rows


def write_report(results: Sequence[RunResult], out: Path) -> None:
    """``comparison.csv``, ``comparison.md`` and PNG plots in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    may_replace(out / "comparison.csv", is_fervid_text(",".join(COLUMNS)))
    may_replace(out / "comparison.md", is_fervid_text("# Architecture comparison"))
    rows = comparison_rows(results)
    with atomic_path(out / "comparison.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Architecture comparison",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(c, row[c]) for c in COLUMNS) + " |")
    if len(rows) > 1:
        best = max(rows, key=lambda r: r["acc"])
        fast = min(rows, key=lambda r: r["fit_seconds"])
        slow = max(rows, key=lambda r: r["fit_seconds"])
        spread = max(r["acc"] for r in rows) - min(r["acc"] for r in rows)
        lines += [
            "",
            f"Best accuracy: {best['arch']} ({best['acc']:.4f}); accuracies span "
            f"{spread:.4f}. Fastest fit: {fast['arch']}; slowest: {slow['arch']} "
            f"({slow['fit_time_vs_fastest']:.1f}x the fastest's fit time).",
        ]
    lines += ["", "Plots: `accuracy_vs_fit_time.png`, `confusion_<arch>.png`.", ""]
    write_text_atomic(out / "comparison.md", "\n".join(lines))
    _plots(results, out)


def _fmt(column: str, v) -> str:
    if not isinstance(v, float):
        return str(v)
    if column in ("acc", "balanced_acc", "macro_f1", "val_acc", "val_balanced_acc"):
        return f"{v:.4f}"
    return f"{v:.2f}" if v < 100 else f"{v:.1f}"


def _plots(results: Sequence[RunResult], out: Path) -> None:
    from matplotlib.figure import Figure  # half a second to import: only to draw

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.subplots()
    for r in results:
        ax.scatter(r.fit_seconds, r.acc, s=40)
        ax.annotate(
            r.arch, (r.fit_seconds, r.acc), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    ax.set_xlabel("fit time (s)")
    split = results[0].split if results and results[0].split else "validation"
    ax.set_ylabel(f"{split} accuracy (best epoch)")
    ax.set_title("Accuracy against fit time")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out / "accuracy_vs_fit_time.png") as tmp:
        fig.savefig(tmp, format="png")
    for r in results:
        if not r.confusion:
            continue
        cm = np.asarray(r.confusion, dtype=float)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        fig = Figure(figsize=(5.5, 5), dpi=120)
        ax = fig.subplots()
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        n = len(r.classes)
        ax.set_xticks(range(n), r.classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), r.classes, fontsize=8)
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{r.arch}: acc {r.acc:.3f}, balanced {r.balanced_acc:.3f}")
        fig.tight_layout()
        with atomic_path(out / f"confusion_{r.arch}.png") as tmp:
            fig.savefig(tmp, format="png")


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: str = "auto",
    device: str = "auto",
    batch_size: int = 128,
    amp: str = "auto",
    ignore_unknown: bool = False,
    progress: bool = False,
) -> dict:
    """Evaluate a fervid checkpoint on a dataset split with the training evaluator."""
    model, meta, runtime = load_network(checkpoint, device, amp)
    spec = open_dataset(data, ignore_unknown=ignore_unknown)
    name = spec.eval_split if split == "auto" else split
    sp = spec.split(name).relabel(spec.classes, meta.classes, f"{data}: ")
    loaded = SplitData(sp, meta.input_size, meta.channels, progress=progress)
    metrics = evaluate(
        model,
        loaded.batches(torch.arange(len(loaded)), batch_size),
        runtime=runtime,
        mean=meta.mean,
        std=meta.std,
        num_classes=len(meta.classes),
        tta=meta.tta,
        temperature=meta.temperature,
        class_weights=meta.class_weights,
    )
    metrics.update(
        {
            "split": name,
            "classes": list(meta.classes),
            "checkpoint": str(checkpoint),
            "arch": meta.arch,
        }
    )
    return metrics


def scan_truth(df: pd.DataFrame, classes: Sequence[str]) -> tuple[pd.DataFrame, list[int]]:
    """The rows of a scan of a labelled folder (``<class>/<image>``) that were read, and
    each one's true class: the index in ``classes`` of its path's first folder."""
    read = df[df["emotion"].notna()]
    folders = read["path"].str.replace("\\", "/").str.split("/").str[0]
    return read, [list(classes).index(canonical(f)) for f in folders]


def scan_metrics(df: pd.DataFrame, classes: Sequence[str]) -> dict:
    """Metrics of fervid's inference path on a labelled folder: ``df`` is what
    ``fervid.analyze_images(split_dir, crops=True)`` returns for a split laid out as
    ``<class>/<image>``; each row's true class is the first folder of its ``path``. Rows
    without an emotion (unreadable images) are left out and counted in ``unread``."""
    read, truth = scan_truth(df, classes)
    pred = [classes.index(e) for e in read["emotion"]]
    cm = confusion_matrix(torch.tensor(truth), torch.tensor(pred), len(classes))
    return {**metrics_from_confusion(cm), "unread": int(len(df) - len(read))}
