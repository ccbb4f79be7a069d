"""Finding image files in folders and decoding them as RGB arrays, whatever their mode."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".mov",
        ".mkv",
        ".avi",
        ".webm",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".ts",
        ".mts",
        ".3gp",
    }
)


class ImageError(ValueError):
    """An image file that cannot be decoded; the message is one line."""


def walk_files(root: str | os.PathLike, exts: Iterable[str]) -> Iterator[Path]:
    """Files under ``root`` whose extension (any case) is in ``exts``, sorted, recursively.

    Symbolic links are followed, but a folder already visited (a link loop) is not entered
    twice.
    """
    exts = {e.lower() for e in exts}
    root = Path(root)
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() in exts:
                p = Path(dirpath) / name
                if p.is_file():
                    yield p


def walk_images(root: str | os.PathLike) -> Iterator[Path]:
    """Image files under ``root`` (jpg, jpeg, png, bmp, webp, tif, tiff; any case)."""
    return walk_files(root, IMAGE_EXTS)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image as HxWx3 uint8 RGB, EXIF orientation applied.

    Grayscale, RGBA/LA (composited on white), palette, CMYK, 16-bit and float images are all
    converted. Raises :class:`ImageError` for anything unreadable.
    """
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return to_rgb_array(im)
    except ImageError:
        raise
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, UnidentifiedImageError):
            msg = "not an image or unsupported format"
        raise ImageError(f"cannot read image: {msg[:160]}") from None


def to_rgb_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        if mode == "F":
            lo, hi = float(a.min()), float(a.max()) if a.size else 1.0
            a = (a - lo) / max(hi - lo, 1e-9) * 255.0
        else:
            a = a / hi * 255.0
        g = np.clip(a, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([g] * 3, axis=-1))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()
