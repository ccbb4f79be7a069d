"""One preprocessing for training and inference: resize, colour mode, normalisation."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxW or HxWxC uint8 image to ``size`` x ``size`` (area when shrinking)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(image, (size, size), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[:, :, None]
    return out


def to_channels(image: np.ndarray, channels: str) -> np.ndarray:
    """Convert an HxW / HxWx{1,3,4} uint8 image to HxWx1 ('grayscale') or HxWx3 ('rgb')."""
    if image.ndim == 2:
        image = image[:, :, None]
    c = image.shape[2]
    if c == 4:
        image = image[:, :, :3]
        c = 3
    if channels == "grayscale":
        if c == 3:
            # ITU-R 601 luma, the same weights PIL's convert("L") uses
            image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[:, :, None]
        return image
    if c == 1:
        return np.repeat(image, 3, axis=2)
    return image


def prepare_crop(image: np.ndarray, size: int, channels: str) -> np.ndarray:
    """An image (crop) as the model's uint8 input: CxSxS with C=1 (grayscale) or 3."""
    image = to_channels(image, channels)
    image = resize_square(image, size)
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def normalize(batch: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 (or [0,255] float) BxCxHxW -> normalised float BxC'xHxW with 3 channels."""
    x = batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s
