"""fervid: facial emotion recognition for photo folders and videos, at scale."""

from __future__ import annotations

__version__ = "0.1.0"

#: The public API (:mod:`fervid.api`'s ``__all__``), imported on first use: the API pulls
#: in torch, MTCNN and PyAV, which the package's import does not.
__all__ = [
    "__version__",
    "analyze_images",
    "analyze_video",
    "annotate_video",
    "annotate_videos",
    "iter_images",
    "load_model",
    "scan_folder",
    "summarize_csv",
    "people",
    "episodes",
    "report_table",
    "regroup_table",
    "regroup_frame",
    "write_eaf",
    "EpisodeOptions",
    "ImageOptions",
    "ImageResult",
    "ScanReport",
    "VideoOptions",
    "VideoRun",
]


def __getattr__(name: str):
    if name == "VideoReport":  # VideoRun's name before December 2026
        name = "VideoRun"
    if name in __all__:
        from . import api  # the API pulls in PyTorch, MTCNN and PyAV: on first use

        return getattr(api, name)
    raise AttributeError(f"module 'fervid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
