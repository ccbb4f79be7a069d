"""Face detection: facenet-pytorch's MTCNN, wrapped so that "no face" is an empty result."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .faces import Faces

log = logging.getLogger(__name__)


class FaceDetector:
    """MTCNN on a batch of same-sized RGB frames, optionally at a reduced resolution.

    ``detect_size``: the long side (pixels) the detector sees; larger frames are downscaled
    for detection and the boxes mapped back to full resolution. ``None`` or 0 keeps the full
    resolution. ``min_face_size`` is in pixels of the original frame.
    """

    def __init__(
        self,
        *,
        device: torch.device | str = "cpu",
        min_face_size: int = 20,
        detect_size: int | None = 960,
        threshold: float = 0.9,
        stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
    ) -> None:
        from facenet_pytorch import MTCNN

        if min_face_size < 4:
            raise ValueError("min_face_size must be >= 4 pixels")
        if detect_size is not None and detect_size and detect_size < 64:
            raise ValueError("detect_size must be >= 64 pixels (or 0 for full resolution)")
        self.device = torch.device(device)
        self.min_face_size = int(min_face_size)
        self.detect_size = int(detect_size) if detect_size else 0
        self.threshold = float(threshold)
        # MTCNN's weights ship inside the facenet-pytorch wheel: nothing is downloaded.
        self._mtcnn = MTCNN(
            keep_all=True,
            device=self.device,
            min_face_size=self.min_face_size,
            thresholds=list(stage_thresholds),
            post_process=False,
            select_largest=False,
        )
        self._mtcnn.eval()

    def _scale_for(self, h: int, w: int) -> float:
        if not self.detect_size or max(h, w) <= self.detect_size:
            return 1.0
        return self.detect_size / max(h, w)

    @torch.inference_mode()
    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        """Detect faces in RGB uint8 frames (HxWx3). Frames of one size go in one batch."""
        out: list[Faces | None] = [None] * len(frames)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(frames):
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"frames must be HxWx3 uint8 RGB, got {f.shape} {f.dtype}")
            groups.setdefault(f.shape[:2], []).append(i)
        for (h, w), idx in groups.items():
            s = self._scale_for(h, w)
            batch = [
                frames[i]
                if s == 1.0
                else cv2.resize(
                    frames[i],
                    (max(1, round(w * s)), max(1, round(h * s))),
                    interpolation=cv2.INTER_AREA,
                )
                for i in idx
            ]
            # MTCNN's own min size is in detector pixels
            self._mtcnn.min_face_size = max(4, int(self.min_face_size * s))
            arr = np.stack(batch)
            boxes, probs = self._mtcnn.detect(arr)
            for j, i in enumerate(idx):
                out[i] = self._to_faces(boxes[j], probs[j], 1.0 / s, (h, w))
        return [f if f is not None else Faces.empty() for f in out]

    def _to_faces(self, boxes, probs, inv_scale: float, hw: tuple[int, int]) -> Faces:
        if boxes is None or probs is None or len(boxes) == 0:
            return Faces.empty()
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * inv_scale
        probs = np.asarray(probs, np.float32).reshape(-1)
        keep = probs >= self.threshold
        h, w = hw
        boxes = boxes[keep]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        probs = probs[keep]
        size = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        ok = size >= 2
        return Faces(boxes[ok], probs[ok]).sorted_left_to_right()
