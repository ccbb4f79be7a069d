"""One preprocessing for training and inference: square crops, resize, colour mode,
normalisation."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def channel_count(channels: str) -> int:
    """Channels a model input holds: 1 for "grayscale", 3 for "rgb"."""
    return 1 if channels == "grayscale" else 3


def square_crop(image: np.ndarray, x0: int, y0: int, side: int, fill: int | None = None):
    """The ``side`` x ``side`` square whose top-left corner is (x0, y0); where it reaches past
    the image, the image's edge is replicated, or ``fill`` (a grey level) is used."""
    h, w = image.shape[:2]
    sub = image[max(y0, 0) : min(y0 + side, h), max(x0, 0) : min(x0 + side, w)]
    pads = (max(0, -y0), max(0, y0 + side - h), max(0, -x0), max(0, x0 + side - w))
    if sub.size == 0:
        return np.full((side, side) + image.shape[2:], 127 if fill is None else fill, image.dtype)
    if not any(pads):
        return sub
    if fill is None:
        return cv2.copyMakeBorder(np.ascontiguousarray(sub), *pads, cv2.BORDER_REPLICATE)
    return cv2.copyMakeBorder(
        np.ascontiguousarray(sub), *pads, cv2.BORDER_CONSTANT, value=(fill,) * 3
    )


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
    """uint8 images (BxCxHxW, values 0-255) or float images already scaled to [0, 1] ->
    ``(x - mean) / std`` per channel, float, 3 channels (a grayscale channel is repeated)."""
    x = batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s
