"""The photo scan's page on a folder of phone-size photos, measured: the scan with ``--page``
(which cuts each face's picture as it goes) against the scan alone, and the page opened in
headless Chromium with the pictures and as it was before (every whole photo, cut to the face
by the page): seconds until every card's picture has loaded (scrolled to the end), and the
bytes read.

    python bench/photo_page.py [--photos 60] [--out bench/out/photo_page]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from fervid.classify import load_model
from fervid.face_pictures import FaceThumbs
from fervid.pages import write_photos_page
from fervid.photos import scan_folder

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def photos(folder: Path, n: int) -> None:
    """``n`` 4032x3024 JPEGs (a phone's 12 megapixels): the astronaut, moved about."""
    folder.mkdir(parents=True, exist_ok=True)
    face = Image.fromarray(data.astronaut()).resize((1400, 1400))
    rng = np.random.default_rng(0)
    for i in range(n):
        canvas = Image.new("RGB", (4032, 3024), tuple(int(v) for v in rng.integers(60, 200, 3)))
        canvas.paste(face, (int(rng.integers(0, 2600)), int(rng.integers(0, 1600))))
        canvas.save(folder / f"IMG_{i:04d}.jpg", quality=90)


def timed(cls, name: str) -> list[float]:
    """A method of ``cls``, timed: the seconds it took, added up."""
    spent, method = [0.0], getattr(cls, name)

    def run(*a, **k):
        t0 = time.perf_counter()
        try:
            return method(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t0

    setattr(cls, name, run)
    return spent


def open_page(page: Path) -> tuple[float, int, int]:
    """Seconds until every picture has loaded (scrolled through), bytes read, pictures."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        read = []
        tab.on("requestfinished", lambda r: read.append(r.sizes()["responseBodySize"]))
        t0 = time.perf_counter()
        tab.goto(page.as_uri())
        while not tab.evaluate(
            "() => { scrollBy(0, innerHeight); return scrollY + innerHeight >= "
            "document.body.scrollHeight - 2 && [...document.images].every(i => i.complete) }"
        ):
            tab.wait_for_timeout(10)
        seconds = time.perf_counter() - t0
        n = tab.evaluate("document.images.length")
        browser.close()
    return seconds, sum(read), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--out", type=Path, default=Path("bench/out/photo_page"))
    args = ap.parse_args()
    args.out = args.out.resolve()
    shutil.rmtree(args.out, ignore_errors=True)
    folder = args.out / "phone"
    photos(folder, args.photos)
    print(f"{platform.processor() or platform.machine()}: {args.photos} photos, 4032x3024, "
          f"{sum(p.stat().st_size for p in folder.iterdir()) / 2**20:.0f} MiB")  # fmt: skip
    model = load_model(device="cpu")
    cutting = timed(FaceThumbs, "add")
    alone, paged = [], []
    for k in range(2):  # alternated, twice: the machine's noise shows
        t0 = time.perf_counter()
        scan_folder(folder, args.out / f"plain{k}.csv", model=model)
        alone.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        page = args.out / f"faces{k}.html"
        scan_folder(folder, args.out / f"faces{k}.csv", model=model, page=page)
        paged.append(time.perf_counter() - t0)
    print(f"scan {' / '.join(f'{s:.1f}' for s in alone)} s; with --page "
          f"{' / '.join(f'{s:.1f}' for s in paged)} s, of which cutting the pictures "
          f"{cutting[0] / 2:.2f} s a scan ({100 * cutting[0] / sum(paged):.1f}%)")  # fmt: skip
    write_photos_page(args.out / "plain.html", args.out / "faces1.csv", folder)
    for name, label in (("faces1.html", "with the pictures"), ("plain.html", "whole photos")):
        seconds, size, n = open_page(args.out / name)
        print(f"page {label}: {n} pictures loaded in {seconds:.2f} s, {size / 2**20:.1f} MiB read")


if __name__ == "__main__":
    main()
