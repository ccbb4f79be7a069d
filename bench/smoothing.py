"""Choose the default smoothing by measurement: box stabilisation (One-Euro) and the
probability time constant, against box error on moving faces and flicker on still ones.

Detections are taken once per clip with smoothing off (``fervid.pipeline`` with
``box_cutoff=0``); each setting then re-filters the boxes, re-cuts and re-classifies the
crops, and re-smooths the probabilities, so every setting sees the same detections.

- box error: mean distance between the filtered box centre and the true one, in face sizes,
  on the bench clips with known boxes (``slow_two``, ``fast_small``, ``crossing``);
- flicker: top-class changes per second on ``samples/two_people.mp4``'s two faces.

    python bench/smoothing.py
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "samples"))

from video import clips, write_clip  # noqa: E402


def raw_tracks(path, model, min_face):
    """Per analysed frame: (time, image, ids, raw boxes) with box smoothing off."""
    from fervid.options import VideoOptions
    from fervid.pipeline import VideoPipeline
    from fervid.video import FrameReader

    pipe = VideoPipeline(path, model, VideoOptions(box_cutoff=0.0, min_face_size=min_face))
    out = []
    for f in FrameReader(path):
        faces = pipe.find_faces(f.image, f.time_s)
        out.append((f.index, f.time_s, f.image, faces))
    return out


def apply(frames, model, cutoff, beta, tau):
    from fervid.faces import Faces
    from fervid.track import OneEuro, ProbSmoother, to_cxcywh, to_xyxy

    filters: dict[int, OneEuro] = {}
    smoother = ProbSmoother(tau=tau)
    boxes_out, labels = [], []
    smoothed = []
    for _, t, image, faces in frames:
        b = faces.boxes.copy()
        for k, tid in enumerate(faces.track_ids):
            f = filters.setdefault(int(tid), OneEuro(cutoff, beta))
            b[k] = to_xyxy(f(to_cxcywh(b[k : k + 1])[0], t))[0]
        smoothed.append((image, Faces(b, faces.scores, track_ids=faces.track_ids)))
    classified = []
    for k in range(0, len(smoothed), 32):
        part = smoothed[k : k + 32]
        classified += model.classify([i for i, _ in part], [f for _, f in part])
    for (idx, t, _, _), faces in zip(frames, classified):
        faces = smoother.update(faces, t)
        boxes_out.append((idx, faces.track_ids.copy(), faces.boxes.copy()))
        labels.append((idx, faces.track_ids.copy(), faces.emotions))
    return boxes_out, labels


def box_error(boxes_out, truth) -> float:
    from fervid.track import iou_matrix

    errs = []
    for idx, _, boxes in boxes_out:
        gt = truth[idx]
        if not gt or not len(boxes):
            continue
        g = np.stack([b for _, b in gt])
        m = iou_matrix(g, boxes.astype(np.float32))
        for r in range(len(g)):
            if m[r].max() < 0.2:
                continue
            b = boxes[int(m[r].argmax())]
            size = max(g[r, 2] - g[r, 0], g[r, 3] - g[r, 1])
            c1 = np.array([(g[r, 0] + g[r, 2]) / 2, (g[r, 1] + g[r, 3]) / 2])
            c2 = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
            errs.append(float(np.linalg.norm(c1 - c2) / size))
    return float(np.mean(errs)) if errs else float("nan")


def flicker(labels, seconds: float) -> float:
    seq: dict[int, list[str]] = {}
    for _, ids, emos in labels:
        for tid, e in zip(ids, emos):
            seq.setdefault(int(tid), []).append(e)
    changes = [sum(a != b for a, b in zip(s, s[1:])) / seconds for s in seq.values()]
    return float(max(changes)) if changes else 0.0


def main() -> None:
    import fervid

    model = fervid.load_model(device="cpu")
    out = HERE / "out" / "video"
    out.mkdir(parents=True, exist_ok=True)
    moving = {}
    for name in ("slow_two", "fast_small", "crossing"):
        w, h, fps, n, actors, texture, mf = clips(True)[name]
        path = out / f"{name}.mp4"
        truth = write_clip(path, actors, width=w, height=h, fps=fps, frames=n, texture=texture)
        moving[name] = (raw_tracks(path, model, mf), truth)
    still = raw_tracks(HERE.parent / "samples" / "two_people.mp4", model, 32)
    seconds = len(still) / 25
    for cutoff, beta, tau in itertools.product(
        (0.0, 0.5, 1.0, 2.0), (0.5, 2.0), (0, 0.1, 0.2, 0.3, 0.5)
    ):
        if cutoff == 0 and beta != 0.5:
            continue
        row = {"cutoff": cutoff, "beta": beta, "tau": tau}
        for name, (frames, truth) in moving.items():
            boxes, _ = apply(frames, model, cutoff, beta, 0)
            row[f"err_{name}"] = round(box_error(boxes, truth), 4)
        _, labels = apply(still, model, cutoff, beta, tau)
        row["flicker_per_s"] = round(flicker(labels, seconds), 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
