"""Shot cuts found, measured (issue #40): fervid's detector (:class:`fervid.shots.ShotCuts`:
an abrupt change of the grey thumbnail's pattern between steady frames, decided two frames
later) and its two predecessors against PySceneDetect's content and adaptive detectors
(``pip install scenedetect``; skipped without it), on clips with known cuts built from the
shared real recordings:

- cuts between shots of different recordings and between two shots of one recording (the same
  room, the person moved: 6 s apart), each in normal light, dark (x0.3), low contrast (x0.4
  around the mean) and strongly compressed (CRF 38);
- and no cut: a flash (two frames x2.5 brighter), a fade to black and back (1 s each way), a
  fast pan (the picture sliding a third of its width in 0.3 s), a dark shape crossing close to
  the camera (half the frame, 0.4 s).

Recall: the true cuts found within one frame; false cuts: those found elsewhere, per minute
(the title card's cut inside ``title_then_man`` is a true one). Last, the unedited recordings
whole: every cut found there is listed (there is one, the title card's).
fervid's thresholds were chosen on half of the recordings (``--half choose``); the figures
are read on the other half (``--half report``, the default).

    python bench/cuts.py --data ../shared/data [--half report]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "samples"))

from fervid.keyframes import pattern, thumbnail  # noqa: E402
from fervid.shots import ShotCuts, mark_cuts  # noqa: E402
from fervid.video import FrameReader  # noqa: E402

from make_samples import encode_clip  # noqa: E402

W, H, FPS = 640, 360, 25


def shots(folder: Path) -> dict[str, list[np.ndarray]]:
    """Each recording's frames at 640x360 (cropped to fill), at most 12 s."""
    out = {}
    for p in sorted(folder.iterdir()):
        frames = []
        for f in FrameReader(p):
            if f.time_s >= 12:
                break
            img = f.image
            h, w = img.shape[:2]
            k = max(W / w, H / h)
            img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
            y, x = (img.shape[0] - H) // 2, (img.shape[1] - W) // 2
            frames.append(np.ascontiguousarray(img[y : y + H, x : x + W]))
        if len(frames) >= 4 * FPS:
            out[p.name] = frames
    return out


def looks(img: np.ndarray, light: str) -> np.ndarray:
    x = img.astype(np.float32)
    if light == "dark":
        x = x * 0.3
    elif light == "low contrast":
        x = x.mean() + 0.4 * (x - x.mean())
    return np.clip(x, 0, 255).astype(np.uint8)


def cut_clip(recs: dict, light: str) -> tuple[list[np.ndarray], list[int]]:
    """2 s shots: of different recordings, then of one recording 6 s apart, alternately."""
    names = list(recs)
    frames, cuts = [], []
    for k in range(len(names)):
        a, b = recs[names[k]], recs[names[(k + 1) % len(names)]]
        for shot in (a[: 2 * FPS], b[: 2 * FPS], b[len(b) - 2 * FPS :]):
            if frames:
                cuts.append(len(frames))
            frames += [looks(f, light) for f in shot]
    return frames, cuts


#: the events of each recording in the no-cut clip: name -> (first, last) frame in it
EVENTS = {
    "flash": (FPS - 1, FPS + 3),
    "fade": (2 * FPS - 1, 4 * FPS),
    "pan": (4 * FPS - 1, 4 * FPS + int(0.3 * FPS) + 2),
    "crossing": (6 * FPS - 1, 6 * FPS + int(0.4 * FPS) + 2),
}


#: cuts inside the recordings themselves (frame indices)
INNER_CUTS = {"title_then_man.mov": [96]}


def events_clip(recs: dict) -> tuple[list[np.ndarray], list[int], list[int]]:
    """One 8 s shot per recording with a flash, a fade, a pan and a close crossing; the
    frames, the cuts between the recordings and the recordings' own (neither is false), and
    where each recording starts."""
    frames, starts, inner = [], [], []
    for name, shot in recs.items():
        starts.append(len(frames))
        inner += [len(frames) + i for i in INNER_CUTS.get(name, []) if i < 8 * FPS]
        for i, f in enumerate(shot[: 8 * FPS]):
            x = f.astype(np.float32)
            if i in (FPS, FPS + 1):  # a flash
                x = x * 2.5
            j = i - 2 * FPS  # a fade out and in, 1 s each
            if 0 <= j < 2 * FPS:
                x = x * abs(j - FPS) / FPS
            j = i - 4 * FPS  # a pan: slide a third of the width in 0.3 s, and stay
            if j >= 0:
                dx = int(W / 3 * min(j / (0.3 * FPS), 1.0))
                x = np.roll(x, -dx, axis=1)
            j = i - 6 * FPS  # a dark shape crossing close to the camera
            if 0 <= j < int(0.4 * FPS):
                cx = int(-W / 2 + j / (0.4 * FPS) * 2 * W)
                x[:, max(0, cx - W // 4) : max(0, cx + W // 4)] *= 0.1
            frames.append(np.clip(x, 0, 255).astype(np.uint8))
    return frames, sorted(starts[1:] + inner), starts


def false_by_event(found: list[int], cuts: list[int], starts: list[int]) -> dict[str, int]:
    """The false cuts in the no-cut clip, by the event they fall in."""
    out: dict[str, int] = {}
    for f in found:
        if any(abs(f - c) <= 1 for c in cuts):
            continue
        i = f - max([0, *(s for s in starts if s <= f)])
        what = next((e for e, (a, b) in EVENTS.items() if a <= i <= b), "other")
        out[what] = out.get(what, 0) + 1
    return out


def ours(path: Path) -> list[int]:
    return [f.index for f in mark_cuts(FrameReader(path), ShotCuts()) if f.cut]


def one_frame(path: Path) -> list[int]:
    """fervid's rule of December 7 (afternoon): the pattern's correlation with the previous
    frame under 0.5, or a change over 0.15 with it under 0.7; flat frames cut nothing."""
    out, prev = [], None
    for i, f in enumerate(FrameReader(path)):
        thumb = thumbnail(f.image)
        if prev is not None:
            a, b = pattern(thumb), pattern(prev)
            change = np.abs(thumb.astype(np.int16) - prev.astype(np.int16)).mean() / 255
            if a is not None and b is not None:
                corr = float(np.dot(a, b))
                if corr < 0.5 or (change > 0.15 and corr < 0.7):
                    out.append(i)
        prev = thumb
    return out


def before(path: Path) -> list[int]:
    """fervid's rule until December 7 (morning): the mean absolute difference of the
    thumbnails over 0.15 of the range."""
    out, prev = [], None
    for i, f in enumerate(FrameReader(path)):
        thumb = thumbnail(f.image).astype(np.int16)
        if prev is not None and np.abs(thumb - prev).mean() / 255 > 0.15:
            out.append(i)
        prev = thumb
    return out


def theirs(path: Path, detector) -> list[int]:
    from scenedetect import detect

    return [s[0].get_frames() for s in detect(str(path), detector)[1:]]


def score(found: list[int], cuts: list[int], minutes: float) -> str:
    hit = sum(any(abs(f - c) <= 1 for f in found) for c in cuts)
    false = sum(not any(abs(f - c) <= 1 for c in cuts) for f in found)
    recall = f"recall {hit}/{len(cuts)}" if cuts else "no cuts"
    return f"{recall}, false cuts {false / minutes:.1f}/min"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--half", choices=["all", "choose", "report"], default="report",
                    help="the recordings: those the thresholds were chosen on (every other by "
                    "name, from the first), the others (reported on), or all")  # fmt: skip
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, recordings: {args.half}")
    recs = shots(args.data / "real-clips")
    names = sorted(recs)
    keep = {"all": names, "choose": names[0::2], "report": names[1::2]}[args.half]
    recs = {n: recs[n] for n in keep}
    detectors = {"fervid before": before, "fervid one frame": one_frame, "fervid": ours}
    try:
        from scenedetect import AdaptiveDetector, ContentDetector

        detectors["scenedetect content"] = lambda p: theirs(p, ContentDetector())
        detectors["scenedetect adaptive"] = lambda p: theirs(p, AdaptiveDetector())
    except ImportError:
        print("scenedetect is not installed: fervid's detector alone")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.mp4"
        cases = [(light, 23) for light in ("normal", "dark", "low contrast")] + [("normal", 38)]
        for light, crf in cases:
            frames, cuts = cut_clip(recs, light)
            encode_clip(path, frames, width=W, height=H, fps=FPS, crf=crf)
            for name, find in detectors.items():
                t0 = time.perf_counter()
                found = find(path)
                ms = 1000 * (time.perf_counter() - t0) / len(frames)
                print(f"cuts, {light}, CRF {crf}, {name}: "
                      f"{score(found, cuts, len(frames) / FPS / 60)} ({ms:.2f} ms a frame "
                      "with decoding)")  # fmt: skip
        frames, cuts, starts = events_clip(recs)
        encode_clip(path, frames, width=W, height=H, fps=FPS, crf=23)
        for name, find in detectors.items():
            found = find(path)
            print(f"no cut (flash, fade, pan, crossing), {name}: "
                  f"{score(found, cuts, len(frames) / FPS / 60)}, by event "
                  f"{false_by_event(found, cuts, starts)}")  # fmt: skip
    for p in sorted((args.data / "real-clips").iterdir()):  # all eleven, whatever the half
        print(f"unedited {p.name}: " + "; ".join(
                f"{name} {find(p)}" for name, find in detectors.items()))  # fmt: skip


if __name__ == "__main__":
    main()
