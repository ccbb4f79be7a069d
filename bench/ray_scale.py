"""How fervid's jobs scale on Ray: one machine without Ray, then Ray with 1 and 2 workers.

Photos: the small web-size photo set of ``bench/run.py`` (made if missing); videos: short
720p clips of two faces. Each run is timed from the command's start to its end (Ray's start-up
and the model's loading in every worker included), and the rows are checked to be the same.

    python bench/ray_scale.py [--photos 200] [--videos 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "samples"))

from run import make_images  # noqa: E402

import make_samples as ms  # noqa: E402


def fervid(*args: str) -> float:
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fervid.cli", "-q", *args], check=False, env=env, capture_output=True
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "out" / "ray"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = make_images(out, args.photos, small=True)
    vids = out / "videos"
    vids.mkdir(exist_ok=True)
    for k in range(args.videos):
        p = vids / f"clip{k}.mp4"
        if not p.exists():
            ms.write_video(p, width=1280, height=720, fps=25, seconds=4.0, audio=False)
    rows = []
    for label, extra in (
        ("one machine", []),
        ("ray, 1 worker", ["--ray-workers", "1"]),
        ("ray, 2 workers", ["--ray-workers", "2"]),
    ):
        ray = ["--ray-address", "local", *extra] if extra else []
        csv = out / f"photos_{len(rows)}.csv"
        t_p = fervid("scan", str(photos), "--csv", str(csv), "--overwrite", *ray)
        t_v = fervid(
            "annotate",
            str(vids),
            "--out-dir",
            str(out / f"v{len(rows)}"),
            "--overwrite",
            "--no-video",
            *ray,
        )
        rows.append(
            {
                "run": label,
                "photos_per_s": round(args.photos / t_p, 2),
                "video_frames_per_s": round(args.videos * 100 / t_v, 1),
                "photos_seconds": round(t_p, 1),
                "videos_seconds": round(t_v, 1),
                "same_rows": csv.read_text() == (out / "photos_0.csv").read_text(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
