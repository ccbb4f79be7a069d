"""Finding image files in folders and decoding them as RGB arrays, whatever their mode."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import first_line

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


def walk_entries(root: str | os.PathLike, exts: Iterable[str]) -> Iterator[tuple[Path, str]]:
    """Every name under ``root`` with one of ``exts`` (any case), whatever it is, as
    ``(path, "")``, and every folder that cannot be listed as ``(folder, reason)``: nothing
    is skipped without a word. Followed links never loop, and links to folders out of
    ``root`` are not followed (each said as ``(link, reason)``)."""
    exts = {e.lower() for e in exts}
    root = Path(root)
    real_root = os.path.realpath(root)
    seen: set[tuple[int, int]] = set()
    failed: list[tuple[Path, str]] = []

    def onerror(exc: OSError) -> None:
        failed.append((Path(exc.filename or root), f"cannot list folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        yield from _drain(failed)
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            dirnames[:] = []
            yield Path(dirpath), f"cannot read folder: {exc.strerror or exc}"
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            dirnames[:] = []
            continue
        seen.add(key)
        for d in [d for d in dirnames if not inside(Path(dirpath) / d, real_root)]:
            dirnames.remove(d)  # a link that leads out of the folder: said, not followed
            yield Path(dirpath) / d, f"a link to a folder outside {root}: not followed"
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if _has_ext(d, exts)]):
            if _has_ext(name, exts):
                yield Path(dirpath) / name, ""
    yield from _drain(failed)


def inside(path: str | os.PathLike, real_root: str) -> bool:
    """Whether ``path``, links followed, stays under the folder whose real path is
    ``real_root``."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _has_ext(name: str, exts: set[str]) -> bool:
    return os.path.splitext(name)[1].lower() in exts


def _drain(items: list) -> Iterator:
    while items:
        yield items.pop(0)


def check_regular(path: str | os.PathLike) -> None:
    """Raise :class:`ImageError` (one line) unless ``path`` is a regular file that can be
    read: a FIFO would block forever, a folder or device is not a picture."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            what = "symbolic link loop" if exc.errno == errno.ELOOP else "broken symbolic link"
            raise ImageError(f"cannot read file: {what}") from None
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise ImageError(f"not a regular file ({kind})")


#: Frames read from one multi-page or animated file at most (each read as an image of its
#: own); the rest are said in a row, not read.
MAX_FRAMES = 100
#: At most this many pixels are decoded from one file (its frames together, the first always):
#: a 4 MB TIFF of 60 blank 4000 x 4000 pages would otherwise take 4 GB.
MAX_FILE_PIXELS = 50_000_000


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image as HxWx3 uint8 RGB, EXIF orientation applied (a multi-page or
    animated file: its first frame; :func:`load_frames` reads them all).

    Grayscale, RGBA/LA (composited on white), palette, CMYK, 16-bit and float images are all
    converted. Raises :class:`ImageError` for anything unreadable.
    """
    return load_frames(path, max_frames=1)[0][0]


def load_frames(
    path: str | os.PathLike, *, max_frames: int = MAX_FRAMES, max_pixels: int = MAX_FILE_PIXELS
) -> tuple[list[np.ndarray], int]:
    """Every frame of an image file as :func:`load_image` decodes it (the pages of a TIFF,
    the frames of an animated GIF, WebP or PNG; a still image is one frame), at most
    ``max_frames`` of them and ``max_pixels`` pixels together (the first frame always), and
    how many frames the file holds."""
    check_regular(path)
    try:
        with _open_image(path) as (im, huge):
            total = max(1, int(getattr(im, "n_frames", 1) or 1))
            frames, pixels = [], 0
            for k in range(min(total, max_frames)):
                if k:
                    im.seek(k)
                pixels += im.width * im.height
                if k and pixels > max_pixels:
                    break
                im.load()
                frames.append(to_rgb_array(ImageOps.exif_transpose(im) or im))
        if huge:
            h, w = frames[0].shape[:2]
            log.warning("%s: a very large image (%d x %d), read anyway", path, w, h)
        return frames, total
    except ImageError:
        raise
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        SyntaxError,
        EOFError,
        Image.DecompressionBombError,
    ) as exc:
        msg = first_line(exc)
        if isinstance(exc, UnidentifiedImageError):
            msg = "not an image or unsupported format"
        raise ImageError(f"cannot read image: {msg[:160]}") from None


#: Pillow says "very large" through the warnings module, whose catching is not thread-safe:
#: images are opened (the header only: where the size is checked) one thread at a time.
_OPEN_LOCK = threading.Lock()


@contextlib.contextmanager
def _open_image(path):
    """``(image, huge)``: the opened image and whether Pillow found it very large."""
    with _OPEN_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        im = Image.open(path)
    huge = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    with im:
        yield im, huge


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
