"""fervid-train: train emotion classifiers and reproduce the five-architecture study.

The package ``fervid.train`` (``fervid/train/``).
"""

from __future__ import annotations

__all__ = ["TrainConfig", "fit", "run_study", "evaluate_checkpoint"]


def __getattr__(name: str):
    if name in ("TrainConfig", "fit"):
        from . import run  # PyTorch only when the training API is used

        return getattr(run, name)
    if name in ("run_study", "evaluate_checkpoint"):
        from . import study  # likewise

        return getattr(study, name)
    raise AttributeError(f"module 'fervid.train' has no attribute {name!r}")
