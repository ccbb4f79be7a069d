"""The bundled model: one preprocessing for fervid-train's evaluator and fervid's inference."""

from __future__ import annotations

import os

import pytest

import fervid
from fervid.train.study import evaluate_checkpoint, scan_metrics

from conftest import SHARED

FER = SHARED / "fer2013"


@pytest.mark.skipif(not FER.exists(), reason="../shared/data absent")
def test_evaluator_and_inference_path_agree(tmp_path, model):
    # a class-balanced subset of FER2013 val, linked (never copied) into a folder dataset
    for split, n in (("train", 2), ("val", 60)):
        for cls in sorted(os.listdir(FER / split)):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for name in sorted(os.listdir(FER / split / cls))[:n]:
                os.symlink(FER / split / cls / name, d / name)
    trainer = evaluate_checkpoint(model.source, tmp_path, split="val", device="cpu")
    df = fervid.analyze_images(tmp_path / "val", model=model, crops=True)
    inference = scan_metrics(df, model.classes)
    assert trainer["n"] == len(df) == 6 * 60 + 56
    assert abs(trainer["acc"] - inference["acc"]) <= 0.005
    assert abs(trainer["balanced_acc"] - inference["balanced_acc"]) <= 0.005
    assert trainer["balanced_acc"] > 0.55  # a working emotion model, far above chance (1/7)
