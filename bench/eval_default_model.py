"""Check a model (the bundled one by default) on every labelled split of the shared data,
through fervid's own inference path (the images fed as face crops, as ``fervid scan --crops``
does), and through fervid-train's evaluator where the split has dataset labels:

- FER2013 PublicTest (``fer2013/val``), with its Kaggle folder labels and with the FER+
  majority label (``fer2013/ferplus.csv``; images whose votes are mostly contempt, unknown
  or not-a-face left out, as in training);
- RAF-DB test (3,068 aligned faces);
- the AffectNet subset's test split (1,535 faces).

Labelled views are folders of symbolic links in a temporary folder: no image is copied.

    python bench/eval_default_model.py --data ../shared/data [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import fervid
from fervid.classify import DEFAULT_MODEL
from fervid.emotions import EMOTIONS
from fervid.train.data import read_rafdb
from fervid.train.sources import read_soft_labels
from fervid.train.study import evaluate_checkpoint, scan_metrics

KEYS = ("acc", "balanced_acc", "macro_f1")
#: Issue #23's in-domain bars for a new default model: (split, measure, at least).
BARS = (
    ("rafdb test", "acc", 0.85),
    ("affectnet-subset test", "balanced_acc", 0.69),
    ("fer2013 val (FER+ majority)", "acc", 0.83),
)


def link_view(root: Path, items: list[tuple[Path, str]]) -> Path:
    """A class-folder view ``root/<class>/<name>`` of (image, class) pairs, as links."""
    for path, cls in items:
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.realpath(path), d / path.name)
    return root


def views(data: Path, tmp: Path) -> dict[str, tuple[Path, Path | None, str | None]]:
    """name -> (class-folder view, dataset root for the evaluator, its split)."""
    out: dict[str, tuple[Path, Path | None, str | None]] = {}
    fer = data / "fer2013"
    if fer.exists():
        out["fer2013 val (Kaggle labels)"] = (fer / "val", fer, "val")
        soft = read_soft_labels(fer / "ferplus.csv", list(EMOTIONS), 0.5)
        items = []
        for p in sorted((fer / "val").rglob("*.jpg")):
            t = soft.targets.get(os.path.realpath(p))
            if t is not None:
                items.append((p, EMOTIONS[int(np.argmax(t))]))
        out["fer2013 val (FER+ majority)"] = (link_view(tmp / "ferplus", items), None, None)
    raf = data / "rafdb" / "basic"
    if raf.exists():
        test = read_rafdb(raf).split("test")
        items = [(p, EMOTIONS[y]) for p, y in zip(test.paths, test.labels)]
        out["rafdb test"] = (link_view(tmp / "rafdb", items), raf, "test")
    aff = data / "affectnet-subset"
    if aff.exists():
        out["affectnet-subset test"] = (aff / "test", aff, "test")
    return out


def evaluate(model_path: str, data: Path, trainer: bool) -> dict:
    model = fervid.load_model(model_path, device="cpu")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (view, root, split) in views(data, Path(tmp)).items():
            df = fervid.analyze_images(view, model=model, crops=True)
            m = scan_metrics(df, model.classes)
            row = {"images": int(len(df)), "inference_path": {k: round(m[k], 4) for k in KEYS}}
            row["per_class_recall"] = dict(zip(model.classes, np.round(m["recall"], 4).tolist()))
            row["confusion"] = m["confusion"]
            if trainer and root is not None:
                t = evaluate_checkpoint(model_path, root, split=split, device="cpu")
                row["trainer"] = {k: round(t[k], 4) for k in KEYS}
            results[name] = row
            print(f"{name}: {row['inference_path']}", flush=True)
    return {"model": str(model_path), "classes": list(model.classes), "splits": results}


def bars(out: dict) -> list[str]:
    """Each in-domain bar of a new default model, met or not (and the file's size)."""
    lines = []
    for split, key, least in BARS:
        got = out["splits"].get(split, {}).get("inference_path", {}).get(key)
        verdict = "not measured" if got is None else ("met" if got >= least else "MISSED")
        lines.append(f"{split} {key} >= {least}: {got} {verdict}")
    mb = Path(out["model"]).stat().st_size / 2**20
    lines.append(f"file size <= 25 MB: {mb:.1f} MiB {'met' if mb <= 25 else 'MISSED'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--no-trainer", action="store_true", help="inference path only")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    out = evaluate(args.model, Path(args.data), not args.no_trainer)
    text = json.dumps(out, indent=2)
    print(text)
    print("\n".join(bars(out)))
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
