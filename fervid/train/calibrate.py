"""Fit a checkpoint's temperature on its validation splits: ``fervid-train calibrate``."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import torch

from fervid.calibration import calibration_report, fit_temperature, temperature_scale
from fervid.checkpoint import ModelMeta

from .data import SplitData
from .engine import load_network, predict
from .sources import open_sources


def calibrate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int = 128,
    **sources,
) -> tuple[dict[str, torch.Tensor], ModelMeta, dict]:
    """The checkpoint's weights, its metadata with the fitted temperature, and a report.

    The temperature is fitted on the validation split of every dataset (a held-out part of
    train where a dataset has none), built as ``fervid-train`` builds them from the same
    ``sources`` settings (``data``, ``exclude``, ``holdout``, ``labels``, ... :
    ``fervid.train.config.SOURCE_SETTINGS``): give the training run's, so that no test
    image is used. The report has, per dataset and for all together, accuracy, NLL, ECE
    and mean confidence before and after.
    """
    model, meta, runtime = load_network(checkpoint, device)
    classes, opened = open_sources(**sources)
    read: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in opened:
        loaded = SplitData(s.val.relabel(classes, meta.classes), meta.input_size, meta.channels)
        probs, y = predict(
            model,
            loaded.batches(torch.arange(len(loaded)), batch_size),
            runtime=runtime,
            mean=meta.mean,
            std=meta.std,
            tta=meta.tta,
        )
        read[f"{s.name} {s.val_split}"] = (probs.numpy(), y.numpy())
    read["all"] = tuple(np.concatenate([v[i] for v in read.values()]) for i in (0, 1))
    t = fit_temperature(*read["all"])
    report = {"temperature": round(t, 4), "before_temperature": meta.temperature, "splits": {}}
    for name, (p, y) in read.items():
        report["splits"][name] = {
            "before": calibration_report(temperature_scale(p, meta.temperature), y),
            "after": calibration_report(temperature_scale(p, t), y),
        }
    return model.state_dict(), replace(meta, temperature=round(t, 4)), report
