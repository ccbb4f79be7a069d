"""Check the bundled model on FER2013's val split two ways: fervid-train's evaluator, and
fervid's own inference path (the images fed as face crops, as ``fervid scan --crops`` does).
The figures must agree within 0.005: one preprocessing for both.

    python bench/eval_default_model.py --data ../shared/data/fer2013
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import fervid
from fervid.classify import DEFAULT_MODEL
from fervid.train.study import evaluate_checkpoint, scan_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    args = ap.parse_args()
    trainer = evaluate_checkpoint(args.model, args.data, split="val", device="cpu")
    model = fervid.load_model(args.model, device="cpu")
    df = fervid.analyze_images(f"{args.data}/val", model=model, crops=True)
    inference = scan_metrics(df, model.classes)
    out = {
        "images": int(len(df)),
        "trainer": {k: round(trainer[k], 4) for k in ("acc", "balanced_acc", "macro_f1")},
        "inference_path": {k: round(inference[k], 4) for k in ("acc", "balanced_acc", "macro_f1")},
        "per_class_recall": dict(zip(model.classes, np.round(trainer["recall"], 4).tolist())),
        "confusion (rows true, cols predicted)": trainer["confusion"],
        "classes": list(model.classes),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
