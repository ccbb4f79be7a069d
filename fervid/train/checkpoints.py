"""What a run keeps on disk: the training state for ``--resume`` (``last.pt``), the best
model (``best.safetensors``), the history (``history.csv``), all written atomically."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fervid.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    ModelMeta,
    load_checkpoint,
    save_checkpoint,
)
from fervid.outputs import atomic_path, write_text_atomic

from .data import DataError

log = logging.getLogger(__name__)

#: Settings that must match for ``--resume`` to continue a run rather than start a hybrid.
RESUME_KEYS = (
    "arch",
    "data",
    "input_size",
    "channels",
    "classes",
    "batch_size",
    "eval_split",
    "holdout",
    "exclude",
    "labels",
    "soft_labels",
    # the objective: resuming under another loss or sampler would train a mixture
    "balance",
    "balance_power",
    "source_power",
    "logit_adjust",
    "logit_adjust_by",
    "label_smoothing",
    "optimizer",
    "schedule",
)


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


@dataclass
class RunState:
    """Where a run stands: epochs done and planned, history, best epoch, counters."""

    planned: int
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"value": -1.0, "epoch": 0})
    best_weights: dict | None = None
    fit_seconds: float = 0.0
    train_seconds: float = 0.0
    train_images: int = 0
    saved: dict | None = None  # the training state read from last.pt, until restored

    @classmethod
    def fresh(cls, epochs: int) -> RunState:
        return cls(planned=epochs)

    @classmethod
    def read(cls, run_dir: Path) -> RunState | None:
        """The state in ``run_dir/last.pt``, or None when the run has not started."""
        path = run_dir / "last.pt"
        if not path.exists():
            return None
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to parse: corrupt or foreign
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise CheckpointError(f"{path}: cannot resume from it ({first})") from None
        if not isinstance(d, dict) or "schedule" not in d or "epoch" not in d:
            raise CheckpointError(f"{path}: not a training state this fervid can resume")
        best_weights = None
        if (run_dir / "best.safetensors").exists():
            best_weights, _ = load_checkpoint(run_dir / "best.safetensors")
        return cls(
            planned=int(d.get("planned", d["config"]["epochs"])),
            epoch=int(d["epoch"]),
            history=list(d["history"]),
            best=dict(d["best"]),
            best_weights=best_weights,
            fit_seconds=float(d["fit_seconds"]),
            train_seconds=float(d["train_seconds"]),
            train_images=int(d["train_images"]),
            saved=d,
        )

    def check_compatible(self, resolved: dict) -> None:
        """Refuse to resume with settings that would train a different model."""
        old = (self.saved or {}).get("config", {})
        for key in RESUME_KEYS:
            if key in old and old[key] != resolved.get(key):
                raise DataError(
                    f"--resume: the run in {resolved['out']} was started with {key} = "
                    f"{_short(old[key])}, not {_short(resolved.get(key))}; use the same "
                    "settings, or another --out"
                )
        if resolved["epochs"] < self.epoch:
            raise DataError(
                f"--resume: the run already trained {self.epoch} epochs; --epochs "
                f"{resolved['epochs']} is fewer"
            )
        if resolved["epochs"] != old.get("epochs") and not resolved.get("time_budget"):
            # more (or fewer) epochs: the cosine schedule is re-planned to end there
            self.planned = resolved["epochs"]

    def restore(self, parts) -> None:
        d = self.saved or {}
        parts.model.load_state_dict(d["model"])
        parts.optimizer.load_state_dict(d["optimizer"])
        parts.schedule.load_state_dict(d["schedule"])
        parts.scaler.load_state_dict(d["scaler"])
        if parts.ema is not None and d.get("ema") is not None:
            parts.ema.load_state_dict(d["ema"])
        if self.planned != int(d.get("planned", self.planned)):
            steps = parts.schedule.total // max(1, int(d.get("planned", 1)))
            parts.schedule.set_total(self.planned * steps)
        self.saved = None

    def record(self, epoch: int, tr: dict, ev: dict, dt: float, world: int, lr: float) -> None:
        self.epoch = epoch
        self.fit_seconds += dt
        self.train_seconds += tr["seconds"]
        self.train_images += tr["images"] * world
        row = {
            "epoch": epoch,
            "train_loss": round(tr["loss"], 5),
            "train_acc": round(tr["acc"], 5),
            "val_loss": round(ev["loss"], 5),
            "val_acc": round(ev["acc"], 5),
            "val_balanced_acc": round(ev["balanced_acc"], 5),
            "val_macro_f1": round(ev["macro_f1"], 5),
        }
        for name, m in (ev.get("sources") or {}).items():
            for k in ("acc", "balanced_acc", "macro_f1"):
                row[f"{name}_{k}"] = round(m[k], 5)
        row |= {
            "lr": lr,
            "seconds": round(dt, 2),
            "train_images_per_s": round(tr["images_per_s"] * world, 1),
        }
        self.history.append(row)

    def update_best(self, ev: dict, epoch: int, model: nn.Module) -> bool:
        if ev["select"] <= self.best["value"]:
            return False
        self.best = {"value": ev["select"], "epoch": epoch, "metrics": _plain(ev)}
        weights = model.state_dict()
        self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
        return True

    def to_dict(self, parts, resolved: dict, meta: dict) -> dict:
        return {
            "model": parts.model.state_dict(),
            "meta": meta,
            "optimizer": parts.optimizer.state_dict(),
            "schedule": parts.schedule.state_dict(),
            "scaler": parts.scaler.state_dict(),
            "ema": parts.ema.state_dict() if parts.ema is not None else None,
            "epoch": self.epoch,
            "planned": self.planned,
            "history": self.history,
            "best": self.best,
            "config": resolved,
            "fit_seconds": self.fit_seconds,
            "train_seconds": self.train_seconds,
            "train_images": self.train_images,
        }


class CheckpointWriter:
    """Writes ``best.safetensors``, ``last.pt`` and ``history.csv`` of one run (on rank 0);
    the checkpoint metadata is built here, once, with the format constants."""

    def __init__(self, run_dir: Path, meta_base: dict, split: str, *, enabled: bool = True):
        self.run_dir, self.meta_base, self.split, self.enabled = run_dir, meta_base, split, enabled

    def meta(self, ev: dict, epoch: int) -> dict:
        metrics = {"split": self.split, "epoch": epoch} | {
            k: ev[k] for k in ("acc", "balanced_acc", "macro_f1", "recall", "confusion", "n")
        }
        if ev.get("sources"):
            metrics["sources"] = _plain(ev["sources"])
        return self.meta_base | {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "metrics": metrics,
        }

    def best(self, weights: dict, ev: dict, epoch: int) -> None:
        if self.enabled:
            meta = ModelMeta.from_dict(self.meta(ev, epoch))
            save_checkpoint(self.run_dir / "best.safetensors", weights, meta)

    def last(self, state: dict) -> None:
        if self.enabled:
            with atomic_path(self.run_dir / "last.pt") as tmp:
                torch.save(state, tmp)

    def history(self, rows: list[dict]) -> None:
        if not self.enabled or not rows:
            return
        path = self.run_dir / "history.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[-1]))
            w.writeheader()
            w.writerows(rows)


def _plain(ev: dict) -> dict:
    """Metrics as JSON-safe plain data."""
    return json.loads(json.dumps(ev, default=float))


def _short(v) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."
