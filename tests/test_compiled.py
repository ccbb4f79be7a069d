"""The classifier compiled by OpenVINO (issue 26), the default on a CPU: the bundled model's
int8 copy reads faces as PyTorch does; a checkpoint without one is converted; a stale copy is
never used; PyTorch runs it where asked and where OpenVINO cannot; and a process that loads
and frees several models keeps a usable signal stack (the cause of a crash, docs/video.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fervid
from fervid.classify import BACKENDS, DEFAULT_MODEL, load_model
from fervid.cli_options import BACKENDS as CLI_BACKENDS
from fervid.compiled import int8_path

pytest.importorskip("openvino")


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


def test_the_bundled_model_runs_int8_on_a_cpu_and_reads_faces_as_pytorch(faces):
    ov = load_model(device="cpu", backend="openvino")
    pt = load_model(device="cpu", backend="torch", amp="off")
    assert ov.describe() == "cpu openvino int8" and pt.describe() == "cpu fp32 channels_last"
    a, b = ov.predict(faces), pt.predict(faces)
    assert (a.argmax(1) == b.argmax(1)).all()
    assert np.abs(a - b).max() < 0.08 and np.allclose(a.sum(1), 1, atol=1e-5)


def test_a_checkpoint_without_an_int8_copy_is_converted(tmp_path, faces):
    ckpt = shutil.copy(DEFAULT_MODEL, tmp_path / "mine.safetensors")
    ov = load_model(ckpt, device="cpu", amp="off", backend="openvino")
    pt = load_model(ckpt, device="cpu", backend="torch", amp="off")
    assert ov.describe() == "cpu openvino converted"
    assert np.abs(ov.predict(faces) - pt.predict(faces)).max() < 1e-4  # fp32 both


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


def test_pytorch_runs_it_where_asked(faces):
    assert load_model(device="cpu").describe() == "cpu openvino int8"  # the default
    assert load_model(device="cpu", backend="torch").compiled is None
    m = load_model(device="cpu", backend="openvino")
    flipped = m.predict(np.ascontiguousarray(faces[::-1]))[::-1]
    assert np.allclose(m.predict(faces), flipped, atol=1e-6)  # the same whatever the batch
    with pytest.raises(ValueError, match="backend 'tflite'"):
        load_model(device="cpu", backend="tflite")
    assert CLI_BACKENDS == BACKENDS


def test_openvino_failing_is_one_line(monkeypatch, caplog):
    import openvino

    def broken(*a, **k):
        raise RuntimeError("Check failed: no primitive for node MaxPool")

    monkeypatch.setattr(openvino.Core, "compile_model", broken)
    with caplog.at_level("WARNING"), pytest.raises(ValueError, match="or cannot run here"):
        fervid.load_model(device="cpu", backend="openvino")
    assert "Check failed" in caplog.text


def test_openvino_failing_falls_back_to_pytorch_by_default(monkeypatch, caplog):
    import openvino

    def broken(*a, **k):
        raise RuntimeError("Check failed: no primitive for node MaxPool")

    monkeypatch.setattr(openvino.Core, "compile_model", broken)
    with caplog.at_level("WARNING"):
        m = fervid.load_model(device="cpu")
    assert m.compiled is None and "PyTorch runs it" in caplog.text


SIGNAL_STACK = textwrap.dedent(
    """
    import ctypes, gc, signal, subprocess
    import fervid

    class Stack(ctypes.Structure):
        _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

    first = fervid.load_model(device="cpu")
    second = fervid.load_model(device="cpu")
    del first; gc.collect(); del second; gc.collect()  # freed in the order they were made
    st = Stack()
    ctypes.CDLL(None).sigaltstack(None, ctypes.byref(st))
    if st.sp and not st.flags & 2:  # an alternate signal stack is set: it must be mapped
        a = st.sp
        maps = [line.split()[0].split("-") for line in open("/proc/self/maps")]
        assert any(int(lo, 16) <= a < int(hi, 16) for lo, hi in maps), "unmapped signal stack"
    signal.signal(signal.SIGCHLD, lambda *_: None)  # as PyTorch's DataLoader installs one
    subprocess.run(["true"], check=True)
    print("alive")
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signal stacks")
def test_models_freed_in_any_order_leave_a_usable_signal_stack():
    """OpenVINO's CPU plugin sets an alternate signal stack and unmaps it when freed: with a
    runtime per model, freeing two models first-made-first left the thread a stack that no
    longer existed, and the next handled signal killed the process (SIGSEGV)."""
    r = subprocess.run(
        [sys.executable, "-c", SIGNAL_STACK], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and "alive" in r.stdout, (r.returncode, r.stderr[-2000:])


_PROBS = textwrap.dedent(
    """
    import json, numpy as np
    from fervid.classify import load_model
    from conftest import samples
    m = load_model(device="cpu", backend="openvino")
    x1, y1, x2, y2 = (int(v) for v in samples.PORTRAIT_FACES[0])
    crop = m.prepare(samples.portraits()[0][y1:y2, x1:x2])
    print(json.dumps(m.predict(np.stack([crop])).tolist()))
    """
)


def _probs_in_a_new_process(cache, tests_dir) -> np.ndarray:
    env = {**os.environ, "FERVID_CACHE": str(cache)}
    r = subprocess.run(
        [sys.executable, "-c", _PROBS], env=env, cwd=tests_dir, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return np.array(json.loads(r.stdout.strip().splitlines()[-1]))


def test_the_compiled_classifier_is_kept_between_runs_and_a_broken_cache_costs_nothing(
    tmp_path, request
):
    """The second run reads the compiled network from the cache; a cache cut short (a kill
    while it was written) or made read-only gives the same probabilities, compiled again."""
    tests_dir = request.path.parent
    cache = tmp_path / "cache"
    first = _probs_in_a_new_process(cache, tests_dir)
    blobs = list((cache / "openvino").iterdir())
    assert blobs and all(b.stat().st_size > 0 for b in blobs)
    np.testing.assert_allclose(_probs_in_a_new_process(cache, tests_dir), first, atol=1e-6)
    for b in blobs:
        b.write_bytes(b.read_bytes()[:100])
    np.testing.assert_allclose(_probs_in_a_new_process(cache, tests_dir), first, atol=1e-6)
    (cache / "openvino").chmod(0o500)
    try:
        np.testing.assert_allclose(_probs_in_a_new_process(cache, tests_dir), first, atol=1e-6)
    finally:
        (cache / "openvino").chmod(0o700)


_NO_ZOO = """
import sys, fervid
model = fervid.load_model(device="cpu")
df = fervid.analyze_video(sys.argv[1], model=model, end=0.5)
faces = int(df["face"].notna().sum())
heavy = ("torchvision", "facenet_pytorch", "torch._dynamo")
print(faces, sorted(m for m in heavy if m in sys.modules))
"""


def test_a_video_run_on_a_cpu_imports_neither_torchvision_nor_facenet(request, tmp_path):
    """They cost 1.4-2 s of every start (docs/video.md): the detector calls torchvision's
    kernels through torch.ops and the int8 classifier needs no PyTorch network. The run
    still finds the sample's two faces on each of its first frames."""
    sample = request.path.parent.parent / "samples" / "two_people.mp4"
    env = {**os.environ, "FERVID_CACHE": str(tmp_path / "cache")}
    r = subprocess.run(
        [sys.executable, "-c", _NO_ZOO, str(sample)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    faces, imported = r.stdout.strip().split(" ", 1)
    assert imported == "[]" and int(faces) >= 2 * 12  # 0.5 s at 25 frames/s, two faces each
