"""Make the int8 copy of a checkpoint that fervid's CPU runtime uses (:mod:`fervid.compiled`),
its activations calibrated on validation faces: 150 from the AffectNet subset's ``val`` split
and 150 from RAF-DB's ``train`` split (never a test split), drawn with a fixed seed.

    pip install nncf
    python bench/quantize.py --data ../shared/data [--model PATH]   # -> NAME.int8.xml/.bin

Then check it with ``python bench/eval_default_model.py`` (the figures must stay within 0.5
point of the model's own) and ``python bench/classifier.py`` (ms per face).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

import fervid
from fervid.classify import DEFAULT_MODEL
from fervid.compiled import quantize
from fervid.images import IMAGE_EXTS, load_image
from fervid.train.data import read_rafdb


def calibration_paths(data: Path, per_set: int = 150, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    aff = sorted(
        p for p in (data / "affectnet-subset" / "val").rglob("*") if p.suffix in IMAGE_EXTS
    )
    raf = list(read_rafdb(data / "rafdb" / "basic").split("train").paths)
    rng.shuffle(aff)
    rng.shuffle(raf)
    return aff[:per_set] + [Path(p) for p in raf[:per_set]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--per-set", type=int, default=150)
    args = ap.parse_args()
    model = fervid.load_model(args.model, device="cpu", backend="torch")
    crops = np.stack(
        [model.prepare(load_image(p)) for p in calibration_paths(args.data, args.per_set)]
    )
    out = quantize(model, crops, args.model)
    print(f"{out} ({out.with_suffix('.bin').stat().st_size / 2**20:.1f} MiB), {len(crops)} faces")


if __name__ == "__main__":
    main()
