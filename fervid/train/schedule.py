"""The learning-rate schedule: linear warm-up, then cosine decay or reduce-on-plateau."""

from __future__ import annotations

import math

import torch

SCHEDULES = ("cosine", "plateau")


class LRSchedule:
    """Sets each parameter group's learning rate to ``base_lr * factor`` after every step.

    The factor rises linearly over ``warmup_steps``; then ``"cosine"`` decays it to zero at
    ``total_steps``, and ``"plateau"`` holds it, multiplying it by ``plateau_factor`` each
    time the validation metric (:meth:`epoch_end`) has not improved for ``patience`` epochs.
    Its state is plain data (:meth:`state_dict`), saved with the run for ``--resume``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        kind: str = "cosine",
        total_steps: int,
        warmup_steps: int = 0,
        plateau_factor: float = 0.1,
        patience: int = 5,
    ) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}")
        self.optimizer, self.kind = optimizer, kind
        self.total, self.warmup = max(1, total_steps), max(0, warmup_steps)
        self.plateau_factor, self.patience = plateau_factor, patience
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.steps, self.scale, self.best, self.bad = 0, 1.0, -math.inf, 0
        self._apply()

    def factor(self, step: int) -> float:
        if self.warmup > 0 and step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "plateau":
            return self.scale
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def step(self) -> None:
        """After each optimiser step."""
        self.steps += 1
        self._apply()

    def epoch_end(self, metric: float) -> None:
        """After each epoch's evaluation (higher is better); drives ``"plateau"``."""
        if metric > self.best + 1e-4:
            self.best, self.bad = metric, 0
            return
        self.bad += 1
        if self.kind == "plateau" and self.bad > self.patience:
            self.scale *= self.plateau_factor
            self.bad = 0
            self._apply()

    def set_total(self, total_steps: int) -> None:
        """Re-plan the cosine's end (a time budget fixes the epoch count after epoch 1)."""
        self.total = max(1, total_steps)
        self._apply()

    def _apply(self) -> None:
        f = self.factor(self.steps)
        for g, base in zip(self.optimizer.param_groups, self.base):
            g["lr"] = base * f

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "steps": self.steps,
            "total": self.total,
            "scale": self.scale,
            "best": self.best,
            "bad": self.bad,
            "base": list(self.base),
        }

    def load_state_dict(self, d: dict) -> None:
        self.steps, self.total = int(d["steps"]), int(d["total"])
        self.scale, self.best, self.bad = float(d["scale"]), float(d["best"]), int(d["bad"])
        self.base = [float(b) for b in d["base"]]
        self._apply()
