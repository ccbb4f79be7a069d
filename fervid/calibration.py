"""Calibration of a classifier's probabilities: one temperature, its fit and its measures.

A model's temperature ``T`` (in its checkpoint) is applied to the final probabilities
``p`` (after test-time augmentation and the model's class weights, :func:`reweight`):
``p ** (1/T)``, renormalised, which is a softmax of ``log p / T``. ``T < 1`` sharpens
under-confident probabilities, ``T > 1`` softens over-confident ones; the top class never
changes. :func:`fit_temperature` finds the ``T`` that minimises the negative log-likelihood
on labelled validation images.
"""

from __future__ import annotations

import numpy as np

#: The range a temperature may take (a checkpoint's is checked against it).
TEMPERATURE_RANGE = (0.05, 20.0)


def temperature_scale(probs, temperature: float):
    """``probs`` (N, C) with the temperature applied; rows still sum to 1. A tensor (any
    device; what inference applies) gives a tensor, an array a float64 array."""
    import torch  # the fit and the readout work on numpy too: PyTorch only for tensors

    if isinstance(probs, torch.Tensor):
        if temperature == 1.0:
            return probs
        return torch.softmax(torch.log(probs.clamp_min(1e-12)) / temperature, dim=1)
    p = np.asarray(probs, np.float64)
    return temperature_scale(torch.from_numpy(p), temperature).numpy()


def reweight(probs, weights):
    """``probs`` (N, C) multiplied by one weight per class and renormalised: a shift of the
    class prior at inference (weights ``prior ** tau``; Menon et al., 2021, post-hoc logit
    adjustment). A tensor gives a tensor, an array a float64 array; None changes nothing."""
    import torch  # the fit and the readout work on numpy too: PyTorch only for tensors

    if weights is None:
        return probs
    if isinstance(probs, torch.Tensor):
        w = torch.as_tensor(weights, dtype=probs.dtype, device=probs.device)
        out = probs * w
        return out / out.sum(1, keepdim=True).clamp_min(1e-30)
    out = np.asarray(probs, np.float64) * np.asarray(weights, np.float64)
    return out / np.maximum(out.sum(1, keepdims=True), 1e-30)


def readout(probs, class_weights, temperature: float):
    """A model's final probabilities from its mean softmax ``probs``: its class weights
    (:func:`reweight`), then its temperature (:func:`temperature_scale`), in that order
    everywhere (inference, the trainer's evaluator, calibration)."""
    return temperature_scale(reweight(probs, class_weights), temperature)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels, int)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the top probability in ``bins`` equal-width bins, the
    gap between mean confidence and accuracy in each, weighted by the bin's share."""
    p = np.asarray(probs, np.float64)
    conf, right = p.max(axis=1), p.argmax(axis=1) == np.asarray(labels, int)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    ece = 0.0
    for b in np.unique(which):
        m = which == b
        ece += m.mean() * abs(conf[m].mean() - right[m].mean())
    return float(ece)


def calibration_report(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Images, accuracy, balanced accuracy (the mean recall of the classes present), NLL,
    ECE and mean top probability, as plain numbers."""
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels, int)
    hit = p.argmax(axis=1) == y
    return {
        "images": int(len(p)),
        "acc": round(float(hit.mean()), 4),
        "balanced_acc": round(float(np.mean([hit[y == c].mean() for c in np.unique(y)])), 4),
        "nll": round(nll(p, labels), 4),
        "ece": round(calibration_error(p, labels), 4),
        "mean_confidence": round(float(p.max(axis=1).mean()), 4),
    }


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in :data:`TEMPERATURE_RANGE` minimising :func:`nll` (golden-section
    search on log T; the NLL is convex in 1/T)."""
    if len(probs) == 0:
        raise ValueError("no labelled images to fit a temperature on")
    lo, hi = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    g = (np.sqrt(5) - 1) / 2
    f = lambda log_t: nll(temperature_scale(probs, float(np.exp(log_t))), labels)  # noqa: E731
    for _ in range(80):
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
        lo, hi = (lo, d) if f(c) < f(d) else (c, hi)
    return float(np.exp((lo + hi) / 2))
