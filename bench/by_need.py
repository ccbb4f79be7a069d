"""Classification by need against classifying every face of every analysed frame.

    python bench/by_need.py VIDEO [VIDEO ...] [--intervals 0.5,1.0]

Each video is analysed (``--no-video``) with ``classify_interval`` 0 (every face of every
frame, the reference) and each interval given; per setting, in this process: frames/s, the
share of rows whose top class is the reference's, the mean absolute difference of the
probabilities, and flicker (top-class changes per second per track).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def flicker(df) -> float:
    faces = df.dropna(subset=["face"])
    changes = seconds = 0.0
    for _, g in faces.groupby("face"):
        e = g.sort_values("frame")["emotion"].tolist()
        changes += sum(1 for a, b in zip(e, e[1:]) if a != b)
        seconds += max(g["time_s"].max() - g["time_s"].min(), 1e-9)
    return changes / max(seconds, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--intervals", default="0.5,1.0")
    args = ap.parse_args()
    import fervid

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    model = fervid.load_model(device="cpu")
    classes = list(model.classes)
    for video in args.videos:
        runs = {}
        for interval in [0.0, *(float(v) for v in args.intervals.split(","))]:
            t = time.perf_counter()
            df = fervid.analyze_video(video, model=model, classify_interval=interval)
            runs[interval] = (df.attrs["fervid"].frames / (time.perf_counter() - t), df)
        ref = runs[0.0][1].dropna(subset=["face"])
        for interval, (fps, df) in runs.items():
            d = df.dropna(subset=["face"])
            same = len(d) == len(ref)
            agree = (
                float((d["emotion"].to_numpy() == ref["emotion"].to_numpy()).mean())
                if same
                else None
            )
            diff = (
                float(np.abs(d[classes].to_numpy() - ref[classes].to_numpy()).mean())
                if same
                else None
            )
            row = {"video": os.path.basename(video), "classify_interval": interval}
            row |= {"fps": round(fps, 2), "top_class_agrees": agree and round(agree, 4)}
            row |= {"mean_abs_prob_diff": diff and round(diff, 5)}
            print(json.dumps(row | {"flicker_per_s": round(flicker(df), 3)}))


if __name__ == "__main__":
    main()
