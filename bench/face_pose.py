"""The face's measures on real recordings (issue #42): for each of the shared real clips
(``real-clips``: one person each, unlabelled, but named for what they show: talking, looking
aside, pulling faces...), the share of rows speaking and looking away, the spread of yaw and
pitch, and the analysis's frames/s with and without the measures (``pose=False``), in one
process.

    python bench/face_pose.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from fervid.annotation import analyze_video
from fervid.classify import load_model
from fervid.face_pose import AWAY_PITCH, AWAY_YAW


def _spread(values) -> list[float]:
    return np.percentile(values.dropna(), [10, 50, 90]).round(1).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}")
    model = load_model(device="cpu")
    took = {True: 0.0, False: 0.0}
    frames = 0
    for clip in sorted((args.data / "real-clips").iterdir()):
        for pose in (False, True):
            t0 = time.perf_counter()
            df = analyze_video(clip, model=model, pose=pose)
            took[pose] += time.perf_counter() - t0
        frames += df.attrs["fervid"].analysed
        rows = df.dropna(subset=["face"])
        away = (rows.yaw.abs() > AWAY_YAW) | (rows.pitch.abs() > AWAY_PITCH)
        eyes, mouth = rows.eyes_open.median(), rows.mouth_open.quantile(0.9)
        print(f"{clip.name}: {len(rows)} rows, speaking {rows.speaking.mean():.0%}, looking "
              f"away {away.mean():.0%}, yaw p10/50/90 {_spread(rows.yaw)}, pitch "
              f"{_spread(rows.pitch)}, eyes_open median {eyes:.2f}, mouth_open p90 "
              f"{mouth:.2f}")  # fmt: skip
    print(f"all: {frames} frames analysed, {frames / took[False]:.1f} frames/s without the "
          f"measures, {frames / took[True]:.1f} with")  # fmt: skip


if __name__ == "__main__":
    main()
