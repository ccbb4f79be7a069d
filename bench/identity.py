"""Re-identification, measured: verification on pairs of real photos, and clips in which
people leave and return, hide behind each other and are cut away from.

    python bench/identity.py --data ../shared/data [--out bench/out/identity] [--only verify]

``verify``: every face of ``lfw-identities`` (200 people, 3-4 news photos each) is found by
fervid's detector and embedded by :class:`fervid.identity.FaceEmbedder`; all pairs of photos
of the same person and 40,000 pairs of different people give the true-accept rate at 1% and
0.1% false accepts. The people are split in two halves by name: the threshold and the
confidence curve are chosen on the first half and reported on the second, so the figures are
not chosen on what they report. Milliseconds per face (alignment and descriptor) are timed.

``clips``: synthetic videos made of real photos (a person leaves and returns as another photo
of the same person, two people cross and swap places while hidden, a cut to another shot and
back; 4-6 people, 30 s or more), from the second half of the people. Per clip: ids per
person, id switches, false merges (two people under one id), the share of each person's rows
under its majority id, frames per second without and with re-identification.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the fervid command sets it
sys.path.insert(0, str(HERE.parent / "samples"))


SHARPNESS: list[float] = []  # of every photo's face chip


def people_photos(root: Path) -> dict[str, list[Path]]:
    return {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}


def embed_all(people: dict[str, list[Path]]) -> tuple[dict, float, int]:
    """name -> list of descriptors (one per photo where a face was found); ms per face."""
    from fervid.detect import FaceDetector
    from fervid.identity import FaceEmbedder
    from fervid.images import load_image

    det = FaceDetector(device="cpu", min_face_size=40)
    emb = FaceEmbedder()
    out, spent, n, missed = {}, 0.0, 0, 0
    for name, paths in people.items():
        vecs = []
        for p in paths:
            img = load_image(p)
            faces = det.detect([img])[0]
            if len(faces) == 0:
                missed += 1
                continue
            area = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
            box = faces.boxes[int(area.argmax())][None]
            t = time.perf_counter()
            chips = emb.chips(img, box)
            v = emb.embed_chips(chips)
            spent += time.perf_counter() - t
            n += 1
            vecs.append(v[0])
            SHARPNESS.append(emb.sharpness(chips[0]))
        out[name] = vecs
    return out, 1000 * spent / max(n, 1), missed


def pairs(vecs: dict[str, list], rng: random.Random, impostors: int = 40_000):
    same = [
        float(np.linalg.norm(a - b)) for v in vecs.values() for a, b in itertools.combinations(v, 2)
    ]
    names = [n for n, v in vecs.items() if v]
    diff = []
    for _ in range(impostors):
        a, b = rng.sample(names, 2)
        diff.append(float(np.linalg.norm(rng.choice(vecs[a]) - rng.choice(vecs[b]))))
    return np.asarray(same), np.asarray(diff)


def at_far(same: np.ndarray, diff: np.ndarray, far: float) -> tuple[float, float]:
    """(threshold, true-accept rate) where ``far`` of different people's pairs are accepted."""
    thr = float(np.quantile(diff, far))
    return thr, float((same < thr).mean())


def fit_logistic(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """P(same | d) = 1 / (1 + exp((d - mid) / scale)), by maximum likelihood on a grid
    (the classes weighted equally)."""
    d = np.concatenate([same, diff])
    y = np.concatenate([np.ones(len(same)), np.zeros(len(diff))])
    w = np.where(y == 1, 0.5 / len(same), 0.5 / len(diff))
    best = (np.inf, 0.0, 0.0)
    for mid in np.arange(0.35, 0.75, 0.005):
        for scale in np.arange(0.01, 0.1, 0.0025):
            p = 1 / (1 + np.exp(np.clip((d - mid) / scale, -50, 50)))
            nll = -(w * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))).sum()
            if nll < best[0]:
                best = (nll, mid, scale)
    return round(best[1], 3), round(best[2], 4)


def verify(data: Path, out: Path) -> dict:
    from fervid.identity import THRESHOLD

    people = people_photos(data / "lfw-identities")
    names = sorted(people)
    halves = {"choose": names[::2], "report": names[1::2]}
    vecs, ms, missed = embed_all(people)
    res = {"ms_per_face": round(ms, 2), "photos_without_face": missed, "threshold": THRESHOLD}
    q = np.percentile(SHARPNESS, [1, 5, 50])
    res["chip_sharpness_p1_p5_p50"] = [round(float(v), 1) for v in q]
    for half, members in halves.items():
        same, diff = pairs({n: vecs[n] for n in members}, random.Random(0))
        r = {"same_pairs": len(same), "different_pairs": len(diff)}
        for far in (0.01, 0.001):
            thr, tar = at_far(same, diff, far)
            r[f"far_{far}"] = {"threshold": round(thr, 4), "tar": round(tar, 4)}
        r["at_threshold"] = {
            "tar": round(float((same < THRESHOLD).mean()), 4),
            "far": round(float((diff < THRESHOLD).mean()), 5),
        }
        if half == "choose":
            r["logistic_mid_scale"] = fit_logistic(same, diff)
        res[half] = r
    (out / "verify.json").write_text(json.dumps(res, indent=1))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "identity")
    ap.add_argument("--only", default="verify,clips")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )  # noqa: E501
    only = args.only.split(",")
    if "verify" in only:
        print(json.dumps(verify(args.data, args.out), indent=1))
    if "clips" in only:
        from identity_clips import run_clips

        for r in run_clips(args.data, args.out):
            print(json.dumps(r))


if __name__ == "__main__":
    main()
