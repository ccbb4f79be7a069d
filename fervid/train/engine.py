"""The training loop in the manner of torchvision's classification reference: free functions
:func:`train_one_epoch` and :func:`evaluate` (device, mixed precision and channels_last are
decided in one place, :class:`fervid.runtime.Runtime`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from fervid.architectures import build_model
from fervid.checkpoint import ModelMeta, load_checkpoint
from fervid.runtime import Runtime

log = logging.getLogger(__name__)


class AdjustedLoss(nn.Module):
    """``criterion(logits + adjustment, targets)``: logit adjustment as a loss; the network's
    own logits (what inference reads) are left as they are."""

    def __init__(self, criterion: nn.Module, adjustment: torch.Tensor) -> None:
        super().__init__()
        self.criterion = criterion
        self.register_buffer("adjustment", adjustment)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits + self.adjustment.to(logits.dtype), targets)


class SourceAdjustedLoss(nn.Module):
    """``criterion(logits + adjustment, targets)`` where each image brings its own adjustment
    as the last columns of its target (``SplitData.carry``: ``[distribution | adjustment]``,
    mixed with the image); plain targets (validation) are taken as they are."""

    def __init__(self, criterion: nn.Module) -> None:
        super().__init__()
        self.criterion = criterion

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        c = logits.shape[1]
        if targets.ndim == 1 or targets.shape[1] == c:
            return self.criterion(logits, targets)
        return self.criterion(logits + targets[:, c:].to(logits.dtype), targets[:, :c])


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    *,
    runtime: Runtime,
    mean: list[float],
    std: list[float],
    augment=None,
    mix=None,
    generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
    clip_grad: float = 0.0,
    ema=None,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """One pass over ``batches``; returns mean loss, accuracy, images and images/s.

    A batch's labels are class indices or target distributions (soft labels); ``mix``
    (:class:`~fervid.train.augment.BatchMix`) mixes images and targets after augmentation.
    Accuracy counts the prediction against the label's (or distribution's) top class.
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    t0 = time.perf_counter()
    for images, labels in batches:
        labels = labels.to(runtime.device, non_blocking=True)
        given = labels
        if augment is not None:
            x = images.to(runtime.device, non_blocking=True).float().div_(255)
            x = augment(x, generator)
            if mix is not None and mix.enabled:
                x, labels = mix(x, labels, generator)
            x = runtime.prepare_input(x, mean, std)
            x = augment.erase_normalized(x, generator)
        else:
            x = runtime.prepare_input(images, mean, std)
        with runtime.autocast():
            logits = model(x)
            loss = criterion(logits.float(), labels)
        hard = _top_class(given, logits.shape[1])
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            if clip_grad > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip_grad > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        n = hard.numel()
        total_loss += float(loss.detach()) * n
        correct += int((logits.detach().argmax(1) == hard).sum())
        seen += n
        if progress is not None:
            progress(n, total_loss / max(seen, 1))
    dt = time.perf_counter() - t0
    return {
        "loss": total_loss / max(seen, 1),
        "acc": correct / max(seen, 1),
        "images": seen,
        "seconds": dt,
        "images_per_s": seen / dt if dt > 0 else 0.0,
    }


def _top_class(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices of targets given as indices or as distributions (whose first
    ``num_classes`` columns are the classes)."""
    return targets[:, :num_classes].argmax(1) if targets.is_floating_point() else targets


def load_network(
    checkpoint: str | os.PathLike, device: str = "auto", amp: str = "auto"
) -> tuple[nn.Module, ModelMeta, Runtime]:
    """A checkpoint's network as training built it (no inference rewrites), on the
    runtime's device and memory format, with its metadata and the runtime."""
    state, meta = load_checkpoint(checkpoint)
    runtime = Runtime.create(device, amp)
    model = build_model(meta.arch, len(meta.classes))
    model.load_state_dict(state)
    return runtime.prepare_model(model), meta, runtime


@torch.inference_mode()
def predict(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    runtime: Runtime,
    mean: list[float],
    std: list[float],
    tta: str = "none",
    temperature: float = 1.0,
    class_weights: list[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (float32, on CPU) and labels for every batch."""
    model.eval()
    probs, labels = [], []
    for images, y in batches:
        x = runtime.prepare_input(images, mean, std)
        probs.append(runtime.probabilities(model, x, tta, temperature, class_weights).cpu())
        labels.append(y.cpu())
    if not probs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64)
    return torch.cat(probs), torch.cat(labels)


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    runtime: Runtime,
    mean: list[float],
    std: list[float],
    num_classes: int,
    criterion: nn.Module | None = None,
    reduce_fn=None,
    tta: str = "none",
    temperature: float = 1.0,
    class_weights: list[float] | None = None,
) -> dict:
    """Loss, accuracy, balanced accuracy, macro-F1, per-class recall and confusion matrix.

    The loss is the training criterion (its label smoothing and class weights included) on
    the evaluated probabilities (averaged with the mirror image's under ``tta``), so that it
    compares with the training loss. ``reduce_fn`` (distributed runs) sums the confusion
    matrix across processes.
    """
    probs, labels = predict(
        model,
        batches,
        runtime=runtime,
        mean=mean,
        std=std,
        tta=tta,
        temperature=temperature,
        class_weights=class_weights,
    )
    cm = confusion_matrix(labels, probs.argmax(1) if len(probs) else labels, num_classes)
    loss_sum = 0.0
    if criterion is not None and len(probs):
        # log-probabilities are logits whose softmax gives the probabilities back
        logits = torch.log(probs.clamp_min(1e-12)).to(_criterion_device(criterion))
        loss_sum = float(criterion(logits, labels.to(logits.device))) * len(labels)
    if reduce_fn is not None:
        cm, loss_sum = reduce_fn(cm, loss_sum)
    metrics = metrics_from_confusion(cm)
    metrics["loss"] = loss_sum / max(int(cm.sum()), 1)
    return metrics


def _criterion_device(criterion: nn.Module) -> torch.device:
    weight = getattr(criterion, "weight", None)
    return weight.device if weight is not None else torch.device("cpu")


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes**2).view(num_classes, num_classes).numpy()


def metrics_from_confusion(cm: np.ndarray) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall), macro-F1, per-class recall."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    total = cm.sum()
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {
        "acc": float(tp.sum() / total) if total else 0.0,
        "balanced_acc": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "recall": recall.tolist(),
        "confusion": cm.tolist(),
        "n": int(total),
    }
