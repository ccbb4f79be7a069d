"""Clips for re-identification made of real photos (``lfw-identities``), with each face's true
person known in every frame: people leave and come back as another photo of themselves,
cross and swap places while one hides the other, and the camera cuts to another shot and
back. Used by ``bench/identity.py``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

W, H, FPS = 1280, 720, 25


@dataclass
class Person:
    """One person of a clip: ``where(t) -> (cx, cy, face px) or None`` (not in the picture)
    and ``photo(t) -> index`` of the photo shown (another photo after each return)."""

    photos: list  # (RGB image, face box in it)
    where: object
    photo: object


def largest_face(det, img: np.ndarray) -> np.ndarray | None:
    """The box of the largest face ``det`` (a :class:`fervid.detect.FaceDetector`) finds in
    a photo (a news photo's subject), or None."""
    faces = det.detect([img])[0]
    if not len(faces):
        return None
    b = faces.boxes
    return b[int(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).argmax())]


def load_people(root: Path, names: list[str]) -> list[list]:
    """Each person's photos with the face box MTCNN finds in each (photos without one are
    left out)."""
    from fervid.detect import FaceDetector
    from fervid.images import load_image

    det = FaceDetector(device="cpu", min_face_size=40)
    out = []
    for name in names:
        photos = []
        for p in sorted((root / name).glob("*.jpg")):
            img = load_image(p)
            box = largest_face(det, img)
            if box is not None:
                photos.append((img, tuple(float(v) for v in box)))
        if len(photos) >= 2:
            out.append(photos)
    return out


def _paste(img, photo, face, cx, cy, px) -> np.ndarray:
    """Paste the photo (cut to its face and shoulders) with its face centred at (cx, cy),
    long side ``px``; the true box."""
    import cv2

    fx1, fy1, fx2, fy2 = face
    fw, fh = fx2 - fx1, fy2 - fy1
    # a head-and-shoulders cut of the photo, not the whole news picture
    x0, y0 = max(0, int(fx1 - 0.5 * fw)), max(0, int(fy1 - 0.5 * fh))
    x1, y1 = min(photo.shape[1], int(fx2 + 0.5 * fw)), min(photo.shape[0], int(fy2 + 0.8 * fh))
    cut = photo[y0:y1, x0:x1]
    k = px / max(fw, fh)
    p = cv2.resize(cut, (max(1, round(cut.shape[1] * k)), max(1, round(cut.shape[0] * k))))
    fcx, fcy = ((fx1 + fx2) / 2 - x0) * k, ((fy1 + fy2) / 2 - y0) * k
    ox, oy = int(round(cx - fcx)), int(round(cy - fcy))
    xs, ys = max(0, ox), max(0, oy)
    xe, ye = min(img.shape[1], ox + p.shape[1]), min(img.shape[0], oy + p.shape[0])
    if xe > xs and ye > ys:
        img[ys:ye, xs:xe] = p[ys - oy : ye - oy, xs - ox : xe - ox]
    bx0, by0 = ox + (fx1 - x0) * k, oy + (fy1 - y0) * k
    return np.array([bx0, by0, bx0 + fw * k, by0 + fh * k], np.float32)


def write(path: Path, people: list[Person], seconds: float, other_shot=None) -> list:
    """Encode the clip; per frame, (person index, true box) of the faces in the picture.
    ``other_shot(t)``: True where the picture is the other shot (another background)."""
    from make_samples import background, encode_clip, textured

    bg, other = background(W, H), textured(W, H)
    truth = []

    def pictures():
        for i in range(int(seconds * FPS)):
            t = i / FPS
            img = other.copy() if other_shot is not None and other_shot(t) else bg.copy()
            boxes = []
            for k, person in enumerate(people):
                w = person.where(t)
                if w is None:
                    continue
                photo, face = person.photos[person.photo(t) % len(person.photos)]
                boxes.append((k, _paste(img, photo, face, *w)))
            truth.append(boxes)
            yield img

    encode_clip(path, pictures(), width=W, height=H, fps=FPS, crf=23)
    return truth


def _span(t, a, b):
    return a <= t < b


def scenarios(photos: list[list]) -> dict:
    """name -> (people, seconds, other shot or None). Each scenario has its own people."""
    it = iter(photos)

    def take(n):
        return [next(it) for _ in range(n)]

    out = {}
    # leave and return: 4 people in a row; two leave and return later as another photo
    ps = take(4)
    xs = [200, 500, 800, 1100]

    def away(k, gaps):
        return lambda t: None if any(_span(t, a, b) for a, b in gaps) else (xs[k], 330, 130)

    gaps = {1: [(6, 12), (20, 26)], 3: [(10, 18)]}
    out["leave_return"] = (
        [
            Person(
                ps[k],
                away(k, gaps.get(k, [])),
                lambda t, k=k: sum(t >= b for _, b in gaps.get(k, [])),
            )
            for k in range(4)
        ],
        32.0,
        None,
    )
    # crossing: two people walk past each other (one hides the other), back and forth,
    # swapping places; two more stand still
    ps = take(4)

    def walker(k):
        def where(t):
            phase = math.sin(2 * math.pi * t / 12)
            x = 640 + (1 if k == 0 else -1) * 380 * phase
            return (x, 360 + (0 if k == 0 else 10), 140 if k == 0 else 120)

        return where

    out["crossing"] = (
        [
            Person(ps[0], walker(0), lambda t: 0),
            Person(ps[1], walker(1), lambda t: 0),
            Person(ps[2], lambda t: (130, 600, 100), lambda t: 0),
            Person(ps[3], lambda t: (1150, 120, 100), lambda t: 0),
        ],
        30.0,
        None,
    )
    # cuts: shot A (3 people) and shot B (2 others) alternate every 6 s; on each return to a
    # shot its people stand elsewhere and are shown in another photo
    ps = take(5)

    def shot(k, in_a):
        def where(t):
            a = int(t // 6) % 2 == 0
            if a != in_a:
                return None
            n = int(t // 12)
            slot = (k + n) % 3
            return (250 + 390 * slot, 360 + 40 * (n % 2), 150)

        return where

    out["cuts"] = (
        [Person(ps[k], shot(k, k < 3), lambda t: int(t // 12)) for k in range(5)],
        36.0,
        lambda t: int(t // 6) % 2 == 1,
    )
    return out


def _visible(boxes: list) -> list:
    """The true faces that are mostly in view: a person pasted later covers the ones before
    (a face more than half hidden is not expected to be found)."""
    out = []
    for i, (k, b) in enumerate(boxes):
        area = max((b[2] - b[0]) * (b[3] - b[1]), 1.0)
        covered = 0.0
        for _, c in boxes[i + 1 :]:
            w = max(0.0, min(b[2], c[2]) - max(b[0], c[0]))
            h = max(0.0, min(b[3], c[3]) - max(b[1], c[1]))
            covered = max(covered, w * h / area)
        if covered < 0.5:
            out.append((k, b))
    return out


def matched_ids(df, truth: list, column: str, frames: set[int] | None = None) -> dict:
    """Per true face: the ids (``column`` of ``df``: ``face`` or ``person``) of the rows
    matched to it, frame by frame (of ``frames``, or every frame). Faces are matched one to
    one (best IoU first, at least 0.3); faces more than half hidden by another are not
    counted (the detector cannot see them)."""
    from fervid.track import iou_matrix

    rows = df.dropna(subset=["face"])
    by_frame = {int(f): g for f, g in rows.groupby("frame")}
    got: dict[int, list[int]] = {}
    for i, boxes in enumerate(truth):
        boxes = _visible(boxes)
        if not boxes or i not in by_frame or (frames is not None and i not in frames):
            continue
        g = by_frame[i]
        m = iou_matrix(
            np.stack([b for _, b in boxes]), g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        )
        while m.size and m.max() >= 0.3:
            r, j = np.unravel_index(int(m.argmax()), m.shape)
            got.setdefault(boxes[r][0], []).append(int(g[column].iloc[j]))
            m[r, :], m[:, j] = 0, 0
    return got


def identities(df, truth: list) -> dict:
    """Per true person: the share of its rows under its majority person id, the ids it got,
    id switches; and false merges (ids given to more than one true person for at least 5
    frames), on faces matched by :func:`matched_ids`."""
    got = matched_ids(df, truth, "person")
    owners: dict[int, set[int]] = {}
    per = {}
    for k, seq in sorted(got.items()):
        ids, counts = np.unique(seq, return_counts=True)
        per[str(k)] = {
            "majority_share": round(float(counts.max() / len(seq)), 4),
            "ids": len(ids),
            "switches": sum(1 for a, b in zip(seq, seq[1:]) if a != b),
        }
        for i, c in zip(ids, counts):
            if c >= 5:  # an id held for at least 5 frames
                owners.setdefault(int(i), set()).add(k)
    merges = sum(1 for v in owners.values() if len(v) > 1)
    return {"people": per, "false_merges": merges}


def run_clips(
    data: Path, out: Path, only: set[str] | None = None, draw: int = 0, without: bool = True
) -> list[dict]:
    """Each clip made, analysed with re-identification (and without it, unless ``without``
    is False) and scored. ``draw`` 0 takes the first people of the report half of the
    people; another number a random draw of them (the same for the same number)."""
    import random

    import fervid

    root = data / "lfw-identities"
    names = sorted(p.name for p in root.iterdir() if p.is_dir())[1::2]  # the report half
    if draw:
        random.Random(draw).shuffle(names)
    photos = load_people(root, names[:40])
    out.mkdir(parents=True, exist_ok=True)
    model = fervid.load_model(device="cpu")
    results = []
    for name, (people, seconds, other_shot) in scenarios(photos).items():
        if only and name not in only:
            continue
        path = out / f"{name}.mp4"
        truth = write(path, people, seconds, other_shot)
        res = {"clip": name, "people": len(people), "seconds": seconds}
        res["draw"] = draw
        for label, reid in (("without", False), ("with", True))[0 if without else 1 :]:
            t = time.perf_counter()
            df = fervid.analyze_video(path, model=model, reid=reid)
            res[f"fps_{label}"] = round(df.attrs["fervid"].frames / (time.perf_counter() - t), 2)
            res[f"{label}_reid"] = identities(df, truth)
        results.append(res)
    return results
