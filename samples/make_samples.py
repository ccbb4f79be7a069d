"""Build fervid's sample files from public-domain photos that ship with Python packages.

- scikit-image's ``astronaut.png``: Eileen Collins, NASA photo, public domain.
- matplotlib's ``grace_hopper.jpg``: Rear Admiral Grace Hopper, US Navy photo, public domain.

Writes ``samples/two_people.mp4`` (1280x720, 25 fps, 6 s, H.264 + AAC stereo tone) and a few
photos in ``samples/photos/``. Run: ``python samples/make_samples.py``. The tests import the
same functions to build their fixtures.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def astronaut() -> np.ndarray:
    """RGB uint8 512x512."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper() -> np.ndarray:
    """RGB uint8 (600x512)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def astronaut_again() -> np.ndarray:
    """The astronaut as in another photo: mirrored, darker and warmer, turned 6 degrees,
    closer (for re-identification tests: the same person, another picture)."""
    import cv2

    img = astronaut()[:, ::-1].astype(np.float32)
    img = 255 * (img / 255) ** 1.4 * np.array([1.0, 0.9, 0.75], np.float32)
    turn = cv2.getRotationMatrix2D((256, 120), 6, 1.15)
    img = cv2.warpAffine(img, turn, (512, 512), borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(img.clip(0, 255).astype(np.uint8))


def portraits() -> list[np.ndarray]:
    return [astronaut(), grace_hopper()]


def _resize(img: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def background(width: int, height: int) -> np.ndarray:
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    r = 60 + 40 * x + 0 * y
    g = 70 + 30 * y + 0 * x
    b = 90 + 50 * (1 - x) * y
    return np.stack(np.broadcast_arrays(r, g, b), -1).astype(np.uint8)


def scene(
    t: float, width: int, height: int, faces: list[np.ndarray], motion: float = 1.0
) -> np.ndarray:
    """A frame at time ``t``: the portraits side by side, drifting and slowly zooming."""
    img = background(width, height).copy()
    n = len(faces)
    for k, face in enumerate(faces):
        h = int(height * (0.55 + 0.06 * math.sin(0.7 * t + k)))
        p = _resize(face, h)
        ph, pw = p.shape[:2]
        cx = width * (k + 0.5) / n + motion * width * 0.06 * math.sin(0.9 * t + 1.3 * k)
        cy = height * 0.5 + motion * height * 0.05 * math.cos(0.6 * t + k)
        x0, y0 = int(cx - pw / 2), int(cy - ph / 2)
        xs, ys = max(0, x0), max(0, y0)
        xe, ye = min(width, x0 + pw), min(height, y0 + ph)
        if xe > xs and ye > ys:
            img[ys:ye, xs:xe] = p[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return img


def write_video(
    path: str | os.PathLike,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    seconds: float = 6.0,
    audio: bool = True,
    faces: list[np.ndarray] | None = None,
    frame_times: list[float] | None = None,
    rotation: int = 0,
    codec: str = "libx264",
    motion: float = 1.0,
    gop: int | None = None,
) -> Path:
    """Encode a test video with PyAV. ``frame_times`` gives variable frame times (VFR);
    ``gop``: frames between key frames (a long one: one key frame, as some cameras write)."""
    import av

    faces = portraits() if faces is None else faces
    path = Path(path)
    times = frame_times if frame_times is not None else [i / fps for i in range(int(seconds * fps))]
    tb = Fraction(1, 12800)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.time_base = tb
        v.codec_context.time_base = tb
        if codec == "libx264":
            v.options = {"crf": "23", "preset": "veryfast"}
            if gop:
                v.options |= {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=44100)
            a.layout = "stereo"
        for t in times:
            frame = av.VideoFrame.from_ndarray(
                scene(t, width, height, faces, motion), format="rgb24"
            )
            frame.pts = int(round(t / tb))
            frame.time_base = tb
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            total = (times[-1] if times else 0) + 1 / fps
            sr, chunk = 44100, 1024
            n = int(total * sr)
            for s in range(0, n, chunk):
                tt = np.arange(s, min(n, s + chunk)) / sr
                tone = 0.2 * np.sin(2 * np.pi * (330 + 110 * np.floor(tt * 2) % 3) * tt)
                buf = np.stack([tone, tone]).astype(np.float32)
                af = av.AudioFrame.from_ndarray(buf, format="fltp", layout="stereo")
                af.sample_rate = sr
                af.pts = s
                af.time_base = Fraction(1, sr)
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)
    return path


#: the face box inside each portrait (MTCNN, full resolution): x1, y1, x2, y2; the third is
#: :func:`astronaut_again`
PORTRAIT_FACES = [
    (180.0, 61.5, 268.0, 177.8),
    (177.2, 111.8, 358.6, 343.6),
    (238.8, 51.3, 340.1, 178.3),
]


@dataclass
class Actor:
    """A portrait whose face box is centred at ``path(t) -> (cx, cy)`` with long side
    ``size(t)`` pixels; ``visible(t)`` says when it is in the picture."""

    portrait: int
    path: object
    size: object
    visible: object = None


def _place(img: np.ndarray, portrait: np.ndarray, face: tuple, cx: float, cy: float, px: float):
    """Paste ``portrait`` scaled so its face's long side is ``px``, face centred at (cx, cy);
    returns the face's true box."""
    import cv2

    fx1, fy1, fx2, fy2 = face
    k = px / max(fx2 - fx1, fy2 - fy1)
    ph, pw = portrait.shape[:2]
    p = cv2.resize(
        portrait, (max(1, round(pw * k)), max(1, round(ph * k))), interpolation=cv2.INTER_AREA
    )
    fcx, fcy = (fx1 + fx2) / 2 * k, (fy1 + fy2) / 2 * k
    x0, y0 = int(round(cx - fcx)), int(round(cy - fcy))
    h, w = img.shape[:2]
    xs, ys, xe, ye = max(0, x0), max(0, y0), min(w, x0 + p.shape[1]), min(h, y0 + p.shape[0])
    if xe > xs and ye > ys:
        img[ys:ye, xs:xe] = p[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return np.array([x0 + fx1 * k, y0 + fy1 * k, x0 + fx2 * k, y0 + fy2 * k], np.float32)


def textured(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A busy background: coloured noise at several scales, with stripes."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for s in (4, 16, 64):
        small = rng.uniform(0, 255, (height // s + 1, width // s + 1, 3)).astype(np.float32)
        img += cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR) / 3
    stripes = 40 * np.sin(np.arange(width) / 7.0)[None, :, None]
    return np.clip(img + stripes, 0, 255).astype(np.uint8)


def encode_clip(path: Path, pictures, *, width: int, height: int, fps: float, crf: int = 20):
    """Encode RGB pictures (an iterable, one every ``1 / fps`` s) as H.264, no audio."""
    import av

    tb = Fraction(1, 12800)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.time_base = v.codec_context.time_base = tb
        v.options = {"crf": str(crf), "preset": "veryfast"}
        for i, img in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(round(i / fps / tb)), tb
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)


def write_clip(path: Path, actors, *, width, height, fps, frames, texture=False) -> list:
    """Encode a clip of portraits placed by ``actors`` (H.264, no audio); returns, per
    frame, the true boxes of the visible faces as (actor index, box)."""
    faces = portraits()
    if any(a.portrait == 2 for a in actors):  # the astronaut in another photo
        faces.append(astronaut_again())
    bg = textured(width, height) if texture else background(width, height)
    truth = []

    def pictures():
        for i in range(frames):
            t = i / fps
            img = bg.copy()
            boxes = []
            for k, a in enumerate(actors):
                if a.visible is not None and not a.visible(t):
                    continue
                cx, cy = a.path(t)
                box = _place(img, faces[a.portrait], PORTRAIT_FACES[a.portrait], cx, cy, a.size(t))
                boxes.append((k, box))
            truth.append(boxes)
            yield img

    encode_clip(path, pictures(), width=width, height=height, fps=fps)
    return truth


def write_photos(folder: str | os.PathLike) -> list[Path]:
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a, g = astronaut(), grace_hopper()
    out = []
    Image.fromarray(a).save(folder / "astronaut.jpg", quality=90)
    Image.fromarray(g).save(folder / "grace_hopper.jpg", quality=90)
    pair = scene(0.0, 1200, 700, [a, g], motion=0)
    Image.fromarray(pair).save(folder / "two_people.jpg", quality=90)
    out += [folder / "astronaut.jpg", folder / "grace_hopper.jpg", folder / "two_people.jpg"]
    return out


def main() -> None:
    write_photos(HERE / "photos")
    write_video(HERE / "two_people.mp4")
    for p in sorted(HERE.rglob("*")):
        if p.is_file() and p.suffix in (".mp4", ".jpg"):
            print(f"{p.relative_to(HERE)}  {p.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
