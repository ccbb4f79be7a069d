"""The researcher's outputs on a long video: what they add to the run time, and memory.

    python bench/takeaway.py [--minutes 10] [--out bench/out/takeaway]

Makes a video of the two public-domain portraits (640x360, 25 fps, ``--minutes`` long, and
a 1-minute one), annotates each with ``fervid annotate --no-video --elan --report``, then times
``fervid.video_outputs.report_table`` on its table (people, episodes, faces, ELAN, the page: exactly
what ``annotate`` adds after the table) in a process of its own (the call alone, not the
process's start), with the process's peak memory. Printed:
seconds of each, the share the outputs add, and the peak memory for 1 and ``--minutes``
minutes (flat when the outputs are streamed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "samples"))


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Seconds, peak memory (MB) and output of a command run in a process of its own."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({status})")
    return time.perf_counter() - t, usage.ru_maxrss / 1024, out


#: The outputs alone, timed inside the process (not Python's and torch's start-up, which
#: annotate has paid already).
REPORT = (
    "import sys, time; from fervid.video_outputs import report_table; t = time.perf_counter(); "
    "report_table(sys.argv[1], elan=True, overwrite=True); print(time.perf_counter() - t)"
)


def measure(minutes: float, out: Path) -> dict:
    from make_samples import write_video

    video = out / f"talk_{minutes:g}min.mp4"
    if not video.exists():
        write_video(video, width=640, height=360, fps=25, seconds=60 * minutes, audio=False)
    fervid = [sys.executable, "-m", "fervid.cli", "-q"]
    table = out / f"{video.stem}.fervid.csv"
    annotate_s, annotate_mb, _ = run(
        [*fervid, "annotate", str(video), "--no-video", "--elan", "--report", "--overwrite"]
    )
    # the same outputs again, alone, from the table: what annotate spends on them
    _, report_mb, said = run([sys.executable, "-c", REPORT, str(table)])
    report_s = float(said.strip().splitlines()[-1])
    return {
        "minutes": minutes,
        "annotate_s (table and outputs)": round(annotate_s, 1),
        "outputs_s": round(report_s, 2),
        "outputs_share": round(report_s / max(annotate_s - report_s, 1e-9), 4),
        "annotate_peak_mb": round(annotate_mb, 0),
        "report_peak_mb": round(report_mb, 0),
        "table_mb": round(table.stat().st_size / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "takeaway")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for minutes in (1.0, args.minutes):
        print(json.dumps(measure(minutes, args.out)))


if __name__ == "__main__":
    main()
