"""The classifier compiled by OpenVINO (issue 26): the bundled model's int8 copy is used on a
CPU and reads faces as PyTorch does; a checkpoint without one is converted; a stale copy is
never used; PyTorch runs it by default and where OpenVINO cannot.

Each test runs in a process of its own (``python tests/test_compiled.py NAME``): with
OpenVINO loaded in the suite's process, a later test's process died (docs/video.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fervid
from fervid.classify import BACKENDS, DEFAULT_MODEL, load_model
from fervid.cli import BACKENDS as CLI_BACKENDS
from fervid.compiled import int8_path

pytest.importorskip("openvino")

OWN_PROCESS = "FERVID_OPENVINO_CHECKS"
own_process = pytest.mark.skipif(
    not os.environ.get(OWN_PROCESS), reason="run in a process of its own (the last test here)"
)


@pytest.fixture(scope="module")
def faces(model):
    """Real face crops: the two portraits, shifted a little."""
    from conftest import samples

    out = []
    for k in range(8):
        img = samples.portraits()[k % 2]
        x1, y1, x2, y2 = (int(v) for v in samples.PORTRAIT_FACES[k % 2])
        d = k - 4
        out.append(model.prepare(img[y1 + d : y2 + d, x1 - d : x2 - d]))
    return np.stack(out)


@own_process
def test_the_bundled_model_runs_int8_on_a_cpu_and_reads_faces_as_pytorch(faces):
    ov = load_model(device="cpu", backend="openvino")
    pt = load_model(device="cpu", backend="torch", amp="off")
    assert ov.describe() == "cpu openvino int8" and pt.describe() == "cpu fp32 channels_last"
    a, b = ov.predict(faces), pt.predict(faces)
    assert (a.argmax(1) == b.argmax(1)).all()
    assert np.abs(a - b).max() < 0.08 and np.allclose(a.sum(1), 1, atol=1e-5)


@own_process
def test_a_checkpoint_without_an_int8_copy_is_converted(tmp_path, faces):
    ckpt = shutil.copy(DEFAULT_MODEL, tmp_path / "mine.safetensors")
    ov = load_model(ckpt, device="cpu", amp="off", backend="openvino")
    pt = load_model(ckpt, device="cpu", backend="torch", amp="off")
    assert ov.describe() == "cpu openvino converted"
    assert np.abs(ov.predict(faces) - pt.predict(faces)).max() < 1e-4  # fp32 both


@own_process
def test_a_grayscale_checkpoint_is_converted_with_the_networks_three_channels(tmp_path):
    from dataclasses import replace

    from fervid.checkpoint import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(DEFAULT_MODEL)
    gray = tmp_path / "gray.safetensors"
    save_checkpoint(gray, state, replace(meta, channels="grayscale"))
    ov = load_model(gray, device="cpu", amp="off", backend="openvino")
    pt = load_model(gray, device="cpu", amp="off")
    x = np.random.default_rng(0).integers(0, 255, (4, 1, 112, 112), dtype=np.uint8)
    assert ov.describe() == "cpu openvino converted"
    assert np.abs(ov.predict(x) - pt.predict(x)).max() < 1e-4


@own_process
def test_an_int8_copy_of_another_checkpoint_is_not_used(tmp_path, faces, caplog):
    from fervid.checkpoint import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(DEFAULT_MODEL)
    state = {k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()}
    other = tmp_path / "default.safetensors"
    save_checkpoint(other, state, meta)
    for ext in (".xml", ".bin"):  # the bundled copy beside a checkpoint it was not made from
        shutil.copy(int8_path(DEFAULT_MODEL).with_suffix(ext), int8_path(other).with_suffix(ext))
    with caplog.at_level("WARNING"):
        m = load_model(other, device="cpu", backend="openvino")
    assert m.describe() == "cpu openvino converted" and "was not made from" in caplog.text


@own_process
def test_pytorch_runs_it_where_asked(faces):
    assert load_model(device="cpu").compiled is None
    m = load_model(device="cpu", backend="openvino")
    flipped = m.predict(np.ascontiguousarray(faces[::-1]))[::-1]
    assert np.allclose(m.predict(faces), flipped, atol=1e-6)  # the same whatever the batch
    with pytest.raises(ValueError, match="backend 'tflite'"):
        load_model(device="cpu", backend="tflite")
    assert CLI_BACKENDS == BACKENDS


@own_process
def test_openvino_failing_is_one_line(monkeypatch, caplog):
    import openvino

    def broken(*a, **k):
        raise RuntimeError("Check failed: no primitive for node MaxPool")

    monkeypatch.setattr(openvino.Core, "compile_model", broken)
    with caplog.at_level("WARNING"), pytest.raises(ValueError, match="or cannot run here"):
        fervid.load_model(device="cpu", backend="openvino")
    assert "Check failed" in caplog.text


def test_the_openvino_checks_pass_in_a_process_of_their_own():
    if os.environ.get(OWN_PROCESS):
        pytest.skip("this is that process")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        env=dict(os.environ, **{OWN_PROCESS: "1"}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and "6 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
