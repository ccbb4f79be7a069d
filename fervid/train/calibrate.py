"""Fit a checkpoint's temperature on its validation splits: ``fervid-train calibrate``."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import torch

from fervid.calibration import calibration_report, fit_temperature, readout, reweight
from fervid.checkpoint import ModelMeta

from .data import SplitData, class_counts
from .engine import load_network, predict
from .sources import open_sources


def calibrate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int = 128,
    prior_shift: float | None = None,
    **sources,
) -> tuple[dict[str, torch.Tensor], ModelMeta, dict]:
    """The checkpoint's weights, its metadata with the fitted temperature, and a report.

    The temperature is fitted on the validation split of every dataset (a held-out part of
    train where a dataset has none), built as ``fervid-train`` builds them from the same
    ``sources`` settings (``data``, ``exclude``, ``holdout``, ``labels``, ... :
    ``fervid.train.config.SOURCE_SETTINGS``): give the training run's, so that no test
    image is used. With ``prior_shift`` (tau) the probabilities are first multiplied by the
    training splits' class prior to the power tau (the checkpoint's ``class_weights``; 0
    removes them): a model trained with ``--logit-adjust 0`` learns the data's own prior,
    and tau -0.5 gives the prior of the class-balancing sampler at power 0.5 back, at
    inference. The report has, per dataset and for all together, accuracy, NLL, ECE and
    mean confidence before and after.
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
    report: dict = {"before_temperature": meta.temperature}
    weights = meta.class_weights
    if prior_shift is not None:
        prior = training_prior(opened, classes, meta.classes)
        weights = prior_weights(prior, prior_shift)
        report |= {
            "prior_shift": prior_shift,
            "training_prior": [round(float(q), 5) for q in prior],
        }
    report |= {"before_class_weights": meta.class_weights, "class_weights": weights}
    t = fit_temperature(reweight(read["all"][0], weights), read["all"][1])
    report |= {"temperature": round(t, 4), "splits": {}}
    for name, (p, y) in read.items():
        report["splits"][name] = {
            "before": calibration_report(readout(p, meta.class_weights, meta.temperature), y),
            "after": calibration_report(readout(p, weights, t), y),
        }
    meta = replace(meta, temperature=round(t, 4), class_weights=weights)
    return model.state_dict(), meta, report


def training_prior(opened, classes, target) -> np.ndarray:
    """The class shares of the sources' training splits, in the model's class order."""
    counts = sum(
        np.asarray(class_counts(s.train.relabel(classes, target).labels, len(target)), float)
        for s in opened
    )
    return counts / max(counts.sum(), 1)


def prior_weights(prior: np.ndarray, tau: float) -> list[float] | None:
    """``prior ** tau``, scaled to a geometric mean of 1 (None for tau 0: no weights)."""
    if tau == 0:
        return None
    w = np.clip(np.asarray(prior, np.float64), 1e-6, None) ** tau
    w /= np.exp(np.log(w).mean())
    return [round(float(x), 6) for x in w]
