"""The face embedding: dlib's ResNet face descriptor (128 numbers per face; 99.38% on LFW
by its authors), its weights read from the ``face-recognition-models`` package (installed by
pip, nothing downloaded at run time). Faces are aligned by dlib's 5-point landmark model
inside the detector's box (the prebuilt ``dlib-bin`` wheel); the network runs in PyTorch
(:mod:`fervid._dlib_resnet`: dlib's descriptors, in batches, on the model's device)."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from .._dlib_resnet import DESCRIPTOR_FILE, INSTALL_HINT, DlibFaceNet, model_dir
from .quality import MIN_SHARPNESS, sharpness

#: The smallest face (long side of the detector's box, px) whose embedding is used: at 44 px
#: a face's descriptor is 0.2 from its full-size one, at 22 px 0.45 (docs/identity.md).
MIN_FACE = 40


class IdentityUnavailable(RuntimeError):
    """dlib or its model files are missing; the message says how to install them."""


def _model_dir() -> str:
    try:
        return model_dir()
    except FileNotFoundError:
        raise IdentityUnavailable(INSTALL_HINT) from None


@functools.lru_cache(maxsize=1)
def _dlib_models(folder: str):
    """dlib and its landmark model, read once per process (about half a second each time
    otherwise: a cost per video that the measurements showed)."""
    try:
        import dlib  # only when faces are embedded (re-identification)
    except ImportError:
        raise IdentityUnavailable(INSTALL_HINT) from None
    try:
        shape = dlib.shape_predictor(os.path.join(folder, "shape_predictor_5_face_landmarks.dat"))
    except RuntimeError as exc:
        raise IdentityUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return dlib, shape


@functools.lru_cache(maxsize=2)
def _descriptor_net(folder: str, device: torch.device):
    """The descriptor network on ``device``, read once per process and device."""
    try:
        net = DlibFaceNet.from_file(os.path.join(folder, DESCRIPTOR_FILE))
    except (RuntimeError, OSError, ValueError) as exc:
        raise IdentityUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return net.to(device, memory_format=torch.channels_last)


class FaceEmbedder:
    """128-number identity descriptors of faces (``embed(image, boxes)``), and whether a face
    is fit for one (``big_enough``, ``sharpness``)."""

    def __init__(
        self,
        min_face: int = MIN_FACE,
        min_sharpness: float = MIN_SHARPNESS,
        device: torch.device | str = "cpu",
    ) -> None:
        folder = _model_dir()
        self._dlib, self._shape = _dlib_models(folder)
        self.device = torch.device(device)
        self._net = _descriptor_net(folder, self.device)
        self.min_face, self.min_sharpness = min_face, min_sharpness

    def chips(self, image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        """The faces in ``boxes`` aligned as the network expects (150x150 RGB)."""
        dlib = self._dlib
        image = np.ascontiguousarray(image, dtype=np.uint8)
        shapes = dlib.full_object_detections()
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            rect = dlib.rectangle(int(x1), int(y1), int(math.ceil(x2)), int(math.ceil(y2)))
            shapes.append(self._shape(image, rect))
        if len(shapes) == 0:
            return []
        return dlib.get_face_chips(image, shapes, size=150, padding=0.25)

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors (N, 128) float32 of aligned chips."""
        if not chips:
            return np.zeros((0, 128), np.float32)
        x = torch.from_numpy(np.stack(chips)).to(self.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            vecs = self._net(x.contiguous(memory_format=torch.channels_last))
        return vecs.cpu().numpy()

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Descriptors (N, 128) of the faces in ``boxes`` (x1, y1, x2, y2) of an RGB image."""
        return self.embed_chips(self.chips(image, boxes))

    def sharpness(self, chip: np.ndarray) -> float:
        return sharpness(chip)

    def big_enough(self, box: Sequence[float]) -> bool:
        return max(box[2] - box[0], box[3] - box[1]) >= self.min_face
