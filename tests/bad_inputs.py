"""A corpus of bad inputs, and what fervid says about each.

``make_corpus(folder)`` writes the files (all generated: no download, no shared data);
running this file builds the corpus and runs fervid on every case, printing each command's
exit code and its message, so a user can see how fervid answers:

    python tests/bad_inputs.py /tmp/fervid-bad-inputs
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "samples"))

import make_samples as samples  # noqa: E402


def make_photos(d: Path) -> Path:
    """A photo folder where every file is awkward."""
    d.mkdir(parents=True, exist_ok=True)
    a = samples.astronaut()
    Image.fromarray(a).save(d / "astronaut.jpg", quality=90)
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(d / "one_pixel.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d / "sixteen.png")
    (d / "empty.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes((d / "astronaut.jpg").read_bytes()[:3000])
    (d / "text.jpg").write_text("not a picture")
    (d / "folder.jpg").mkdir(exist_ok=True)
    _link(d / "broken_link.jpg", d / "gone.jpg")
    _link(d / "loop.jpg", d / "loop.jpg")
    fifo = d / "pipe.jpg"
    if not fifo.exists():
        os.mkfifo(fifo)
    Image.fromarray(a).save(d / "new\nline.jpg", quality=90)
    Image.fromarray(a).save(os.fsdecode(bytes(d) + b"/latin\xe9.jpg"), quality=90)
    Image.fromarray(a).save(d / ("long" * 60 + ".jpg"), quality=90)
    return d


def make_videos(d: Path) -> Path:
    """Videos that are damaged, empty, tiny or named alike."""
    d.mkdir(parents=True, exist_ok=True)
    good = samples.write_video(d / "clip.mp4", width=320, height=240, fps=10, seconds=2.0)
    samples.write_video(d / "clip.mov", width=320, height=240, fps=10, seconds=0.5)
    samples.write_video(d / "tiny.mp4", width=16, height=16, fps=10, seconds=0.5, faces=[])
    (d / "corrupt_packet.mp4").write_bytes(corrupt_one_packet(good))
    (d / "zero_frames.mp4").write_bytes(good.read_bytes()[:1500])
    (d / "not_video.mp4").write_text("not a video")
    fifo = d / "pipe.mp4"
    if not fifo.exists():
        os.mkfifo(fifo)
    return d


def corrupt_one_packet(video: Path) -> bytes:
    """The file's bytes with the middle video packet's first NAL length made impossible:
    that packet cannot be decoded (the decoder says so), the others can."""
    import av

    with av.open(str(video)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    pos, _ = packets[len(packets) // 2]
    data = bytearray(video.read_bytes())
    data[pos : pos + 4] = b"\xff\xff\xff\xff"
    return bytes(data)


def _link(link: Path, target: Path) -> None:
    if not os.path.lexists(link):
        os.symlink(target, link)


def cases(root: Path) -> list[tuple[str, list[str]]]:
    """(what, fervid command) for each case of the corpus under ``root``."""
    p, v = root / "photos", root / "videos"
    out = root / "out"
    return [
        ("scan a folder of awkward files", ["scan", str(p), "--csv", str(out / "p.csv")]),
        ("CSV named like a photo", ["scan", str(p), "--csv", str(p / "astronaut.jpg")]),
        (
            "replace a file fervid did not write",
            ["scan", str(p), "--csv", str(root / "notes.csv"), "--overwrite"],
        ),
        (
            "annotate a folder with clip.mp4 and clip.mov",
            ["annotate", str(v), "--out-dir", str(out / "v"), "--no-video"],
        ),
        ("a FIFO as the video", ["annotate", str(v / "pipe.mp4"), "--out-dir", str(out)]),
        (
            "--start past the end",
            ["annotate", str(v / "clip.mp4"), "--start", "60", "--out-dir", str(out / "s")],
        ),
        ("--end inf", ["annotate", str(v / "clip.mp4"), "--end", "inf"]),
        ("--device bogus", ["annotate", str(v / "clip.mp4"), "--device", "bogus"]),
        (
            "output folder under a file",
            ["annotate", str(v / "clip.mp4"), "--out-dir", str(root / "notes.csv" / "sub")],
        ),
    ]


def make_corpus(root: Path) -> Path:
    make_photos(root / "photos")
    make_videos(root / "videos")
    (root / "notes.csv").write_text("my notes, not fervid's\n")
    return root


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fervid-bad-inputs")
    make_corpus(root)
    for what, args in cases(root):
        r = subprocess.run(
            [sys.executable, "-m", "fervid.cli", "-q", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(f"## {what}\n$ fervid {shlex.join(args)}\nexit {r.returncode}")
        for line in (r.stdout + r.stderr).strip().splitlines()[:12]:
            print(f"  {line}")
        print()


if __name__ == "__main__":
    main()
