"""The bundled model: one preprocessing for fervid-train's evaluator and fervid's inference."""

from __future__ import annotations

import os

import pytest

import fervid
from fervid.emotions import EMOTIONS
from fervid.train.data import read_rafdb
from fervid.train.study import evaluate_checkpoint, scan_metrics

from conftest import SHARED

RAF = SHARED / "rafdb" / "basic"


@pytest.mark.skipif(not RAF.exists(), reason="../shared/data absent")
def test_evaluator_and_inference_path_agree(tmp_path, model):
    # 40 RAF-DB test faces per class (2 train), linked (never copied) into a folder dataset
    spec = read_rafdb(RAF)
    for split, n in (("train", 2), ("val", 40)):
        sp = spec.split("train" if split == "train" else "test")
        taken = dict.fromkeys(range(7), 0)
        for path, y in zip(sp.paths, sp.labels):
            if taken[y] < n:
                d = tmp_path / split / EMOTIONS[y]
                d.mkdir(parents=True, exist_ok=True)
                os.symlink(path, d / path.name)
                taken[y] += 1
    trainer = evaluate_checkpoint(model.source, tmp_path, split="val", device="cpu")
    df = fervid.analyze_images(tmp_path / "val", model=model, crops=True)
    inference = scan_metrics(df, model.classes)
    assert trainer["n"] == len(df) == 7 * 40
    assert abs(trainer["acc"] - inference["acc"]) <= 0.005
    assert abs(trainer["balanced_acc"] - inference["balanced_acc"]) <= 0.005
    assert trainer["balanced_acc"] > 0.7  # a working emotion model, far above chance (1/7)
