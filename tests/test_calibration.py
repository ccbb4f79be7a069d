"""Temperature calibration: the arithmetic, the checkpoint field, inference, the command."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

import fervid
from fervid.calibration import (
    calibration_error,
    fit_temperature,
    nll,
    reweight,
    temperature_scale,
)
from fervid.checkpoint import CheckpointError, ModelMeta, load_checkpoint
from fervid.train.cli import cli as train_cli

from conftest import samples


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def test_temperature_sharpens_or_softens_and_keeps_the_top_class():
    p = _softmax(np.random.default_rng(0).normal(size=(50, 7)))
    assert np.allclose(temperature_scale(p, 1.0), p)
    for t in (0.5, 2.0):
        q = temperature_scale(p, t)
        assert np.allclose(q.sum(1), 1) and (q.argmax(1) == p.argmax(1)).all()
        assert (q.max(1) > p.max(1)).all() if t < 1 else (q.max(1) < p.max(1)).all()


def test_fit_recovers_the_temperature_of_underconfident_probabilities():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(4000, 7))
    truth = _softmax(logits)
    y = np.array([rng.choice(7, p=row) for row in truth])
    shy = _softmax(logits * 0.5)  # the same model, half as confident as it should be
    t = fit_temperature(shy, y)
    assert 0.45 < t < 0.56
    assert nll(temperature_scale(shy, t), y) < nll(shy, y)
    assert calibration_error(temperature_scale(shy, t), y) < calibration_error(shy, y) / 2


def test_calibration_error_by_hand():
    p = np.array([[0.9, 0.1], [0.6, 0.4]])
    # bin of 0.9: right, gap 0.1; bin of 0.6: wrong, gap 0.6; each half the images
    assert calibration_error(p, np.array([0, 1])) == pytest.approx(0.35)


def _meta(**kw) -> ModelMeta:
    base = dict(
        arch="resnet18",
        classes=["a", "b"],
        input_size=32,
        channels="rgb",
        mean=[0.5] * 3,
        std=[0.5] * 3,
    )
    return ModelMeta(**{**base, **kw})


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 100.0, "0.5", True])
def test_a_bad_temperature_is_refused(bad):
    with pytest.raises(CheckpointError, match="temperature"):
        _meta(temperature=bad)


def test_temperature_round_trips_and_old_checkpoints_read_as_one():
    d = _meta(temperature=0.7).to_dict()
    assert ModelMeta.from_dict(d).temperature == 0.7
    del d["temperature"]
    assert ModelMeta.from_dict(d).temperature == 1.0


def test_inference_applies_the_models_temperature():
    model = fervid.load_model(device="cpu")
    assert model.meta.temperature != 1.0  # the bundled model is calibrated
    crops = np.stack([model.prepare(samples.astronaut())])
    calibrated = model.predict(crops)
    model.meta = replace(model.meta, temperature=1.0)
    raw = model.predict(crops)
    expected = temperature_scale(raw, load_checkpoint(fervid.classify.DEFAULT_MODEL)[1].temperature)
    assert np.allclose(calibrated, expected, atol=1e-4)
    assert calibrated.argmax() == raw.argmax() and calibrated.max() > raw.max()


def test_calibrate_command_writes_a_calibrated_copy(tmp_path):
    from train_fixtures import train_tiny

    data, ckpt = train_tiny(tmp_path)
    out = tmp_path / "calibrated.safetensors"
    r = CliRunner().invoke(
        train_cli,
        [
            "calibrate",
            str(ckpt),
            str(out),
            "--data",
            str(data),
            "--device",
            "cpu",
            "--json",
            str(tmp_path / "report.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    state, meta = load_checkpoint(out)
    assert "temperature 1.0 -> " in r.output and "val (12 images" in r.output
    assert 0.05 <= meta.temperature <= 20 and meta.temperature != 1.0
    assert set(state) == set(load_checkpoint(ckpt)[0])
    assert '"temperature"' in (tmp_path / "report.json").read_text()
    # the input is never replaced; export sets a temperature by hand
    r = CliRunner().invoke(train_cli, ["calibrate", str(ckpt), str(ckpt), "--data", str(data)])
    assert r.exit_code == 1 and "is an input" in r.output
    r = CliRunner().invoke(
        train_cli, ["export", str(out), str(tmp_path / "e.safetensors"), "--temperature", "2"]
    )
    assert r.exit_code == 0 and load_checkpoint(tmp_path / "e.safetensors")[1].temperature == 2.0


# -- class weights: a shift of the class prior at inference ---------------------------------


@pytest.mark.parametrize("bad", [[1.0], [1.0, 0.0], [1.0, -2.0], [1.0, float("inf")], "1,1"])
def test_bad_class_weights_are_refused(bad):
    with pytest.raises(CheckpointError, match="class_weights"):
        _meta(class_weights=bad)


def test_class_weights_round_trip_and_only_they_need_the_new_format():
    d = _meta(class_weights=[0.5, 2.0]).to_dict()
    assert d["format_version"] == 2 and ModelMeta.from_dict(d).class_weights == [0.5, 2.0]
    plain = _meta().to_dict()  # older fervid still reads a checkpoint without them
    assert plain["format_version"] == 1 and "class_weights" not in plain
    assert ModelMeta.from_dict(plain).class_weights is None


def test_reweight_shifts_the_prior_and_renormalises():
    p = np.array([[0.6, 0.4], [0.45, 0.55]])
    q = reweight(p, [1.0, 2.0])
    assert np.allclose(q.sum(1), 1) and np.allclose(q[0], [0.6, 0.8] / np.float64(1.4))
    assert q.argmax(1).tolist() == [1, 1] and reweight(p, None) is p


@pytest.mark.parametrize("backend", ["torch", "auto"])  # PyTorch, and OpenVINO on the CPU
def test_inference_applies_the_class_weights_before_the_temperature(backend):
    model = fervid.load_model(device="cpu", backend=backend)
    crops = np.stack([model.prepare(samples.astronaut())])
    t = model.meta.temperature
    model.meta = replace(model.meta, temperature=1.0)
    raw = model.predict(crops).astype(np.float64)
    w = [3.0, 1.0, 5.0, 0.2, 1.0, 2.0, 1.0]
    model.meta = replace(model.meta, temperature=t, class_weights=w)
    expected = temperature_scale(reweight(raw, w), t)
    assert np.allclose(model.predict(crops), expected, atol=1e-4)


def test_calibrate_shifts_the_prior_by_the_training_splits_class_shares(tmp_path):
    from train_fixtures import make_folder_dataset, train_tiny

    _, ckpt = train_tiny(tmp_path)
    lopsided = make_folder_dataset(tmp_path / "lop", per_class=(16, 4, 4), val_per_class=4)
    out = tmp_path / "shifted.safetensors"
    args = ["calibrate", str(ckpt), str(out), "--data", str(lopsided), "--device", "cpu"]
    r = CliRunner().invoke(train_cli, [*args, "--prior-shift", "-0.5"])
    assert r.exit_code == 0, r.output
    meta = load_checkpoint(out)[1]
    # prior 2/3, 1/6, 1/6 to the power -0.5, geometric mean 1: the common class weighs half
    w = np.array(meta.class_weights)
    assert np.isclose(np.exp(np.log(w).mean()), 1) and np.isclose(w[0] / w[1], 0.5, atol=1e-4)
    assert "class weights None -> [" in r.output and "balanced" in r.output
    # 0 takes them off again
    r = CliRunner().invoke(
        train_cli,
        ["calibrate", str(out), str(tmp_path / "plain.safetensors"), *args[3:]]
        + ["--prior-shift", "0"],
    )
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "plain.safetensors")[1].class_weights is None
