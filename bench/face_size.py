"""How small can a face be and still be read? Accuracy of a model against face size.

RAF-DB's test faces (aligned 100 px crops, in which MTCNN's box measures about 87 px: crop
side = 1.153 x the box's long side, ``bench/crop_policy.py``) are shrunk so that the face
measures S pixels, then classified as crops the way fervid reads a detected face of that
size (upscaled to the model's input). The smallest face worth detecting is where accuracy
falls clearly below its full-size value: that sets ``--min-face-size``'s default.

    python bench/face_size.py --data ../shared/data/rafdb/basic
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

import fervid
from fervid.classify import DEFAULT_MODEL
from fervid.emotions import EMOTIONS
from fervid.images import load_image
from fervid.train.data import read_rafdb
from fervid.train.engine import metrics_from_confusion

CROP_PER_BOX = 1.153  # RAF-DB aligned crop side / MTCNN box long side (median)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/rafdb/basic")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--sizes", default="12,16,20,24,28,32,40,48,64,87")
    args = ap.parse_args()
    model = fervid.load_model(args.model, device="cpu")
    test = read_rafdb(args.data).split("test")
    images = [load_image(p) for p in test.paths]
    labels = np.asarray([model.classes.index(EMOTIONS[y]) for y in test.labels])
    rows = []
    for s in [int(x) for x in args.sizes.split(",")]:
        side = max(2, round(CROP_PER_BOX * s))
        small = [cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in images]
        probs = np.concatenate(
            [
                model.predict(np.stack([model.prepare(im) for im in small[k : k + 256]]))
                for k in range(0, len(small), 256)
            ]
        )
        n = len(model.classes)
        cm = np.bincount(labels * n + probs.argmax(1), minlength=n * n).reshape(n, n)
        m = metrics_from_confusion(cm)
        rows.append(
            {
                "face_px": s,
                "crop_px": side,
                "acc": round(m["acc"], 4),
                "balanced_acc": round(m["balanced_acc"], 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
