"""Shared fixtures: real faces (public-domain photos), real encoded videos, tiny datasets."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FERVID_SHARED_DATA", ROOT.parent / "shared" / "data"))

_spec = importlib.util.spec_from_file_location("make_samples", ROOT / "samples" / "make_samples.py")
samples = importlib.util.module_from_spec(_spec)
sys.modules["make_samples"] = samples
_spec.loader.exec_module(samples)


@pytest.fixture(scope="session")
def portraits() -> list[np.ndarray]:
    return samples.portraits()


@pytest.fixture(scope="session")
def model():
    from fervid.classify import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def videos(tmp_path_factory, portraits):
    """Small real H.264 files: two faces with audio, a VFR one, one without faces."""
    d = tmp_path_factory.mktemp("videos")
    out = {}
    out["two"] = samples.write_video(d / "two.mp4", width=640, height=360, fps=10, seconds=1.2)
    vfr_times = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0]
    out["vfr"] = samples.write_video(
        d / "vfr.mp4", width=480, height=270, frame_times=vfr_times, audio=False
    )
    out["blank"] = samples.write_video(
        d / "blank.mp4", width=320, height=240, fps=10, seconds=0.5, faces=[], audio=False
    )
    out["rotated"] = samples.write_video(
        d / "rotated.mp4",
        width=480,
        height=270,
        fps=10,
        seconds=0.4,
        audio=False,
        rotation=-90,
        faces=[np.ascontiguousarray(np.rot90(p, 1)) for p in portraits],
    )
    return out


@pytest.fixture(scope="session")
def sample_annotated(tmp_path_factory) -> Path:
    """The bundled sample annotated once (``fervid annotate --no-video``), as ``two.mp4``
    with its outputs: read it, or copy it (:func:`copy_run`) to change it."""
    import shutil

    from click.testing import CliRunner

    from fervid.cli import cli

    d = tmp_path_factory.mktemp("sample")
    video = shutil.copy(ROOT / "samples" / "two_people.mp4", d / "two.mp4")
    r = CliRunner().invoke(cli, ["-q", "annotate", str(video), "--no-video"])
    assert r.exit_code == 0, r.output
    return d


def copy_run(src: Path, dst: Path) -> Path:
    """A finished run's files and folders (a video's outputs) copied into ``dst``."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy)(p, dst / p.name)
    return dst


def pytest_report_header(config):
    return f"shared data: {SHARED if SHARED.exists() else 'absent (tests using it skip)'}"
