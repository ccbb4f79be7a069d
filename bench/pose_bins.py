"""How a classifier reads faces by head pose and by mouth (issue #39): every labelled face of
a split gets its yaw, pitch and mouth opening (MTCNN's box on the face, the image scaled to
200 px on its short side, then dlib's 68 points: :mod:`fervid.face_pose`; the whole image
where MTCNN finds no face) and the model's reading of it as a crop (as ``fervid scan
--crops`` reads it); per bin of pitch, of |yaw| and of mouth opening: the faces, accuracy,
and of the *neutral* faces the share read as sadness, anger, surprise or disgust (what a
researcher sees as an emotion that is not there). Pitch is > 0 when the face looks up.

The splits for choosing a model are validation ones (FER2013 val with the FER+ majority, the
AffectNet subset's val); ``--report`` reads the test splits (RAF-DB test, the AffectNet
subset's test) instead, for reporting only.

    python bench/pose_bins.py --data ../shared/data [--model PATH] [--report] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import fervid
from fervid.classify import DEFAULT_MODEL
from fervid.detect import FaceDetector
from fervid.emotions import EMOTIONS
from fervid.face_pose import Landmarker, measure
from fervid.train.data import read_rafdb
from fervid.train.sources import read_soft_labels

#: bins: (name, column, low, high); a value falls in [low, high)
BINS = (
    ("pitch < -15 (down)", "pitch", -np.inf, -15),
    ("pitch -15..-5", "pitch", -15, -5),
    ("pitch -5..5", "pitch", -5, 5),
    ("pitch 5..15", "pitch", 5, 15),
    ("pitch >= 15 (up)", "pitch", 15, np.inf),
    ("|yaw| < 15", "abs_yaw", 0, 15),
    ("|yaw| 15..30", "abs_yaw", 15, 30),
    ("|yaw| >= 30", "abs_yaw", 30, np.inf),
    ("mouth < 0.15 (shut)", "mouth_open", -np.inf, 0.15),
    ("mouth 0.15..0.5", "mouth_open", 0.15, 0.5),
    ("mouth >= 0.5 (open)", "mouth_open", 0.5, np.inf),
)
#: what a neutral face must not be read as
FALSE_READS = ("sadness", "anger", "surprise", "disgust")


def splits(data: Path, report: bool) -> dict[str, list[tuple[Path, int]]]:
    """name -> [(image, label index in EMOTIONS)]."""
    out = {}
    aff = data / "affectnet-subset" / ("test" if report else "val")
    if aff.exists():
        out[f"affectnet-subset {aff.name}"] = [
            (p, EMOTIONS.index(p.parent.name))
            for p in sorted(aff.glob("*/*"))
            if p.parent.name in EMOTIONS
        ]
    if report and (data / "rafdb" / "basic").exists():
        test = read_rafdb(data / "rafdb" / "basic").split("test")
        out["rafdb test"] = list(zip(map(Path, test.paths), test.labels))
    fer = data / "fer2013"
    if not report and fer.exists():
        soft = read_soft_labels(fer / "ferplus.csv", list(EMOTIONS), 0.5)
        items = []
        for p in sorted((fer / "val").rglob("*.jpg")):
            t = soft.targets.get(os.path.realpath(p))
            if t is not None:
                items.append((p, int(np.argmax(t))))
        out["fer2013 val (FER+ majority)"] = items
    return out


def pose_of(image: np.ndarray, detector: FaceDetector, landmarker: Landmarker) -> np.ndarray:
    """yaw, pitch, roll, eyes_open, mouth_open of the largest face (NaN-free), and whether
    MTCNN found it (1) or the whole image stood for it (0)."""
    k = 200 / min(image.shape[:2])
    big = cv2.resize(
        image, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    )
    boxes = detector.detect([big])[0].boxes
    found = len(boxes) > 0
    if found:
        box = boxes[int(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).argmax())]
    else:
        box = np.array([0, 0, big.shape[1], big.shape[0]], np.float32)
    points = landmarker.landmarks(big, box[None])
    return np.append(measure(points, big.shape[:2])[0], float(found))


def read(model, items, detector, landmarker) -> dict[str, np.ndarray]:
    images = [np.asarray(Image.open(p).convert("RGB")) for p, _ in items]
    probs = np.concatenate(
        [
            model.predict(np.stack([model.prepare(img) for img in images[i : i + 256]]))
            for i in range(0, len(images), 256)
        ]
    )
    m = np.stack([pose_of(img, detector, landmarker) for img in images])
    pred = np.array([EMOTIONS.index(model.classes[j]) for j in probs.argmax(1)])
    return {
        "label": np.array([y for _, y in items]),
        "pred": pred,
        "pitch": m[:, 1],
        "abs_yaw": np.abs(m[:, 0]),
        "mouth_open": m[:, 4],
        "found": m[:, 5],
    }


def table(r: dict[str, np.ndarray]) -> list[dict]:
    neutral = EMOTIONS.index("neutral")
    false = [EMOTIONS.index(c) for c in FALSE_READS]
    rows = []
    for name, col, lo, hi in BINS:
        inside = (r[col] >= lo) & (r[col] < hi)
        n = int(inside.sum())
        neu = inside & (r["label"] == neutral)
        row = {"bin": name, "faces": n, "acc": None, "neutral": int(neu.sum())}
        if n:
            row["acc"] = round(float((r["pred"][inside] == r["label"][inside]).mean()), 3)
        if neu.any():
            p = r["pred"][neu]
            row["neutral read as"] = {
                c: round(float((p == EMOTIONS.index(c)).mean()), 3) for c in FALSE_READS
            }
            row["neutral misread"] = round(float(np.isin(p, false).mean()), 3)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--report", action="store_true", help="the test splits (reporting only)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, model {args.model}")
    model = fervid.load_model(args.model, device="cpu")
    detector, landmarker = FaceDetector(min_face_size=40), Landmarker()
    out = {}
    for name, items in splits(args.data, args.report).items():
        t0 = time.perf_counter()
        r = read(model, items, detector, landmarker)
        acc = float((r["pred"] == r["label"]).mean())
        print(f"\n{name}: {len(items)} faces, acc {acc:.3f}, MTCNN found {r['found'].mean():.0%} "
              f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
        rows = table(r)
        print("| bin | faces | acc | neutral faces | neutral read as sadness / anger / surprise "
              "/ disgust | any of the four |\n|---|---|---|---|---|---|")  # fmt: skip
        for row in rows:
            reads = row.get("neutral read as")
            four = " / ".join(f"{v:.2f}" for v in reads.values()) if reads else "-"
            print(f"| {row['bin']} | {row['faces']} | {row['acc']} | {row['neutral']} | "
                  f"{four} | {row.get('neutral misread', '-')} |")  # fmt: skip
        out[name] = {"faces": len(items), "acc": round(acc, 4), "bins": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
