"""Measure where MTCNN's boxes fall inside FER2013's crops, to set the crop policy.

FER2013 faces are 48x48 crops. We upscale each image (MTCNN needs about 40+ px faces),
place it on a larger grey canvas (so boxes reaching past the crop are not clipped), detect,
and express the box in crop units: the crop side
over the box's long side (the policy's ``scale``) and the crop centre's offset from the box
centre in box heights (``shift_y``). The medians become the bundled checkpoint's policy.

    python bench/crop_policy.py --data ../shared/data/fer2013 --split val --n 600
"""

from __future__ import annotations

import argparse
import json
import random

import numpy as np
from PIL import Image

from fervid.detect import FaceDetector
from fervid.train.data import open_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--split", default="val")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--upscale", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    spec = open_dataset(args.data)
    paths = list(spec.split(args.split).paths)
    random.Random(args.seed).shuffle(paths)
    paths = paths[: args.n]
    det = FaceDetector(device="cpu", min_face_size=20, detect_size=0)
    scale, shift, shift_x, aspect, found = [], [], [], [], 0
    for p in paths:
        with Image.open(p) as im:
            g = im.convert("RGB")
            side = g.width * args.upscale
            face = np.asarray(g.resize((side, side), Image.BICUBIC))
        # put the crop on a larger grey canvas so that boxes reaching past it are not clipped
        pad = side // 2
        img = np.full((side + 2 * pad, side + 2 * pad, 3), 128, np.uint8)
        img[pad : pad + side, pad : pad + side] = face
        faces = det.detect([img])[0]
        if len(faces) == 0:
            continue
        found += 1
        k = int(np.argmax((faces.boxes[:, 2] - faces.boxes[:, 0]) * faces.scores))
        x1, y1, x2, y2 = faces.boxes[k] - pad
        bw, bh = x2 - x1, y2 - y1
        scale.append(side / max(bw, bh))
        shift.append((side / 2 - (y1 + y2) / 2) / bh)
        shift_x.append((side / 2 - (x1 + x2) / 2) / bw)
        aspect.append(bh / bw)

    def q(v):
        a = np.asarray(v)
        return {
            "median": round(float(np.median(a)), 3),
            "p25": round(float(np.percentile(a, 25)), 3),
            "p75": round(float(np.percentile(a, 75)), 3),
        }

    out = {
        "images": len(paths),
        "faces_found": found,
        "upscale": args.upscale,
        "scale (crop side / box long side)": q(scale),
        "shift_y (crop centre below box centre, box heights)": q(shift),
        "shift_x (box widths)": q(shift_x),
        "box aspect (h / w)": q(aspect),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
