"""Face detection: MTCNN (facenet-pytorch's networks and weights, run by :mod:`fervid._mtcnn`),
wrapped so that "no face" is an empty result."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ._mtcnn import ONet, PNet, RNet, detect_face, nms, refine_faces
from .faces import Faces
from .preprocess import square_crop

log = logging.getLogger(__name__)


class FaceDetector:
    """MTCNN on a batch of same-sized RGB frames, optionally at a reduced resolution.

    ``detect_size``: the long side (pixels) the detector sees; larger frames are downscaled
    for detection and the boxes mapped back to full resolution. ``None`` or 0 keeps the full
    resolution. ``min_face_size`` is in pixels of the original frame. ``pyramid_factor``:
    the size ratio of consecutive levels of MTCNN's image pyramid (smaller: fewer levels,
    faster; photos use 0.6, measured in docs/video.md).
    """

    def __init__(
        self,
        *,
        device: torch.device | str = "cpu",
        min_face_size: int = 20,
        detect_size: int | None = 960,
        threshold: float = 0.9,
        stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        pyramid_factor: float = 0.709,
    ) -> None:
        if min_face_size < 4:
            raise ValueError("min_face_size must be >= 4 pixels")
        if detect_size is not None and detect_size and detect_size < 64:
            raise ValueError("detect_size must be >= 64 pixels (or 0 for full resolution)")
        self.device = torch.device(device)
        self.min_face_size = int(min_face_size)
        self.detect_size = int(detect_size) if detect_size else 0
        self.threshold = float(threshold)
        # MTCNN's weights ship inside the facenet-pytorch wheel: nothing is downloaded.
        # channels_last: P-Net's max-pooling and convolutions run about 2.4x faster on CPU
        self.pnet, self.rnet, self.onet = (
            net().eval().to(self.device, memory_format=torch.channels_last)
            for net in (PNet, RNet, ONet)
        )
        self.stage_thresholds = list(stage_thresholds)
        self.pyramid_factor = float(pyramid_factor)
        self.region_size = 96
        self.region_scale = 2.0
        # frames per MTCNN call: on CPU pairs are fastest (bench/RESULTS.md)
        self.max_batch = 2 if self.device.type == "cpu" else 16

    def _scale_for(self, h: int, w: int) -> float:
        if not self.detect_size or max(h, w) <= self.detect_size:
            return 1.0
        return self.detect_size / max(h, w)

    @torch.inference_mode()
    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        """Detect faces in RGB uint8 frames (HxWx3). Frames of one size are batched
        (``max_batch`` per MTCNN call)."""
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
            # MTCNN's own min size is in detector pixels; below 12 its pyramid would upscale
            # the downscaled frame again, so at a reduced size faces under 12 px are not sought
            min_size = max(12 if s < 1 else 4, int(self.min_face_size * s))
            for k in range(0, len(idx), self.max_batch):
                boxes, probs = self._run(np.stack(batch[k : k + self.max_batch]), min_size)
                for j, i in enumerate(idx[k : k + self.max_batch]):
                    out[i] = self._to_faces(boxes[j], probs[j], 1.0 / s, (h, w))
        return [f if f is not None else Faces.empty() for f in out]

    @torch.inference_mode()
    def detect_near(
        self,
        frames: Sequence[np.ndarray],
        near: Sequence[np.ndarray],
        scales: Sequence[np.ndarray] | None = None,
    ) -> list[Faces]:
        """Re-detect faces close to expected boxes (tracking between full detections).

        For each frame, each box in ``near[i]`` (N, 4) defines a square region ``scales[i][k]``
        (default ``region_scale``) times its size, resized to ``region_size`` pixels; all
        regions of all frames go through MTCNN in one batch and the boxes are mapped back to
        the frame. Much cheaper than a full-frame pass; faces away from the boxes are not
        looked for.
        """
        rois, owners, origins = [], [], []
        r = self.region_size
        for i, (img, boxes) in enumerate(zip(frames, near)):
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            sc = (
                np.full(len(boxes), self.region_scale)
                if scales is None
                else np.asarray(scales[i], np.float64).reshape(-1)
            )
            for b, scale in zip(boxes, sc):
                side = scale * max(b[2] - b[0], b[3] - b[1], 8.0)
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
                s = int(round(side))
                rois.append(
                    cv2.resize(
                        square_crop(img, x0, y0, s, fill=127),
                        (r, r),
                        interpolation=cv2.INTER_AREA if s > r else cv2.INTER_LINEAR,
                    )
                )
                owners.append(i)
                origins.append((x0, y0, s / r, float(scale)))
        out_boxes = [[] for _ in frames]
        out_scores = [[] for _ in frames]
        if rois:
            boxes, probs = self._refine(np.stack(rois), [r / o[3] for o in origins])
            for k, (bx, pr) in enumerate(zip(boxes, probs)):
                if bx is None:
                    continue
                x0, y0, f, _ = origins[k]
                for bb, pp in zip(np.asarray(bx, np.float32), np.asarray(pr, np.float32)):
                    out_boxes[owners[k]].append(bb * f + np.array([x0, y0, x0, y0], np.float32))
                    out_scores[owners[k]].append(pp)
        result = []
        for i, img in enumerate(frames):
            if not out_boxes[i]:
                result.append(Faces.empty())
                continue
            b = np.stack(out_boxes[i])
            sc = np.asarray(out_scores[i], np.float32)
            keep = np.sort(nms(b, sc, 0.4))
            result.append(self._to_faces(b[keep], sc[keep], 1.0, img.shape[:2]))
        return result

    #: where a face may be in its region, relative to the expected place. First O-Net alone
    #: on the expected box at a few sizes (cheap; enough when the prediction was good);
    #: where that finds nothing, a grid of centre offsets (face sizes) at the expected size
    #: and other sizes at the centre, refined by R-Net, then O-Net
    NEAR_FIRST = (0.9, 1.0, 1.15)
    NEAR_OFFSETS = (-0.2, 0.0, 0.2)
    NEAR_SIZES = (0.8, 1.25)

    def _refine(self, regions: np.ndarray, face_sizes: list[float]) -> tuple[list, list]:
        """Find the face of size ``face_sizes[k]`` (region pixels) expected at each region's
        centre, without an image pyramid: per region, boxes and scores, or None."""
        first = [(0.0, 0.0, f) for f in self.NEAR_FIRST]
        boxes, probs = self._candidates(regions, face_sizes, range(len(regions)), first, True)
        retry = [k for k, b in enumerate(boxes) if b is None]
        if retry:
            grid = [(dx, dy, 1.0) for dy in self.NEAR_OFFSETS for dx in self.NEAR_OFFSETS]
            grid += [(0.0, 0.0, f) for f in self.NEAR_SIZES]
            b2, p2 = self._candidates(regions, face_sizes, retry, grid, False)
            for k, bb, pp in zip(retry, b2, p2):
                boxes[k], probs[k] = bb, pp
        return boxes, probs

    def _candidates(self, regions, face_sizes, which, grid, onet_only):

        r = regions.shape[1]
        cands, inds = [], []
        for j, k in enumerate(which):
            size = face_sizes[k]
            for dx, dy, f in grid:
                half = size * f / 2
                cx, cy = r / 2 + dx * size, r / 2 + dy * size
                cands.append([cx - half, cy - half, cx + half, cy + half])
                inds.append(j)
        sub = regions[list(which)]
        batch_boxes = refine_faces(
            sub, cands, inds, self.rnet, self.onet, self.stage_thresholds, self.device,
            skip_rnet=onet_only,
        )  # fmt: skip
        boxes, probs = [], []
        for b in batch_boxes:
            b = np.asarray(b, np.float32).reshape(-1, 5)
            b = b[b[:, 4] >= self.threshold] if onet_only else b
            boxes.append(b[:, :4] if len(b) else None)
            probs.append(b[:, 4] if len(b) else None)
        return boxes, probs

    def _run(self, batch: np.ndarray, min_size: int) -> tuple[list, list]:
        """MTCNN's cascade on a uint8 (N, H, W, 3) batch: per image, boxes (K, 4) and scores
        (K,), or None where nothing was found (facenet-pytorch's conventions)."""
        batch_boxes = detect_face(
            batch, min_size, self.pnet, self.rnet, self.onet, self.stage_thresholds,
            self.pyramid_factor, self.device,
        )  # fmt: skip
        boxes, probs = [], []
        for b in batch_boxes:
            b = np.asarray(b, np.float32).reshape(-1, 5)
            boxes.append(b[:, :4] if len(b) else None)
            probs.append(b[:, 4] if len(b) else None)
        return boxes, probs

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
        # MTCNN's min_face_size only sets where its image pyramid starts; smaller boxes can
        # still come out (mostly false positives): hold them to the user's minimum
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        ok = size >= self.min_face_size
        return Faces(boxes[ok], probs[ok]).sorted_left_to_right()
