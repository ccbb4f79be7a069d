"""The review page of a long video, measured: a synthetic table of HOURS of video analysed at
FPS frames a second with PEOPLE people coming and going (each missed on 5% of frames, so that
"in view" is cut often), made into its page by ``fervid report``, then opened in headless
Chromium: seconds to open (until the time axis is drawn), the bands drawn, ten scroll steps,
a redraw (what a resize costs), and the page's size.

    python bench/page.py [--hours 1] [--people 20] [--fps 5] [--out bench/out/page]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fervid.emotions import EMOTIONS
from fervid.rows import RowSchema

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def table(path: Path, hours: float, people: int, fps: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    rows, present = [], rng.random(people) < 0.5
    for f in range(int(3600 * hours * fps)):
        if f % int(10 * fps) == 0:  # every 10 s each person may come or go
            present = np.where(rng.random(people) < 0.2, ~present, present)
        for p in np.flatnonzero(present & (rng.random(people) > 0.05)):
            probs = rng.dirichlet(np.ones(7) * 0.5)
            top = int(probs.argmax())
            head = [f, round(f / fps, 3), p, p, 0.9, 10, 10, 60, 60, 0.99]
            rows.append([*head, *np.round(probs, 5), EMOTIONS[top], round(float(probs[top]), 5)])
    pd.DataFrame(rows, columns=RowSchema("video", EMOTIONS).columns).to_csv(path, index=False)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--out", default="bench/out/page")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "long.fervid.csv"
    n = table(csv, args.hours, args.people, args.fps)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fervid.cli", "-q", "report", str(csv), "--overwrite"],
                   check=True)  # fmt: skip
    report_s = time.perf_counter() - t
    from playwright.sync_api import sync_playwright

    page = out / "long.fervid.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        t = time.perf_counter()
        tab.goto(page.resolve().as_uri())
        tab.wait_for_selector(".tick")
        open_s = time.perf_counter() - t
        bands = tab.evaluate("document.querySelectorAll('.seen,.ep').length")
        t = time.perf_counter()
        for y in range(0, 3000, 300):
            tab.evaluate(f"window.scrollTo(0, {y})")
            tab.wait_for_timeout(16)
        scroll_s = time.perf_counter() - t
        t = time.perf_counter()
        tab.evaluate("draw(); axis()")
        redraw_s = time.perf_counter() - t
        browser.close()
    print(
        f"{n} rows, {args.people} people, {args.hours:g} h: report {report_s:.1f} s; page "
        f"{page.stat().st_size / 2**20:.2f} MiB, opens in {open_s:.2f} s, {bands} bands, "
        f"10 scroll steps {scroll_s:.2f} s (16 ms waits included), redraw {redraw_s:.2f} s"
    )


if __name__ == "__main__":
    main()
