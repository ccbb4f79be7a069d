"""Averages of checkpoints in weight space: ``fervid-train average``.

Several runs of one architecture (a model soup, Wortsman et al. 2022), or a model and its own
fine-tune interpolated (WiSE-FT, Wortsman et al. 2022: ``alpha`` of the fine-tune, ``1 -
alpha`` of the model it started from). The average is one model of the same size and speed;
it is meaningful where the weights share a basin, as a fine-tune and its starting point do.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from fervid.checkpoint import CheckpointError, ModelMeta, load_checkpoint

#: metadata that must agree for weights to be averaged (the network and what it is fed)
MUST_AGREE = ("arch", "classes", "input_size", "channels", "mean", "std")


def average_checkpoints(
    paths: list[str | os.PathLike],
    *,
    weights: list[float] | None = None,
) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """The weighted mean of the checkpoints' weights, and the first one's metadata.

    ``weights`` (one per checkpoint, positive; equal when None) are normalised to sum to 1.
    Floating-point tensors (weights and BatchNorm statistics) are averaged; integer ones
    (BatchNorm's batch counters) are the first checkpoint's. The readout (crop policy,
    test-time augmentation, class weights, temperature) is the first checkpoint's: fit the
    temperature of the average again (``fervid-train calibrate``). Raises
    :class:`CheckpointError` naming the file when the checkpoints are not one network.
    """
    if len(paths) < 2:
        raise CheckpointError("averaging needs two checkpoints or more")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise CheckpointError(f"{len(weights)} weights given for {len(paths)} checkpoints")
    if not all(w > 0 for w in weights):
        raise CheckpointError("every weight must be a positive number")
    total = sum(weights)
    first_state, first_meta = load_checkpoint(paths[0])
    out = {
        k: v * (weights[0] / total) if v.is_floating_point() else v.clone()
        for k, v in first_state.items()
    }
    for path, w in zip(paths[1:], weights[1:]):
        state, meta = load_checkpoint(path)
        _check_same_network(Path(path), state, meta, first_state, first_meta)
        for k, v in state.items():
            if v.is_floating_point():
                out[k] += v * (w / total)
    made_of = [
        {"checkpoint": Path(p).name, "weight": round(w / total, 6)} for p, w in zip(paths, weights)
    ]
    meta = replace(first_meta, metrics={}, config={**first_meta.config, "average_of": made_of})
    return out, meta


def _check_same_network(path: Path, state, meta: ModelMeta, first_state, first_meta) -> None:
    for key in MUST_AGREE:
        if getattr(meta, key) != getattr(first_meta, key):
            raise CheckpointError(
                f"{path}: its {key} ({getattr(meta, key)}) differs from the first "
                f"checkpoint's ({getattr(first_meta, key)}); only one network's weights average"
            )
    if state.keys() != first_state.keys():
        odd = sorted(state.keys() ^ first_state.keys())[0]
        raise CheckpointError(f"{path}: its weights differ from the first checkpoint's ({odd})")
    for k, v in state.items():
        if v.shape != first_state[k].shape:
            raise CheckpointError(
                f"{path}: {k} has shape {tuple(v.shape)}, the first checkpoint's "
                f"{tuple(first_state[k].shape)}"
            )
