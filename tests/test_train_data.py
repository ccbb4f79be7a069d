from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fervid.emotions import EMOTIONS
from fervid.train.cli import cli
from fervid.train.data import (
    DataError,
    EpochSampler,
    SplitData,
    class_loss_weights,
    detect_channels,
    open_dataset,
    parse_rafdb_labels,
)

from conftest import SHARED
from train_fixtures import make_folder_dataset, make_rafdb


def test_rafdb_layout_crlf(tmp_path):
    root = make_rafdb(tmp_path / "raf", counts_train=[2, 1, 1, 3, 1, 1, 2], crlf=True)
    spec = open_dataset(root)
    assert spec.layout == "rafdb"
    assert spec.classes == list(EMOTIONS)
    assert len(spec.split("train")) == 11 and len(spec.split("test")) == 21
    assert spec.eval_split == "test"
    assert spec.split("train").labels.count(3) == 3  # happiness = label 4
    assert all(p.name.endswith("_aligned.jpg") for p in spec.split("train").paths)
    assert detect_channels(spec.split("train").paths) == "rgb"


@pytest.mark.skipif(not (SHARED / "rafdb").exists(), reason="../shared/data absent")
def test_real_rafdb_label_file_parses():
    splits = {"train": [], "test": []}
    for split, _, label in parse_rafdb_labels(SHARED / "rafdb" / "list_patition_label.txt"):
        splits[split].append(label)
    train = np.bincount(splits["train"], minlength=7).tolist()
    test = np.bincount(splits["test"], minlength=7).tolist()
    assert train == [1290, 281, 717, 4772, 1982, 705, 2524]
    assert test == [329, 74, 160, 1185, 478, 162, 680]


@pytest.mark.skipif(not (SHARED / "fer2013").exists(), reason="../shared/data absent")
def test_real_fer2013_folders_map_to_seven_classes():
    spec = open_dataset(SHARED / "fer2013")
    assert spec.layout == "folders" and spec.classes == list(EMOTIONS)
    assert len(spec.split("train")) == 28709 and len(spec.split("val")) == 3589


def test_folder_layout_maps_names(tmp_path):
    root = make_folder_dataset(
        tmp_path / "d", per_class=(3, 4, 5), val_per_class=2, names=("angry", "happy", "Surprised")
    )
    spec = open_dataset(root)
    assert spec.classes == ["surprise", "happiness", "anger"]  # canonical order
    assert spec.eval_split == "val"
    assert sorted(np.bincount(spec.split("train").labels).tolist()) == [3, 4, 5]
    assert detect_channels(spec.split("train").paths) == "grayscale"


def test_unknown_class_refused_unless_ignored(tmp_path):
    root = make_folder_dataset(
        tmp_path / "d", per_class=(2, 2, 2), val_per_class=1, names=("happy", "sad", "contempt")
    )
    with pytest.raises(DataError, match="contempt.*--ignore-unknown"):
        open_dataset(root)
    spec = open_dataset(root, ignore_unknown=True)
    assert spec.classes == ["happiness", "sadness"]


def _run(args):
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize(
    "case",
    [
        "wrong_root",
        "no_label_file",
        "missing_image",
        "malformed",
        "unreadable",
        "empty_class",
        "not_a_dataset",
    ],
)
def test_bad_data_is_one_line_error(tmp_path, case):
    root = tmp_path / "raf"
    expect = ""
    if case == "wrong_root":
        root = tmp_path / "nowhere"
        expect = "dataset root not found"
    elif case == "not_a_dataset":
        root.mkdir()
        expect = "not a dataset root"
    else:
        make_rafdb(root)
        labels = root / "EmoLabel" / "list_patition_label.txt"
        if case == "no_label_file":
            labels.unlink()
            expect = "label file missing"
        elif case == "missing_image":
            (root / "Image" / "aligned" / "train_00002_aligned.jpg").unlink()
            expect = "listed in .* but missing: .*train_00002_aligned.jpg"
        elif case == "malformed":
            text = labels.read_bytes().decode().split("\r\n")
            text[4] = "train_00005.jpg happy"
            labels.write_bytes("\r\n".join(text).encode())
            expect = r"list_patition_label.txt:5: malformed label line"
        elif case == "unreadable":
            (root / "Image" / "aligned" / "train_00003_aligned.jpg").write_bytes(b"not a jpeg")
            expect = "train_00003_aligned.jpg: cannot read image"
        elif case == "empty_class":
            lines = labels.read_bytes().decode().split("\r\n")
            lines = [ln for ln in lines if not (ln.startswith("train_") and ln.endswith(" 2"))]
            labels.write_bytes("\r\n".join(lines).encode())
            expect = "class 'fear' has no examples in the train split"
    r = _run(
        [
            "--data",
            str(root),
            "--archs",
            "resnet18",
            "--epochs",
            "1",
            "--input-size",
            "32",
            "--out",
            str(tmp_path / "out"),
            "-q",
        ]
    )
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    import re

    assert re.search(expect, lines[0]), lines[0]


def test_unreadable_image_while_streaming(tmp_path):
    root = make_folder_dataset(tmp_path / "d", per_class=(4, 4, 4), val_per_class=2)
    bad = next((root / "train" / "happy").iterdir())
    bad.write_bytes(b"\x89PNG truncated")
    spec = open_dataset(root)
    data = SplitData(spec.split("train"), 32, "grayscale", cache="stream", workers=0)
    with pytest.raises(DataError, match="cannot read image"):
        list(data.batches(torch.arange(len(data)), 4))


def test_missing_data_option_is_usage_error():
    r = _run([])
    assert r.exit_code == 2 and "--data is required" in r.output


def test_balanced_sampler_draws_classes_equally():
    labels = [0] * 5000 + [1] * 500 + [2] * 50
    s = EpochSampler(labels, 3, mode="balanced", seed=1)
    counts = np.bincount(np.asarray(labels)[s.indices(0).numpy()], minlength=3)
    freq = counts / counts.sum()
    # 5550 draws: the standard error of each share is ~0.0063; allow 4 of them
    assert np.all(np.abs(freq - 1 / 3) < 0.025), freq
    # a different epoch gives a different but equally balanced draw
    assert not torch.equal(s.indices(0), s.indices(1))
    # square-root balancing sits between the natural and the balanced shares
    half = EpochSampler(labels, 3, mode="balanced", seed=1, power=0.5)
    f_half = np.bincount(np.asarray(labels)[half.indices(0).numpy()], minlength=3) / len(labels)
    assert 1 / 3 < f_half[0] < 5000 / 5550


def test_distributed_sampler_shards_the_same_draw():
    labels = [0] * 90 + [1] * 10 + [2] * 3
    r0 = EpochSampler(labels, 3, mode="balanced", seed=3, rank=0, world_size=2)
    r1 = EpochSampler(labels, 3, mode="balanced", seed=3, rank=1, world_size=2)
    a, b = r0.indices(2), r1.indices(2)
    assert len(a) == len(b) == r0.num_samples // 2
    merged = torch.stack([a, b], 1).reshape(-1)
    assert torch.equal(merged, r0.full_indices(2))
    assert torch.equal(r0.full_indices(2), r1.full_indices(2))


def test_loss_weights_inverse_frequency():
    w = class_loss_weights([0] * 8 + [1] * 2, 2)
    assert torch.allclose(w, torch.tensor([0.4, 1.6]))


def test_training_decodes_like_inference(tmp_path):
    """EXIF-rotated and transparent images reach training as inference sees them."""
    from PIL import Image

    from fervid.preprocess import prepare_crop
    from fervid.train.data import decode_image

    upright = np.zeros((40, 20, 3), np.uint8)  # tall: top half white, bottom half black
    upright[:20] = 255
    # stored rotated 90 degrees, with EXIF orientation 8 ("rotate 90 CW to display")
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8
    stored.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=100)
    got = decode_image(tmp_path / "rotated.jpg", 16, "grayscale")[0].astype(int)
    want = prepare_crop(upright, 16, "grayscale")[0].astype(int)
    assert np.abs(got - want).max() <= 8  # JPEG error only; unrotated would differ by ~255

    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent black: white once composited
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert decode_image(tmp_path / "clear.png", 16, "rgb").min() == 255


def test_scan_metrics_labels_rows_by_their_class_folder():
    import pandas as pd

    from fervid.train.study import scan_metrics

    classes = ("happiness", "anger", "neutral")
    df = pd.DataFrame(
        {
            "path": ["happy/a.png", "happy/b.png", "Angry/c.png", "neutral/d.png", "anger/e.png"],
            "emotion": ["happiness", "anger", "anger", "neutral", None],
        }
    )
    m = scan_metrics(df, classes)
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert m["n"] == 4 and m["unread"] == 1
    assert m["acc"] == pytest.approx(0.75)
    assert m["balanced_acc"] == pytest.approx((0.5 + 1 + 1) / 3)
