"""What a run spends before its first frame, measured in fresh processes: importing fervid's
command line, importing PyTorch, loading the classifier (OpenVINO compiling it, or reading it
from the cache), the detector, and the first frame analysed; once with an empty OpenVINO
cache, then twice with the cache that run left (``FERVID_CACHE``); and ``fervid report`` and
``fervid regroup``, which need no PyTorch at all.

    python bench/startup.py [--video samples/two_people.mp4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
t0 = time.perf_counter()
marks = {}
import fervid.cli
marks["import fervid.cli"] = time.perf_counter() - t0
import torch
marks["import torch"] = time.perf_counter() - t0
from fervid.classify import load_model
model = load_model(device="cpu")
marks["classifier loaded"] = time.perf_counter() - t0
from fervid.options import VideoOptions
from fervid.pipeline import VideoPipeline
from fervid.video import FrameReader
pipe = VideoPipeline(sys.argv[1], model, VideoOptions())
marks["detector ready"] = time.perf_counter() - t0
frame = next(iter(FrameReader(sys.argv[1])))
pipe.process([frame])
marks["first frame analysed"] = time.perf_counter() - t0
print(json.dumps(marks))
"""


def child(video: Path, cache: Path) -> dict:
    env = {**os.environ, "FERVID_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-c", CHILD, str(video)], env=env, capture_output=True,
                       text=True, check=True)  # fmt: skip
    return json.loads(r.stdout.strip().splitlines()[-1])


def command(args: list[str], cache: Path) -> tuple[float, bool]:
    """Seconds a fervid command takes, and whether it imported PyTorch."""
    env = {**os.environ, "FERVID_CACHE": str(cache)}
    code = (
        "import sys; from fervid.cli import cli\n"
        "try:\n    cli.main(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n    print('torch' in sys.modules, file=sys.stderr)\n"
    )
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                       text=True, check=True)  # fmt: skip
    return time.perf_counter() - t0, r.stderr.strip().splitlines()[-1] == "True"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=Path("samples/two_people.mp4"))
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        for label in ("empty cache", "warm cache", "warm cache"):
            marks = child(args.video, cache)
            steps = ", ".join(f"{k} {v:.2f}" for k, v in marks.items() if v is not None)
            print(f"{label}: {steps} (s from start)")
        video = shutil.copy(args.video, tmp / args.video.name)
        command(["annotate", str(video), "--no-video"], cache)
        table = str(tmp / (args.video.stem + ".fervid.csv"))
        for name, cmd in (("report", ["report", table, "--overwrite"]),
                          ("regroup", ["regroup", table, "--people", "2"])):  # fmt: skip
            seconds, torch = command(cmd, cache)
            print(f"fervid {name}: {seconds:.2f} s in all, PyTorch imported: {torch}")


if __name__ == "__main__":
    main()
