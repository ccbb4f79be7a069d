from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from fervid.architectures import REGISTRY, STUDY_ARCHS, build_model
from fervid.checkpoint import load_checkpoint
from fervid.train.cli import cli
from fervid.train.run import RunResult
from fervid.train.study import COLUMNS, write_report

from train_fixtures import make_folder_dataset, make_rafdb


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _train(*args):
    """Run fervid-train's CLI in-process with the given arguments."""
    return CliRunner().invoke(cli, [str(a) for a in args])


FAST = ["--archs", "resnet18", "--input-size", "32", "--batch-size", "32", "--seed", "0", "-q"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_folder_dataset(
        tmp_path_factory.mktemp("toy") / "data", per_class=(150, 150, 150), val_per_class=30
    )


@pytest.fixture(scope="module")
def fitted(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = CliRunner().invoke(cli, ["--data", str(toy), "--epochs", "2", "--out", str(out), *FAST])
    assert r.exit_code == 0, r.output
    return out


def test_fit_learns_toy_task_and_writes_run(fitted):
    run = fitted / "resnet18"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["acc"] > 0.6, metrics  # chance is 1/3
    assert metrics["balanced_acc"] > 0.6
    for name in ("config.json", "last.pt", "best.safetensors", "history.csv"):
        assert (run / name).exists(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["input_size"] == 32 and cfg["channels"] == "grayscale" and cfg["arch"] == "resnet18"
    rows = _rows(run / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_acc", "val_balanced_acc", "val_macro_f1"} <= set(rows[0])


def test_checkpoint_contract(fitted):
    state, meta = load_checkpoint(fitted / "resnet18" / "best.safetensors")
    assert meta.arch == "resnet18" and meta.input_size == 32 and meta.channels == "grayscale"
    assert meta.classes == ["surprise", "happiness", "sadness"]
    assert len(meta.mean) == 3 and len(meta.std) == 3
    assert meta.crop.scale == 1.0 and meta.dataset == "data"
    assert {"acc", "balanced_acc", "macro_f1", "recall", "confusion"} <= set(meta.metrics)
    assert meta.config["epochs"] == 2 and meta.fervid_version
    model = build_model(meta.arch, len(meta.classes))
    model.load_state_dict(state)
    # the training state is a checkpoint too, read with weights_only
    _, meta2 = load_checkpoint(fitted / "resnet18" / "last.pt")
    assert meta2.classes == meta.classes


def test_report_files(fitted):
    rows = _rows(fitted / "comparison.csv")
    assert list(rows[0]) == COLUMNS and rows[0]["arch"] == "resnet18"
    assert float(rows[0]["fit_time_vs_fastest"]) == 1.0
    assert (fitted / "comparison.md").read_text().count("| resnet18 |") == 1
    assert (fitted / "accuracy_vs_fit_time.png").stat().st_size > 1000
    assert (fitted / "confusion_resnet18.png").stat().st_size > 1000


def test_evaluate_command_matches_training_metrics(fitted, toy, tmp_path):
    out = tmp_path / "m.json"
    r = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(fitted / "resnet18" / "best.safetensors"),
            "--data",
            str(toy),
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "per-class recall" in r.output
    got = json.loads(out.read_text())
    _, meta = load_checkpoint(fitted / "resnet18" / "best.safetensors")
    assert got["acc"] == pytest.approx(meta.metrics["acc"], abs=1e-9)
    assert got["confusion"] == meta.metrics["confusion"]


@pytest.mark.slow
def test_evaluate_rejects_foreign_checkpoint(tmp_path, toy):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(os.urandom(200))
    r = CliRunner().invoke(cli, ["evaluate", str(bad), "--data", str(toy)])
    assert r.exit_code == 1 and "Error:" in r.output and "Traceback" not in r.output


def _train_cmd(data, out, epochs):
    return [
        sys.executable,
        "-m",
        "fervid.train.cli",
        "--data",
        str(data),
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        *FAST,
    ]


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted(toy, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    full = tmp_path / "full"
    subprocess.run(_train_cmd(toy, full, 3), check=True, env=env, capture_output=True)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        _train_cmd(toy, cut, 3), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    hist = cut / "resnet18" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if hist.exists() and len(hist.read_text().splitlines()) >= 2:  # epoch 1 written
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    epochs_done = len(hist.read_text().splitlines()) - 1
    assert 1 <= epochs_done < 3, "the run was not interrupted mid-way"
    r = subprocess.run(
        _train_cmd(toy, cut, 3) + ["--resume"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    a = torch.load(full / "resnet18" / "last.pt", weights_only=True)
    b = torch.load(cut / "resnet18" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for k in a["model"]:
        assert torch.allclose(a["model"][k].float(), b["model"][k].float(), atol=1e-5), k
    assert [h["val_acc"] for h in a["history"]] == [h["val_acc"] for h in b["history"]]


def test_rafdb_fit_with_loss_balance(tmp_path):
    root = make_rafdb(tmp_path / "raf", counts_train=[6, 2, 2, 12, 4, 2, 6])
    r = CliRunner().invoke(
        cli,
        [
            "--data",
            str(root),
            "--epochs",
            "1",
            "--balance",
            "loss",
            "--ema",
            "--cache",
            "stream",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "o"),
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    _, meta = load_checkpoint(tmp_path / "o" / "resnet18" / "best.safetensors")
    assert meta.channels == "rgb" and meta.dataset == "rafdb" and len(meta.classes) == 7
    # RAF-DB has no val split: a stratified part of train selects, the test split reports
    assert meta.metrics["split"] == "holdout"
    m = json.loads((tmp_path / "o" / "resnet18" / "metrics.json").read_text())
    assert m["split"] == "test" and sum(map(sum, m["confusion"])) == 21
    assert m["sources"]["rafdb"]["val"]["n"] == 7  # one of each class (at least one)
    cfg = json.loads((tmp_path / "o" / "resnet18" / "config.json").read_text())
    assert cfg["sources"][0]["val_split"] == "holdout" and cfg["sources"][0]["test"] == 21


@pytest.mark.slow
def test_ddp_two_gloo_processes(toy, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "fervid.train.cli",
        "--data",
        str(toy),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--archs",
        "resnet18",
        "--input-size",
        "32",
        "--batch-size",
        "16",
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "resnet18" / "metrics.json").read_text())
    # both shards' predictions counted once: the whole val split
    cm = torch.tensor(m["confusion"])
    assert int(cm.sum()) == 90
    cfg = json.loads((out / "resnet18" / "config.json").read_text())
    assert cfg["world_size"] == 2
    assert r.stderr.count("resnet18 epoch 1/1") == 1  # only rank 0 reports and writes


@pytest.mark.parametrize("arch", sorted(REGISTRY))
def test_every_registered_arch_builds_and_runs(arch):
    size = REGISTRY[arch].min_input
    with torch.no_grad():
        out = build_model(arch, 7).eval()(torch.zeros(1, 3, size, size))
    assert out.shape == torch.Size([1, 7])


def test_study_archs_are_registered():
    assert set(STUDY_ARCHS) <= set(REGISTRY)
    assert {"resnet50", "efficientnet_b0"} <= set(REGISTRY)


def test_pretrained_unavailable_is_clear(monkeypatch, toy, tmp_path):
    import torchvision

    def offline(self, *a, **k):  # stands in for the download: no network is touched
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", offline)
    r = _train("--data", toy, "--epochs", 1, "--pretrained", "--out", tmp_path, *FAST)
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "ImageNet weights for resnet18 could not be loaded" in lines[0]
    assert "--no-pretrained" in lines[0]


def test_report_compares_architectures(tmp_path):
    def res(arch, acc, fit):
        return RunResult(
            arch,
            "",
            10,
            32,
            2,
            1,
            acc,
            acc - 0.05,
            acc - 0.1,
            fit,
            fit / 2,
            100.0,
            50.0,
            "cpu",
            [0.5, 0.5],
            [[1, 1], [1, 1]],
            ["a", "b"],
        )

    write_report([res("resnet34", 0.80, 10.0), res("efficientnet_b7", 0.81, 150.0)], tmp_path)
    rows = _rows(tmp_path / "comparison.csv")
    assert [float(r["fit_time_vs_fastest"]) for r in rows] == [1.0, 15.0]
    md = (tmp_path / "comparison.md").read_text()
    assert "efficientnet_b7 (15.0x the fastest's fit time)" in md
    assert (tmp_path / "confusion_efficientnet_b7.png").exists()


def test_init_fine_tunes_from_a_checkpoint(fitted, toy, tmp_path):
    ckpt = fitted / "resnet18" / "best.safetensors"
    r = _train(
        "--data",
        toy,
        "--epochs",
        1,
        "--init",
        ckpt,
        "--lr",
        "1e-4",
        "--out",
        tmp_path / "ft",
        *FAST,
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "ft" / "resnet18" / "metrics.json").read_text())
    assert m["acc"] > 0.6
    two = make_folder_dataset(
        tmp_path / "two", per_class=(20, 20), val_per_class=5, names=("angry", "neutral")
    )
    r = _train("--data", two, "--epochs", 1, "--init", ckpt, "--out", tmp_path / "ft2", *FAST)
    assert r.exit_code == 0, r.output  # other classes: the head starts fresh
    r = _train(
        "--data",
        toy,
        "--epochs",
        1,
        "--init",
        ckpt,
        "--archs",
        "mobilenet_v3_large",
        "--out",
        tmp_path / "x",
        "-q",
    )
    assert r.exit_code == 1 and "a resnet18 checkpoint" in r.output


def test_export_packages_a_checkpoint(fitted, tmp_path):
    src = fitted / "resnet18" / "last.pt"
    out = tmp_path / "model.safetensors"
    r = CliRunner().invoke(
        cli,
        ["export", str(src), str(out), "--crop-scale", "1.3", "--tta", "hflip", "--dataset", "toy"],
    )
    assert r.exit_code == 0, r.output
    state, meta = load_checkpoint(out)
    assert meta.crop.scale == 1.3 and meta.tta == "hflip" and meta.dataset == "toy"
    assert out.stat().st_size < (fitted / "resnet18" / "best.safetensors").stat().st_size * 0.6
    ref, _ = load_checkpoint(src)
    for k in ref:
        assert torch.allclose(ref[k].float(), state[k].float(), atol=1e-2, rtol=1e-2), k


def test_average_interpolates_weights_and_refuses_other_networks(fitted, toy, tmp_path):
    from dataclasses import replace

    from fervid.checkpoint import save_checkpoint

    a = fitted / "resnet18" / "best.safetensors"
    state, meta = load_checkpoint(a)
    moved = {k: v * 1.5 if v.is_floating_point() else v + 7 for k, v in state.items()}
    b = save_checkpoint(tmp_path / "b.safetensors", moved, meta)
    out = tmp_path / "avg.safetensors"
    r = _train("average", a, b, out, "--weights", "1,3", "--no-half")
    assert r.exit_code == 0, r.output
    assert "0.25 x best.safetensors, 0.75 x b.safetensors" in r.output
    avg, avg_meta = load_checkpoint(out)
    for k, v in state.items():
        want = v * 1.375 if v.is_floating_point() else v  # 0.25 + 0.75 * 1.5; counters: a's
        assert torch.allclose(avg[k], want, atol=1e-6), k
    assert avg_meta.config["average_of"][1] == {"checkpoint": "b.safetensors", "weight": 0.75}
    assert avg_meta.metrics == {} and avg_meta.tta == meta.tta
    r = _train("average", a, a, tmp_path / "same.safetensors")  # a model with itself: itself
    assert r.exit_code == 0, r.output
    r = _train("evaluate", tmp_path / "same.safetensors", "--data", toy, "--split", "val")
    r0 = _train("evaluate", a, "--data", toy, "--split", "val")
    assert r.output.splitlines()[0] == r0.output.splitlines()[0]

    other = save_checkpoint(tmp_path / "c.safetensors", state, replace(meta, input_size=64))
    cases = [
        ([a, other], "c.safetensors: its input_size (64) differs from the first"),
        ([a, tmp_path / "missing.safetensors"], "checkpoint not found"),
        ([a], "averaging needs two checkpoints or more"),
        ([a, b, "--weights", "1,2,3"], "3 weights given for 2 checkpoints"),
        ([a, b, "--weights", "1,0"], "every weight must be a positive number"),
        ([a, b, "--weights", "1,x"], "give numbers separated by commas"),
    ]
    for args, message in cases:
        r = _train("average", *args[:2], tmp_path / "refused.safetensors", *args[2:])
        assert r.exit_code != 0 and message in r.output, (args, r.output)
        assert not (tmp_path / "refused.safetensors").exists()
    r = _train("average", a, b, b)  # the output would replace an input
    assert r.exit_code != 0 and "b.safetensors" in r.output
    assert load_checkpoint(b)[0].keys() == state.keys()


def test_dlib_backbone_fine_tunes_from_its_face_weights(tmp_path):
    """``dlib_resnet --pretrained`` starts from dlib's face-recognition weights (installed
    with fervid, nothing downloaded), trains, and its checkpoint runs through inference."""
    import numpy as np

    import fervid
    from fervid._dlib_resnet import DESCRIPTOR_FILE, DlibFaceNet, model_dir

    data = make_folder_dataset(tmp_path / "data", per_class=(24, 24, 24), val_per_class=8)
    out = tmp_path / "run"
    size = REGISTRY["dlib_resnet"].min_input
    args = ["--archs", "dlib_resnet", "--pretrained", "--input-size", size, "--epochs", "1"]
    r = _train("--data", data, "--out", out, *args, "--batch-size", 24, "--seed", 0, "-q")
    assert r.exit_code == 0, r.output
    # the start was dlib's network: the first convolution moved only a little from it
    dlib = DlibFaceNet.from_file(os.path.join(model_dir(), DESCRIPTOR_FILE))
    state, meta = load_checkpoint(out / "dlib_resnet" / "best.safetensors")
    assert meta.arch == "dlib_resnet" and meta.input_size == size
    first = state["body.convs.0.weight"].float()
    start = dlib.convs[0].weight
    assert (first - start).norm() < 0.1 * start.norm()
    model = fervid.load_model(out / "dlib_resnet" / "best.safetensors", device="cpu")
    probs = model.predict(model.prepare(np.full((80, 80, 3), 128, np.uint8))[None])
    assert probs.shape == (1, 3) and abs(float(probs.sum()) - 1) < 1e-4
    # too small an input for its unpadded strided layers is refused with one line
    r = _train("--data", data, "--out", out, "--archs", "dlib_resnet", "--input-size", 64, "-q")
    assert r.exit_code != 0 and "at least 104 px" in r.output
