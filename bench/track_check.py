"""A track checked by its face along its length (issue #40), measured:

- ``swaps``: one person's photo replaced in place at 2.3 s by another's (same place, same face size:
  a cut that changes only the face and the patch of photo around it), in normal light and dark
  (x0.3, low contrast, as on a stage), built from ``lfw-identities`` (the second half of the
  people by name, as bench/identity.py's clips): whether the second face's rows ever stay
  under the first face's track, how the track ended (the shot-cut detector, the face check),
  and how late; and how many people the run counts (two are right);
- ``same``: one person's photo replaced in place by another photo of the same person: a split
  by the check there is a false split (a new track at a cut the detector sees is no error: a
  jump cut); one person is right;
- ``real``: the shared real recordings (one or two people each, moving, talking, turning,
  changing light): splits on long tracks of one person are false splits;
- ``parting``: the swaps with the check and the shot detector off (one track of two people),
  parted by ``fervid
  regroup --apart 0@1.0,0@3.6`` as a user would: how far the cut falls from the swap (frames),
  and how long the regroup takes.

    python bench/track_check.py --data ../shared/data [--pairs 12] [--only parting]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "samples"))
sys.path.insert(0, str(HERE))

from identity_clips import _paste, load_people  # noqa: E402

import fervid.pipeline  # noqa: E402
from fervid.annotation import analyze_video, annotate_video  # noqa: E402
from fervid.classify import load_model  # noqa: E402
from fervid.identity.tracker import PersonTracker  # noqa: E402
from fervid.regroup import regroup_table  # noqa: E402

from make_samples import background, encode_clip  # noqa: E402

W, H, FPS, SECONDS, SWAP = 1280, 720, 10, 4.0, 2.3  # not on a periodic check (2 s)


def clip(path: Path, first, second, dark: bool) -> None:
    """``first`` (photo, box) until SWAP seconds, then ``second`` in its place."""
    bg = background(W, H)

    def pictures():
        for i in range(int(SECONDS * FPS)):
            img = bg.copy()
            photo, face = first if i / FPS < SWAP else second
            _paste(img, photo, face, 640, 340, 140)
            if dark:
                img = (img.astype(np.float32) * 0.3 + 12).astype(np.uint8)
            yield img

    encode_clip(path, pictures(), width=W, height=H, fps=FPS, crf=23)


def outcome(df) -> tuple[str, float]:
    """How the first face's track ended: 'missed' (the second face's rows under it), 'cut'
    (a new track at the swap, no split: the shot detector), 'split' (the face check), and the
    delay (s)."""
    rows = df.dropna(subset=["face"])
    before = set(rows[rows.time_s < SWAP - 1e-6].face.astype(int))
    after = rows[rows.time_s >= SWAP - 1e-6]
    carried = after[after.face.astype(int).isin(before)]
    run = df.attrs["fervid"]
    if len(carried):
        return "missed", float(carried.time_s.max() - SWAP + 1 / FPS)
    return ("split" if run.splits else "cut"), 0.0


DISTANCES: list[float] = []  # of every check, in the run now


def _recording(method):
    def run(self, tid, vec):
        d = method(self, tid, vec)
        DISTANCES.append(d)
        return d

    return run


PersonTracker.distance_to = _recording(PersonTracker.distance_to)


def spread(d: list[float]) -> str:
    if not d:
        return "no checks"
    q = np.percentile(d, [50, 99, 100])
    return f"check distances median {q[0]:.3f}, 99th percentile {q[1]:.3f}, max {q[2]:.3f}"


def checking(on: bool) -> None:
    """The face check on (fervid's default) or off (as before it: split=None)."""
    if on:
        fervid.pipeline.PersonTracker = PersonTracker
    else:
        fervid.pipeline.PersonTracker = lambda **kw: PersonTracker(**(kw | {"split": None}))


def parting(people, model, pairs: int, tmp: Path) -> None:
    """Each swap annotated with the check and the shot detector off, then parted between
    1.0 s and 3.6 s."""
    checking(False)
    marking = fervid.pipeline.mark_cuts
    fervid.pipeline.mark_cuts = lambda frames, cuts: frames
    for dark in (False, True):
        offsets, seconds, kept = [], [], 0
        for k in range(pairs):
            folder = tmp / f"part{int(dark)}-{k}"
            folder.mkdir()
            video, table = folder / "c.mp4", folder / "c.fervid.csv"
            clip(video, people[2 * k][0], people[2 * k + 1][0], dark)
            annotate_video(video, table, model=model)
            t0 = time.perf_counter()
            done = regroup_table(table, apart=[["0@1.0", "0@3.6"]], video=video)
            seconds.append(time.perf_counter() - t0)
            if done["parted"]:
                offsets.append(round((done["parted"][0].cut - SWAP) * FPS))
            else:
                kept += 1  # the shot detector had ended the track there
        light = "dark" if dark else "normal light"
        print(f"parting, {light}: cut at the swap's frame in {offsets.count(0)} of "
              f"{len(offsets)}, frames off {offsets}; {kept} already two tracks; regroup "
              f"{np.median(seconds):.2f} s median, {max(seconds):.2f} s max")  # fmt: skip
    checking(True)
    fervid.pipeline.mark_cuts = marking


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--only", choices=["swaps", "real", "parting"], help="one part only")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}")
    root = args.data / "lfw-identities"
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    people = load_people(root, names[len(names) // 2 :][: 2 * args.pairs + 2])
    model = load_model(device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.mp4"
        cases = ((False, "swaps"), (True, "swaps"), (False, "same"), (True, "same"))
        if args.only == "parting":
            parting(people, model, args.pairs, Path(tmp))
            return
        for dark, kind in cases if args.only in (None, "swaps") else ():
            for on in (False, True):
                checking(on)
                counts: dict[str, int] = {}
                persons: dict[int, int] = {}
                delays = []
                DISTANCES.clear()
                for k in range(args.pairs):
                    a = people[2 * k]
                    second = people[2 * k + 1][0] if kind == "swaps" else a[1]
                    clip(path, a[0], second, dark)
                    df = analyze_video(path, model=model)
                    what, delay = outcome(df)
                    n = int(df.dropna(subset=["person"]).person.nunique())
                    persons[n] = persons.get(n, 0) + 1
                    what = "one track" if what == "missed" and kind == "same" else what
                    counts[what] = counts.get(what, 0) + 1
                    delays += [delay] if what == "missed" else []
                late = f", rows carried over {np.mean(delays):.2f} s on average" if delays else ""
                light = "dark" if dark else "normal light"
                print(f"{kind}, {light}, check {'on' if on else 'off'}: {counts}{late}; "
                      f"clips by people counted {dict(sorted(persons.items()))}"
                      + (f"; {spread(DISTANCES)}" if on else ""))  # fmt: skip
        checking(True)
        every = []
        clips = sorted((args.data / "real-clips").iterdir()) if args.only in (None, "real") else []
        for p in clips:
            DISTANCES.clear()
            t0 = time.perf_counter()
            df = analyze_video(p, model=model)
            run = df.attrs["fervid"]
            tracks = df.dropna(subset=["face"]).face.nunique()
            rate = len(DISTANCES) / max(df.time_s.max(), 1e-9)
            print(f"real {p.name}: {run.frames} frames, {tracks} tracks, {run.splits} split(s) "
                  f"({time.perf_counter() - t0:.1f} s); {spread(DISTANCES)}; {rate:.2f} "
                  "checks a second")  # fmt: skip
            every += DISTANCES
        print(f"real, all: {spread(every)}")


if __name__ == "__main__":
    main()
