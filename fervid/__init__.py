"""fervid: facial emotion recognition for photo folders and videos, at scale."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "analyze_images", "analyze_video", "load_model"]


def __getattr__(name: str):
    # The API pulls in torch, MTCNN and PyAV: import it on first use, not with the package.
    if name in ("analyze_images", "analyze_video", "load_model"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'fervid' has no attribute {name!r}")
