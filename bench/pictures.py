"""What the people's face pictures cost on a long-GOP 1080p file (issue #41's bar: under 2%
of the run).

Builds a 1080p clip with one key frame from four of the shared real recordings (a 2x2 grid,
four people), analyses it (``--no-video``) with the crops kept during the pass, and reports,
in one process:

- the pass (frames/s), the time the keeping took inside it, and the time writing the pictures
  from the kept crops takes: the pictures' share of the run;
- the pictures fetched from the video afterwards instead (what ``report`` and ``regroup`` do),
  with today's :func:`fervid.video.frames_at` (one forward decode) and with the seek per time
  that fervid used before (each seek decodes from the file's only key frame).

    python bench/pictures.py --data ../shared/data [--seconds 10]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from fervid import face_pictures
from fervid.annotation import annotate_video
from fervid.classify import load_model
from fervid.face_pictures import write_faces
from fervid.persons import read_people
from fervid.video import FrameReader, frames_at

CLIPS = ("woman_talking.mp4", "man_eyes_cheeks.mp4", "woman_looking_aside.mp4", "smiling_man.mp4")


def build(data: Path, out: Path, seconds: float, fps: int = 25) -> Path:
    """Four recordings side by side, 1920x1080, ``fps``, one key frame."""
    readers = [iter(FrameReader(data / "real-clips" / c)) for c in CLIPS]
    last = [np.zeros((540, 960, 3), np.uint8)] * 4
    tb = Fraction(1, fps)
    with av.open(str(out), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt, v.time_base = 1920, 1080, "yuv420p", tb
        v.options = {"crf": "23", "preset": "veryfast", "g": "100000", "sc_threshold": "0"}
        for i in range(int(seconds * fps)):
            for k, r in enumerate(readers):
                f = next(r, None)
                if f is not None:
                    last[k] = cv2.resize(f.image, (960, 540), interpolation=cv2.INTER_AREA)
            grid = np.vstack([np.hstack(last[:2]), np.hstack(last[2:])])
            frame = av.VideoFrame.from_ndarray(grid, format="rgb24")
            frame.pts, frame.time_base = i, tb
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    with av.open(str(out)) as c:
        keys = sum(p.is_keyframe for p in c.demux(video=0) if p.size)
    print(f"built {out.name}: 1920x1080, {seconds:g} s at {fps} frames/s, {keys} key frame(s)")
    return out


def frames_by_seeking(path, times):
    """fervid's frames_at before December 2026: a seek to the key frame before each time."""
    out = {}
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for t in sorted(set(times)):
            c.seek(max(0, int(t / s.time_base)), stream=s, backward=True, any_frame=False)
            for f in c.decode(s):
                if float(f.pts * s.time_base) >= t - 1e-3:
                    out[t] = f.to_ndarray(format="rgb24")
                    break
    return out


def timed_keeper():
    """The keeper's update, timed."""
    spent = [0.0]
    update = face_pictures.PictureKeeper.update

    def timed(self, *a):
        t0 = time.perf_counter()
        update(self, *a)
        spent[0] += time.perf_counter() - t0

    face_pictures.PictureKeeper.update = timed
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = build(args.data, tmp / "grid.mp4", args.seconds)
        model = load_model(device="cpu")
        spent = timed_keeper()
        t0 = time.perf_counter()
        run = annotate_video(clip, tmp / "grid.fervid.csv", model=model, pictures=True)
        whole = time.perf_counter() - t0
        found = read_people(tmp / "grid.fervid.csv")
        t0 = time.perf_counter()
        write_faces(clip, found.candidates, tmp / "kept", kept=run.pictures)
        written = time.perf_counter() - t0
        times = [c.time_s for heap in found.candidates.values() for c in heap]
        t0 = time.perf_counter()
        frames_at(clip, times)
        forward = time.perf_counter() - t0
        t0 = time.perf_counter()
        frames_by_seeking(clip, times)
        seeking = time.perf_counter() - t0
    cost = spent[0] + written
    print(f"run: {run.frames} frames, {run.frames_per_s:.2f} frames/s, {whole:.1f} s in all; "
          f"{len(found.candidates)} people, {len(run.pictures)} crops kept")  # fmt: skip
    print(f"pictures from the pass: keeping {spent[0]:.2f} s + writing {written:.3f} s = "
          f"{cost:.2f} s, {100 * cost / (whole + written):.2f}% of the run")  # fmt: skip
    print(f"fetched afterwards ({len(set(times))} times): one forward decode {forward:.1f} s "
          f"({100 * forward / whole:.1f}% of the run); a seek per time {seeking:.1f} s "
          f"({100 * seeking / whole:.1f}%)")  # fmt: skip


if __name__ == "__main__":
    main()
