"""A prior correction at inference, measured on faces from a source the model never saw.

The leave-one-dataset-out models of ``bench/lodo.py`` are read on their held-out test views
(as ``fervid scan --crops`` does); their probabilities are then multiplied by the training
sources' class prior to the power ``tau`` and renormalised (``tau < 0`` divides it out,
towards every class equal; ``tau = 0.5`` gives back the prior that the class-balancing
sampler at power 0.5 took away). Reported per held-out view and as the mean, as
``bench/lodo.py`` does: accuracy, balanced accuracy, predicted share of disgust over its true
share. The prior is each run's training splits' class shares, read from its own settings as
``fervid-train calibrate --prior-shift`` reads them (``--prior val``: its validation counts,
``metrics.json``): nothing of the held-out source is used to choose it.

    python bench/prior_shift.py --runs ../runs/lodo/64px-8ep-cap7000/base

Each view's probabilities are kept beside its run (``held_out_probs.npz``) once computed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import fervid
from fervid.emotions import EMOTIONS
from fervid.train.study import scan_truth

sys.path.insert(0, str(Path(__file__).parent))
from lodo import HELD_OUT, held_out_tables  # noqa: E402

TAUS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)


def validation_prior(run: Path) -> np.ndarray:
    """The class shares of the training sources' validation data."""
    m = json.loads((run / "metrics.json").read_text())
    counts = sum(np.array(s["val"]["confusion"]).sum(1) for s in m["sources"].values())
    return counts / counts.sum()


def training_prior(run: Path, classes: list[str]) -> np.ndarray:
    """The class shares of the run's training splits, read as ``fervid-train calibrate
    --prior-shift`` reads them (the run's own --data, --exclude, --labels settings)."""
    from fervid.train.calibrate import training_prior as shares
    from fervid.train.config import SOURCE_SETTINGS
    from fervid.train.sources import open_sources

    cfg = json.loads((run / "config.json").read_text())
    names, opened = open_sources(**{k: cfg[k] for k in SOURCE_SETTINGS if k in cfg})
    return shares(opened, names, classes)


def held_out_probs(run: Path, data: Path, held_out: str) -> dict[str, tuple]:
    """view name -> (probabilities N x C, true classes N), computed once and kept."""
    cache = run / "held_out_probs.npz"
    if cache.exists():
        z = np.load(cache)
        return {n: (z[f"p{i}"], z[f"y{i}"]) for i, n in enumerate(HELD_OUT[held_out])}
    model = fervid.load_model(run / "best.safetensors", device="cpu")
    classes = list(model.classes)
    out = {}
    for name, df in held_out_tables(model, data, held_out):
        read, truth = scan_truth(df, classes)
        out[name] = (read[classes].to_numpy(np.float64), np.asarray(truth))
    arrays = {}
    for i, (p, y) in enumerate(out.values()):
        arrays[f"p{i}"], arrays[f"y{i}"] = p, y
    np.savez(cache, **arrays)
    return out


def readings(p: np.ndarray, y: np.ndarray, disgust: int) -> tuple[float, float, float]:
    """Accuracy, balanced accuracy, predicted over true share of disgust."""
    pred = p.argmax(1)
    recalls = [(pred[y == c] == c).mean() for c in np.unique(y)]
    return (
        float((pred == y).mean()),
        float(np.mean(recalls)),
        float((pred == disgust).sum() / max((y == disgust).sum(), 1)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--runs", default="../runs/lodo/64px-8ep-cap7000/base", type=Path)
    ap.add_argument(
        "--prior",
        choices=["train", "val"],
        default="train",
        help="the prior shifted by: the training splits' class shares (what calibrate "
        "--prior-shift uses) or the validation splits' (the first measurement)",
    )
    args = ap.parse_args()
    disgust = list(EMOTIONS).index("disgust")
    rows = {tau: [] for tau in TAUS}
    for held_out in HELD_OUT:
        run = args.runs / f"without-{held_out}" / "resnet18"
        if args.prior == "train":
            prior = training_prior(run, list(EMOTIONS))
        else:
            prior = validation_prior(run)
        for name, (p, y) in held_out_probs(run, args.data, held_out).items():
            for tau in TAUS:
                rows[tau].append((name, *readings(p * prior**tau, y, disgust)))
    print("| tau | " + " | ".join(r[0] for r in rows[0.0]) + " | mean |")
    print("|---" * (len(rows[0.0]) + 2) + "|")
    for tau, r in rows.items():
        cells = [f"{a:.3f} / {b:.3f} (x{d:.2f})" for _, a, b, d in r]
        mean = f"{np.mean([x[1] for x in r]):.3f} / {np.mean([x[2] for x in r]):.3f}"
        print(f"| {tau:+.2f} | " + " | ".join(cells) + f" | {mean} |")


if __name__ == "__main__":
    main()
