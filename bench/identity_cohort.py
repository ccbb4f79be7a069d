"""The cohort of faces that re-identification reads distances against
(``fervid/models/identity_cohort.npy``; :func:`fervid.identity.cohort_scale`).

    python bench/identity_cohort.py --data ../shared/data

4,000 faces drawn from the AffectNet subset's train split and 2,000 from RAF-DB's train split
(seed 0; many different people, of many origins, none of ``lfw-identities``, on which the
re-identification is measured), each found by fervid's detector (the crop set in a grey
border and enlarged 4x, so that the detector sees a whole face), aligned and described by
:class:`fervid.identity.embedder.FaceEmbedder`, once in colour and once in grey. Written shuffled as
float16 (N, 128), without names or paths: 128 numbers per face, from which the picture cannot
be read back. The images are for research only and are never copied; what is kept is of the
kind a model's weights are, as for the bundled emotion model trained on the same sets.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def faces(data: Path, affectnet: int, rafdb: int) -> list[Path]:
    rng = random.Random(0)
    aff = sorted((data / "affectnet-subset" / "train").glob("*/*.jpg"))
    raf = sorted((data / "rafdb" / "basic" / "Image" / "aligned").glob("train_*_aligned.jpg"))
    return rng.sample(aff, affectnet) + rng.sample(raf, rafdb)


def describe(paths: list[Path]) -> np.ndarray:
    """(2N', 128): each face found, in colour and in grey."""
    from identity_clips import largest_face

    from fervid.detect import FaceDetector
    from fervid.identity.embedder import FaceEmbedder

    det, emb = FaceDetector(device="cpu", min_face_size=40), FaceEmbedder()
    out = []
    for i, path in enumerate(paths):
        im = Image.open(path).convert("RGB")
        w, h = im.size
        canvas = Image.new("RGB", (2 * w, 2 * h), (128, 128, 128))
        canvas.paste(im, (w // 2, h // 2))
        canvas = canvas.resize((4 * w, 4 * h), Image.BICUBIC)
        colour = np.asarray(canvas)
        box = largest_face(det, colour)
        if box is None:
            continue
        grey = np.repeat(np.asarray(canvas.convert("L"))[..., None], 3, 2)
        out.extend(emb.embed_chips(emb.chips(colour, box[None]) + emb.chips(grey, box[None])))
        if i % 1000 == 0:
            print(f"{i} of {len(paths)}", flush=True)
    return np.asarray(out, np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--affectnet", type=int, default=4000)
    ap.add_argument("--rafdb", type=int, default=2000)
    ap.add_argument(
        "--out", type=Path, default=HERE.parent / "fervid" / "models" / "identity_cohort.npy"
    )
    args = ap.parse_args()
    vecs = describe(faces(args.data, args.affectnet, args.rafdb))
    vecs = vecs[np.random.default_rng(0).permutation(len(vecs))]
    np.save(args.out, vecs.astype(np.float16))
    print(f"{len(vecs) // 2} faces, {len(vecs)} descriptors -> {args.out}")


if __name__ == "__main__":
    main()
