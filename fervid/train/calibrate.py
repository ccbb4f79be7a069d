"""Fit a checkpoint's temperature on its validation splits: ``fervid-train calibrate``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from fervid.architectures import build_model
from fervid.calibration import calibration_report, fit_temperature, temperature_scale
from fervid.checkpoint import ModelMeta, load_checkpoint

from .data import DataError, SplitData
from .engine import Runtime, predict
from .sources import open_sources


def calibrate_checkpoint(
    checkpoint: str | os.PathLike,
    data: Sequence[str | os.PathLike],
    *,
    exclude: Sequence[str | os.PathLike] = (),
    holdout: float = 0.1,
    labels: str = "dataset",
    eval_labels: str = "dataset",
    device: str = "auto",
    batch_size: int = 128,
) -> tuple[dict[str, torch.Tensor], ModelMeta, dict]:
    """The checkpoint's weights, its metadata with the fitted temperature, and a report.

    The temperature is fitted on the validation split of every ``data`` source (a held-out
    part of train where a dataset has none), built as ``fervid-train`` builds them: give
    the training run's ``--data``, ``--exclude``, ``--holdout``, ``--labels`` and
    ``--eval-labels`` so that no test image is used. The report has, per source and for
    all together, accuracy, NLL, ECE and mean confidence before and after.
    """
    state, meta = load_checkpoint(checkpoint)
    classes, sources = open_sources(
        data, holdout=holdout, exclude=exclude, labels=labels, eval_labels=eval_labels
    )
    unknown = [c for c in classes if c not in meta.classes]
    if unknown:
        raise DataError(f"classes {', '.join(unknown)} are not among the checkpoint's")
    remap = [meta.classes.index(c) for c in classes]
    runtime = Runtime.create(device, "auto")
    model = build_model(meta.arch, len(meta.classes))
    model.load_state_dict(state)
    model = runtime.prepare_model(model)
    read: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in sources:
        split = type(s.val)(s.val.paths, [remap[y] for y in s.val.labels])
        loaded = SplitData(split, meta.input_size, meta.channels)
        probs, y = predict(
            model, loaded.batches(torch.arange(len(loaded)), batch_size), runtime=runtime,
            mean=meta.mean, std=meta.std, tta=meta.tta,
        )  # fmt: skip
        read[f"{s.name} {s.val_split}"] = (probs.numpy(), y.numpy())
    read["all"] = tuple(np.concatenate([v[i] for v in read.values()]) for i in (0, 1))
    t = fit_temperature(*read["all"])
    report = {"temperature": round(t, 4), "before_temperature": meta.temperature, "splits": {}}
    for name, (p, y) in read.items():
        report["splits"][name] = {
            "before": calibration_report(temperature_scale(p, meta.temperature), y),
            "after": calibration_report(temperature_scale(p, t), y),
        }
    return state, replace(meta, temperature=round(t, 4)), report
