"""fervid's Python API: one function per use case, plain data back. This module gathers the
public functions (each lives in the module that owns its step) and adds the Ray cluster as an
option where a job can run on one.

>>> import fervid
>>> df = fervid.analyze_video("clip.mp4", annotated="clip.fervid.mp4")
>>> faces = fervid.analyze_images("photos/")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd

# the public names, re-exported (listed once, in fervid.__all__)
from . import __all__ as _exported
from .annotation import analyze_video, annotate_video, summarize_csv  # noqa: F401
from .classify import EmotionModel, load_model
from .elan import write_eaf  # noqa: F401
from .options import EpisodeOptions, ImageOptions, VideoOptions, make_options  # noqa: F401
from .persons import episodes, people  # noqa: F401
from .photos import ImageResult, ScanReport, iter_images, resolve_inputs  # noqa: F401
from .photos import scan_folder as _scan_folder
from .pipeline import VideoRun  # noqa: F401
from .ray_jobs import Resources, annotate_jobs, connect, scan_rows
from .regroup import regroup_frame, regroup_table  # noqa: F401
from .rows import RowSchema, to_frame
from .video_outputs import report_table  # noqa: F401

#: The public functions and types: those the package exports (``fervid.<name>``), one list.
__all__ = [name for name in _exported if name != "__version__"]


def analyze_images(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    options: ImageOptions | None = None,
    ray_address: str | None = None,
    ray_resources=None,
    **settings,
) -> pd.DataFrame:
    """One row per face (faces numbered left to right), one row for an image with no face,
    and one row with ``error`` set for an image that could not be read.

    The settings are an :class:`~fervid.options.ImageOptions` or its fields as keywords
    (``crops``, ``min_face_size``, ``detect_size``). ``ray_address`` (``"local"``,
    ``"auto"`` or ``"ray://host:port"``) reads the images on a Ray cluster
    (``pip install "fervid[ray]"``; :mod:`fervid.ray_jobs`) with the same rows; ``model``
    must then be a path every node can read, or None for the bundled model, and
    ``ray_resources`` a :class:`fervid.ray_jobs.Resources`.
    """
    opts = make_options(ImageOptions, options, **settings)
    if ray_address is not None:
        _check_ray_model(model)
        classes = _driver_model(model).classes
        paths, root = resolve_inputs(inputs)
        read = _ray_reader(model, device, opts, ray_address, ray_resources)
        rows = [r for image_rows in read(paths, root) for r in image_rows]
        return to_frame(rows, RowSchema("image", classes, landmarks=opts.landmarks))
    emo = model if isinstance(model, EmotionModel) else load_model(model, device=device)
    rows = [r for res in iter_images(inputs, model=emo, options=opts) for r in res.rows()]
    return to_frame(rows, RowSchema("image", emo.classes, landmarks=opts.landmarks))


def scan_folder(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    options: ImageOptions | None = None,
    resume: bool = False,
    overwrite: bool = False,
    ray_address: str | None = None,
    ray_resources=None,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    page: str | os.PathLike | None = None,
    fmt: str | None = None,
    **settings,
) -> ScanReport:
    """Scan a folder of photos (recursively) into a table file (``.csv``, ``.jsonl`` or
    ``.parquet``), resumable (``resume=True`` continues an interrupted scan of the same
    folder), locally or on a Ray cluster (``ray_address``, as :func:`analyze_images`).
    Returns a :class:`~fervid.photos.ScanReport`; Ctrl-C raises
    :class:`~fervid.photos.ScanInterrupted` with the rows so far kept for ``resume``."""
    opts = make_options(ImageOptions, options, **settings)
    read = None
    if ray_address is not None:
        _check_ray_model(model)
        read = _ray_reader(model, device, opts, ray_address, ray_resources)
    return _scan_folder(
        folder,
        out,
        model=model if read is None else _driver_model(model),
        device=device,
        options=opts,
        resume=resume,
        overwrite=overwrite,
        read=read,
        progress=progress,
        on_total=on_total,
        page=page,
        fmt=fmt,
    )


def annotate_videos(
    jobs: Sequence[tuple[Path, Path, Path | None]],
    *,
    model: str | os.PathLike | None = None,
    device: str = "auto",
    options: VideoOptions | None = None,
    ray_address: str = "local",
    ray_resources=None,
    resume: bool = False,
    split_minutes: float | None = None,
    on_done: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Annotate many videos on a Ray cluster: ``jobs`` are (video, CSV, annotated video or
    None), one task per video or, with ``split_minutes``, per part of a long video (parts
    stitched, the video drawn from the rows). One :class:`~fervid.pipeline.VideoRun` per job,
    in order (:func:`fervid.ray_jobs.annotate_jobs`). The outputs are assumed checked
    (:meth:`fervid.video_outputs.VideoOutputs.check_run`)."""
    _check_ray_model(model)
    connect(ray_address)
    return annotate_jobs(
        jobs,
        model_path=str(model) if model is not None else None,
        device=device,
        options=options or VideoOptions(),
        resources=ray_resources or Resources(),
        resume=resume,
        split_seconds=split_minutes * 60 if split_minutes else None,
        on_done=on_done,
    )


def _check_ray_model(model) -> None:
    if isinstance(model, EmotionModel):
        raise ValueError("with ray_address, give the model as a path (or None), not loaded")


def _driver_model(model) -> EmotionModel:
    """The model as the driver of a Ray run holds it: only its classes are read (the workers
    classify), so PyTorch on the CPU, nothing compiled."""
    return load_model(model, device="cpu", backend="torch")


def _ray_reader(model, device, opts: ImageOptions, address: str, resources):
    """``read(paths, base)``: each image's rows, in order, read by a pool of Ray actors."""
    connect(address)
    model_path = str(model) if model is not None else None

    def read(paths, base):
        for shard in scan_rows(
            paths,
            base,
            model_path=model_path,
            device=device,
            options=opts,
            resources=resources or Resources(),
        ):
            yield from shard

    return read
