"""Annotators: ``annotate(scene, faces) -> scene`` draws boxes, persons and emotions."""

from __future__ import annotations

import cv2
import numpy as np

from .emotions import color_for
from .faces import Faces


def annotate(scene: np.ndarray, faces: Faces, *, copy: bool = True) -> np.ndarray:
    """Draw each face's box in its emotion's colour with a label "P1 emotion 0.87" (the
    person; "#3", the track, where the person is not known)."""
    img = scene.copy() if copy else scene
    if len(faces) == 0:
        return img
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    font_scale = max(0.4, min(h, w) / 900)
    emotions = faces.emotions
    conf = faces.confidences
    for k in range(len(faces)):
        x1, y1, x2, y2 = (int(round(v)) for v in faces.boxes[k])
        emo = emotions[k]
        color = color_for(emo) if emo else (255, 255, 255)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thick, cv2.LINE_8)
        parts = []
        if faces.persons[k] >= 0:
            parts.append(f"P{faces.persons[k]}")
        elif faces.track_ids[k] >= 0:
            parts.append(f"#{faces.track_ids[k]}")
        if emo:
            parts.append(f"{emo} {conf[k]:.2f}")
        if not parts:
            continue
        text = " ".join(parts)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(h - 1, y2 + th + 4)
        cv2.rectangle(img, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), color, -1)
        dark = sum(color) > 380
        cv2.putText(
            img,
            text,
            (x1 + 2, ty - base // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0) if dark else (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )
    return img
