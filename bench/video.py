"""The video pipeline against the naive loop, clip by clip, in one run.

Clips are made from the public-domain portraits (``samples/make_samples.py``) placed so that
each face's true box is known in every frame: faces moving, entering and leaving, crossing,
a small fast face, and a textured background; plus ``samples/two_people.mp4`` for flicker.
For each clip, in this process (frames per second of the whole job):

- ``decode``: decoding alone (the ceiling);
- ``naive``: OpenCV reads, facenet-pytorch's MTCNN on every full frame, each face classified
  alone, OpenCV writes (the usual loop); its detections are the recall reference. It runs in
  a process of its own with the environment as given: the ``fervid`` command (and this
  script, for fervid's runs) sets ``OMP_WAIT_POLICY=PASSIVE``, which helps fervid's threads
  and would slow the naive loop;
- fervid ``default`` (annotated video written), ``no_video``, ``every3`` (``every=3``, video),
  and ``no_video_no_pose`` (no video, ``pose=False``: what the face's pose, eyes and mouth
  cost).

Reported per run: frames/s and the speed-up over the naive loop; recall (the naive loop's
full-resolution detections, clipped to the frame as fervid's are, at or above the smallest
face size, that fervid's boxes match at IoU >= 0.5, on the analysed frames); track ids per
true face and id switches (fervid's boxes matched to the true boxes); flicker (top-class
changes per second on each still face).

    python bench/video.py [--quick] [--only fast_small,crossing] [--out bench/out/video]
                          [--backend auto|torch|openvino]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_GIVEN_OMP = os.environ.get("OMP_WAIT_POLICY")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the fervid command sets it
sys.path.insert(0, str(HERE.parent / "samples"))
sys.path.insert(0, str(HERE))

from run import decode_only, naive_video, recall  # noqa: E402

from make_samples import Actor, write_clip  # noqa: E402


def clips(quick: bool) -> dict:
    """name -> (width, height, fps, frames, actors, texture, min_face_size)."""
    n = 100 if quick else 250
    return {
        "slow_two": (
            1280,
            720,
            25,
            n,
            [
                Actor(0, lambda t: (200 + 50 * t, 360), lambda t: 120),
                Actor(1, lambda t: (850 + 25 * t, 330 + 60 * math.sin(2 * t)), lambda t: 130),
            ],
            False,
            32,
        ),
        "fast_small": (
            640,
            360,
            25,
            50,
            [
                Actor(0, lambda t: (40 + 200 * t, 180), lambda t: 28),
            ],
            False,
            20,
        ),
        "enter_leave": (
            1280,
            720,
            25,
            n,
            [
                Actor(
                    0,
                    lambda t: (-150 + 300 * t, 330),
                    lambda t: 110,
                    lambda t: -150 + 300 * t > -60 and -150 + 300 * t < 1340,
                ),
                Actor(1, lambda t: (1400 - 250 * t, 380), lambda t: 140, lambda t: t > 1.0),
            ],
            False,
            32,
        ),
        "crossing": (
            1280,
            720,
            25,
            n,
            [
                Actor(0, lambda t: (200 + 800 * t / (n / 25), 360), lambda t: 120),
                Actor(1, lambda t: (1080 - 800 * t / (n / 25), 340), lambda t: 120),
            ],
            False,
            32,
        ),
        "textured": (
            1280,
            720,
            25,
            n,
            [
                Actor(0, lambda t: (400 + 20 * math.sin(t), 360), lambda t: 110),
                Actor(1, lambda t: (880, 360 + 15 * math.sin(1.3 * t)), lambda t: 130),
            ],
            True,
            32,
        ),
    }


def identities(df, truth: list, analysed: set[int], column: str = "face") -> dict:
    """Per true face: the distinct ids (track ``face``, or ``person``) matched to it on the
    analysed frames (one to one, faces in view: :func:`identity_clips.matched_ids`), and id
    switches."""
    from identity_clips import matched_ids

    out = {}
    for k, seq in sorted(matched_ids(df, truth, column, analysed).items()):
        switches = sum(1 for a, b in zip(seq, seq[1:]) if a != b)
        out[str(k)] = {"ids": len(set(seq)), "switches": switches}
    return out


def flicker(df, seconds: float) -> dict:
    """Top-class changes per second, per track (on consecutive analysed frames)."""
    out = {}
    for tid, g in df.dropna(subset=["face"]).groupby("face"):
        e = g.sort_values("frame")["emotion"].tolist()
        changes = sum(1 for a, b in zip(e, e[1:]) if a != b)
        out[str(int(tid))] = round(changes / seconds, 3)
    return out


def run_fervid(path: Path, model, annotated: Path | None, **kw):
    import fervid

    t = time.perf_counter()
    df = fervid.analyze_video(path, model=model, annotated=annotated, **kw)
    return df.attrs["fervid"].frames / (time.perf_counter() - t), df


def naive_in_subprocess(path: Path, out: Path) -> tuple[float, list[np.ndarray]]:
    """The naive loop in a fresh process with the environment as it was given (this
    process set OMP_WAIT_POLICY for fervid, which would slow the naive loop's torch calls)."""
    import subprocess

    env = dict(os.environ)
    if _GIVEN_OMP is None:
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = _GIVEN_OMP
    target = out / f"{path.stem}.naive.npz"
    subprocess.run(
        [sys.executable, __file__, "--naive", str(path), "--out", str(out)], check=True, env=env
    )
    data = np.load(target)
    n = int(data["frames"])
    return float(data["fps"]), [data[f"f{i}"] for i in range(n)]


def _naive_main(path: Path, out: Path) -> None:
    import fervid

    model = fervid.load_model(device="cpu", backend="torch")  # the usual loop: PyTorch
    fps, ref = naive_video(path, model, out / f"{path.stem}.naive.mp4")
    arrays = {f"f{i}": b for i, b in enumerate(ref)}
    np.savez(out / f"{path.stem}.naive.npz", fps=fps, frames=len(ref), **arrays)


def reference(ref: list[np.ndarray], path: Path, min_face: int) -> list[np.ndarray]:
    """The naive loop's boxes as fervid reports them (clipped to the frame; MTCNN's can
    reach past it), those at or above the smallest face size."""
    from fervid.video import VideoInfo

    info = VideoInfo.from_path(path)
    out = []
    for b in ref:
        b = np.asarray(b, np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, info.width)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, info.height)
        out.append(b[np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) >= min_face])
    return out


def bench_clip(name, path, truth, min_face, model, out: Path) -> dict:
    res = {"clip": name}
    res["decode_fps"] = round(decode_only(path), 1)
    naive_fps, ref = naive_in_subprocess(path, out)
    ref = reference(ref, path, min_face)
    res["naive_fps"] = round(naive_fps, 2)
    seconds = len(ref) / 25
    runs = {
        "default": ({}, out / f"{name}.fervid.mp4"),
        "no_video": ({}, None),
        "no_video_no_pose": ({"pose": False}, None),  # what the face's measures cost
        "every3": ({"every": 3}, out / f"{name}.every3.fervid.mp4"),
    }
    for label, (kw, target) in runs.items():
        fps, df = run_fervid(path, model, target, min_face_size=min_face, **kw)
        analysed = {int(x) for x in df["frame"].unique()}
        r = {
            "fps": round(fps, 2),
            "speedup": round(fps / naive_fps, 2),
            "recall": round(recall(ref, df, analysed), 4),
            "keyframes": df.attrs["fervid"].keyframes,
        }
        if truth is not None:
            r["identity"] = identities(df, truth, analysed)
            r["persons"] = identities(df, truth, analysed, "person")
        else:
            r["flicker_per_s"] = flicker(df, seconds)
        res[label] = r
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=str(HERE / "out" / "video"))
    ap.add_argument("--json", help="append the results here")
    ap.add_argument("--naive", help=argparse.SUPPRESS)
    ap.add_argument(
        "--backend", default="auto", help="fervid's classifier: auto, torch or openvino"
    )
    args = ap.parse_args()
    if args.naive:
        _naive_main(Path(args.naive), Path(args.out))
        return
    import fervid

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = fervid.load_model(device="cpu", backend=args.backend)
    only = {x for x in args.only.split(",") if x}
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "classifier": model.describe(),
        "clips": [],
    }
    specs = clips(args.quick)
    if not only or "two_people" in only:
        res = bench_clip(
            "two_people", HERE.parent / "samples" / "two_people.mp4", None, 32, model, out
        )
        print(json.dumps(res), flush=True)
        results["clips"].append(res)
    for name, (w, h, fps, n, actors, texture, min_face) in specs.items():
        if only and name not in only:
            continue
        path = out / f"{name}.mp4"
        truth = write_clip(path, actors, width=w, height=h, fps=fps, frames=n, texture=texture)
        res = bench_clip(name, path, truth, min_face, model, out)
        print(json.dumps(res), flush=True)
        results["clips"].append(res)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
