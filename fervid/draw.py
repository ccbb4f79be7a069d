"""Annotators: ``annotate(scene, faces) -> scene`` draws boxes, persons and emotions;
``annotate_pose(scene, faces) -> scene`` where each face points (``--draw pose``)."""

from __future__ import annotations

import cv2
import numpy as np

from .emotions import color_for
from .faces import Faces


def annotate(scene: np.ndarray, faces: Faces, *, copy: bool = True) -> np.ndarray:
    """Draw each face's box in its emotion's colour with a label "P1 emotion 0.87" (the
    person; "#3", the track, where the person is not known). Labels are placed so that none
    covers another label or another face's box (:func:`place_labels`); one moved away from
    its box is tied to it by a line."""
    img = scene.copy() if copy else scene
    if len(faces) == 0:
        return img
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    font_scale = max(0.4, min(h, w) / 900)
    texts, colors = _labels(faces)
    sizes = [_text_size(t, font_scale, thick) for t in texts]
    boxes = [tuple(int(round(v)) for v in faces.boxes[k]) for k in range(len(faces))]
    for box, color in zip(boxes, colors):
        cv2.rectangle(img, box[:2], box[2:], color, thick, cv2.LINE_8)
    spots = place_labels(boxes, [(tw + 4, th + base + base // 2) for tw, th, base in sizes], w, h)
    for k, spot in enumerate(spots):
        if spot is None:
            continue
        color, th = colors[k], sizes[k][1]
        lx1, ly1, lx2, ly2 = spot
        cv2.rectangle(img, (lx1, ly1), (lx2, ly2), color, -1)
        if not _touches(spot, boxes[k]):
            cv2.line(img, (lx1, ly2 if ly2 <= boxes[k][1] else ly1), boxes[k][:2], color, 1)
        dark = sum(color) > 380
        cv2.putText(img, texts[k], (lx1 + 2, ly1 + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0) if dark else (255, 255, 255), thick, cv2.LINE_AA)  # fmt: skip
    return img


def _labels(faces: Faces) -> tuple[list[str], list[tuple[int, int, int]]]:
    texts, colors = [], []
    for k in range(len(faces)):
        emo = faces.emotions[k]
        parts = []
        if faces.persons[k] >= 0:
            parts.append(f"P{faces.persons[k]}")
        elif faces.track_ids[k] >= 0:
            parts.append(f"#{faces.track_ids[k]}")
        if emo:
            parts.append(f"{emo} {faces.confidences[k]:.2f}")
        texts.append(" ".join(parts))
        colors.append(color_for(emo) if emo else (255, 255, 255))
    return texts, colors


def _text_size(text: str, scale: float, thick: int) -> tuple[int, int, int]:
    if not text:
        return 0, 0, 0
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    return tw, th, base


Rect = tuple[int, int, int, int]


def place_labels(boxes: list[Rect], sizes: list[tuple[int, int]], w: int, h: int) -> list:
    """Where each face's label goes (x1, y1, x2, y2), or None for an empty label: above its
    box if that is free, else the free place nearest to it (below, beside, then further away
    in steps of a label's height and half its width), free meaning it covers no label placed
    before and no other face's box and lies in the frame; faces placed from the top of the
    frame down. Where no place is free (a wall of faces), above its box."""
    spots: list = [None] * len(boxes)
    placed: list[Rect] = []
    every = np.asarray(boxes, np.int64).reshape(-1, 4)
    for k in sorted(range(len(boxes)), key=lambda k: (boxes[k][1], boxes[k][0])):
        lw, lh = sizes[k]
        if lw <= 0:
            continue
        blocks = np.concatenate([np.delete(every, k, 0), np.array(placed, np.int64).reshape(-1, 4)])
        spot = None
        for tries in (_near(boxes[k], lw, lh), _farther(boxes[k], lw, lh)):  # most need near
            clipped = np.array([_clip(r, w, h) for r in tries], np.int64)
            free = np.flatnonzero(~_hits(clipped, blocks))
            if len(free):
                spot = tuple(int(v) for v in clipped[free[0]])
                break
        spots[k] = spot or _clip(_near(boxes[k], lw, lh)[0], w, h)
        placed.append(spots[k])
    return spots


def _hits(rects: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """For each rectangle, whether it overlaps any of ``blocks``."""
    a, b = rects[:, None, :], blocks[None, :, :]
    over = (a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2])
    return (over & (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3])).any(1)


def _near(box: Rect, lw: int, lh: int) -> list[Rect]:
    """Above (as fervid always drew it), below, right, left."""
    x1, y1, x2, y2 = box
    return [
        (x1, y1 - 4 - lh, x1 + lw, y1 - 4),
        (x1, y2 + 4, x1 + lw, y2 + 4 + lh),
        (x2 + 4, y1, x2 + 4 + lw, y1 + lh),
        (x1 - 4 - lw, y1, x1 - 4, y1 + lh),
    ]


def _farther(box: Rect, lw: int, lh: int) -> list[Rect]:
    """A grid above and below the box in steps of a label's height and half its width,
    nearest first."""
    x1, y1, _, y2 = box
    grid = []
    for n in range(1, 16):
        for m in range(-6, 7):
            x, cost = x1 + m * lw // 2, n + abs(m) / 2
            grid.append((cost, (x, y1 - 4 - (n + 1) * lh, x + lw, y1 - 4 - n * lh)))
            grid.append((cost, (x, y2 + 4 + n * lh, x + lw, y2 + 4 + (n + 1) * lh)))
    return [r for _, r in sorted(grid, key=lambda g: g[0])]


def _clip(r: Rect, w: int, h: int) -> Rect:
    x1, y1, x2, y2 = r
    dx = -x1 if x1 < 0 else min(0, w - 1 - x2)
    dy = -y1 if y1 < 0 else min(0, h - 1 - y2)
    return x1 + dx, y1 + dy, x2 + dx, y2 + dy


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _touches(label: Rect, box: Rect) -> bool:
    grown = (box[0] - 6, box[1] - 6, box[2] + 6, box[3] + 6)
    return _overlap(label, grown)


def annotate_pose(scene: np.ndarray, faces: Faces, *, copy: bool = True) -> np.ndarray:
    """Draw where each measured face points: a line from the box's centre, as long as the
    box is wide when the face turns fully aside or up or down (none where not measured)."""
    img = scene.copy() if copy else scene
    thick = max(1, round(min(img.shape[:2]) / 300))
    for box, m in zip(faces.boxes, faces.measures):
        yaw, pitch = float(m[0]), float(m[1])
        if not (np.isfinite(yaw) and np.isfinite(pitch)):
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        cx, cy, size = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
        dx = size * np.sin(np.radians(yaw)) * np.cos(np.radians(pitch))
        dy = -size * np.sin(np.radians(pitch))
        start, end = (round(cx), round(cy)), (round(cx + dx), round(cy + dy))
        cv2.arrowedLine(img, start, end, (255, 255, 255), thick + 2, cv2.LINE_AA, tipLength=0.2)
        cv2.arrowedLine(img, start, end, (20, 20, 20), thick, cv2.LINE_AA, tipLength=0.2)
    return img
