"""How well the bundled model's probabilities are calibrated, and the temperature that fits.

The model is read as it is (its own temperature applied, as fervid applies it). Its
validation splits (the ones it was selected on: FER2013 val with the FER+ majority
label, the held-out 10% of RAF-DB train, AffectNet val; rebuilt exactly as fervid-train built
them) are read through fervid's inference path (face crops, as ``fervid scan --crops``). One
further temperature ``T`` is fitted on them (``fervid.calibration.fit_temperature``: the
negative log-likelihood of ``p ** (1/T)`` renormalised; about 1 for a calibrated model).
Reported per split, as is and with ``T``: accuracy, NLL,
expected calibration error (ECE: 15 equal-width bins of the top probability, the mean gap
between confidence and accuracy weighted by the bins' sizes) and the mean top probability;
the test splits (RAF-DB test, AffectNet test) are read once, never used for fitting.

    python bench/calibration.py --data ../shared/data [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from eval_default_model import link_view  # bench/, on the path when run as a script

import fervid
from fervid.calibration import calibration_report, fit_temperature, temperature_scale
from fervid.classify import DEFAULT_MODEL
from fervid.train.data import read_rafdb
from fervid.train.sources import open_sources
from fervid.train.study import scan_truth


def splits(data: Path, classes: list[str]) -> dict[str, tuple[list[tuple[str, str]], bool]]:
    """name -> ((image, class) pairs, whether it is a fitting split)."""
    _, sources = open_sources(
        [data / "fer2013", data / "rafdb" / "basic", data / "affectnet-subset"],
        exclude=[data / "test-duplicates.txt"],
        labels="ferplus",
        eval_labels="majority",
    )
    out = {}
    for s in sources:
        pairs = [(p, classes[y]) for p, y in zip(s.val.paths, s.val.labels)]
        out[f"{s.name} {s.val_split}"] = (pairs, True)
    test = read_rafdb(data / "rafdb" / "basic").split("test")
    out["rafdb test"] = ([(p, classes[y]) for p, y in zip(test.paths, test.labels)], False)
    aff = sorted((data / "affectnet-subset" / "test").glob("*/*"))
    out["affectnet-subset test"] = ([(str(p), p.parent.name) for p in aff], False)
    return out


def probabilities(model, items, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities through the inference path and (N,) true class indices."""
    view = link_view(tmp, [(Path(p), c) for p, c in items])
    read, truth = scan_truth(fervid.analyze_images(view, model=model, crops=True), model.classes)
    return read[list(model.classes)].to_numpy(np.float64), np.array(truth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    model = fervid.load_model(args.model, device="cpu")
    classes = list(model.classes)
    read = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (items, fit)) in enumerate(splits(Path(args.data), classes).items()):
            read[name] = (*probabilities(model, items, Path(tmp) / str(i)), fit)
            print(f"{name}: {len(read[name][1])} of {len(items)} read", flush=True)
    p = np.concatenate([v[0] for v in read.values() if v[2]])
    y = np.concatenate([v[1] for v in read.values() if v[2]])
    t = fit_temperature(p, y)
    out = {
        "model": args.model,
        "model_temperature": model.meta.temperature,
        "fitted_temperature": round(t, 4),
        "splits": {},
    }
    for name, (p, y, fit) in read.items():
        out["splits"][name] = {
            "fitted_on": fit,
            "as_is": calibration_report(p, y),
            "fitted": calibration_report(temperature_scale(p, t), y),
        }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
