"""Tiny generated datasets in both layouts fervid-train reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fervid.emotions import EMOTIONS

FOLDER_NAMES = {"surprise": "surprise", "happiness": "happy", "sadness": "sad"}


def toy_image(label: int, rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """A separable toy task: bright left band / top band / centre blob, with noise."""
    img = rng.normal(70, 25, (size, size))
    s = size
    if label == 0:
        img[:, : s // 3] += 120
    elif label == 1:
        img[: s // 3, :] += 120
    else:
        img[s // 3 : 2 * s // 3, s // 3 : 2 * s // 3] += 140
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder_dataset(
    root: Path,
    per_class=(60, 60, 60),
    val_per_class=20,
    seed=0,
    names=("surprise", "happy", "sad"),
    rgb=False,
) -> Path:
    rng = np.random.default_rng(seed)
    for split, counts in (("train", per_class), ("val", [val_per_class] * len(names))):
        for label, (name, n) in enumerate(zip(names, counts)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = toy_image(label, rng)
                if rgb:
                    img = np.stack([img] * 3, -1)
                Image.fromarray(img).save(d / f"{split}_{i:04d}.png")
    return root


def make_rafdb(root: Path, counts_train=None, counts_test=None, seed=0, crlf=True) -> Path:
    """RAF-DB basic's official layout with toy images: labels 1..7 by RAF-DB's order."""
    rng = np.random.default_rng(seed)
    counts_train = counts_train or [6] * 7
    counts_test = counts_test or [3] * 7
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    img_dir = root / "Image" / "aligned"
    img_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for split, counts in (("train", counts_train), ("test", counts_test)):
        k = 0
        for label0, n in enumerate(counts):
            for _ in range(n):
                k += 1
                stem = f"{split}_{k:05d}"
                lines.append(f"{stem}.jpg {label0 + 1}")
                gray = toy_image(label0 % 3, rng, size=100)
                rgb = np.stack([gray, np.roll(gray, 3, 0), gray // 2 + 60], -1).astype(np.uint8)
                Image.fromarray(rgb).save(img_dir / f"{stem}_aligned.jpg", quality=90)
    nl = "\r\n" if crlf else "\n"
    (root / "EmoLabel" / "list_patition_label.txt").write_bytes((nl.join(lines) + nl).encode())
    return root


__all__ = ["EMOTIONS", "make_folder_dataset", "make_rafdb", "toy_image"]


def train_tiny(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny dataset (8 training and 4 val images per class) and the best checkpoint of one
    epoch of fervid-train on it at 32 px: (dataset root, checkpoint)."""
    from click.testing import CliRunner

    from fervid.train.cli import cli

    data = make_folder_dataset(tmp_path / "d", per_class=(8, 8, 8), val_per_class=4)
    r = CliRunner().invoke(
        cli,
        [
            "--data",
            str(data),
            "--archs",
            "resnet18",
            "--input-size",
            "32",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "r"),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    return data, tmp_path / "r" / "resnet18" / "best.safetensors"
