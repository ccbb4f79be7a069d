"""Whether a face picture is fit to be used: its sharpness (numpy and OpenCV only, so that the
people's pictures can be chosen without PyTorch)."""

from __future__ import annotations

import cv2
import numpy as np

#: Sharpness floor (variance of the Laplacian of the 150 px face chip): 99% of the news photos'
#: faces are above 9; a Gaussian blur of 3 px brings a sharp face to 3 (docs/identity.md).
MIN_SHARPNESS = 5.0


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian over the middle of a face picture (RGB): low when blurred.
    On a 150 px aligned chip, the threshold :data:`MIN_SHARPNESS` applies."""
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    return float(cv2.Laplacian(gray, cv2.CV_32F)[h // 5 : 4 * h // 5, w // 5 : 4 * w // 5].var())
