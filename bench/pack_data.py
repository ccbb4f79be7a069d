"""Pack the shared training data small enough to travel to a lent GPU machine (64 MiB).

Re-encodes the images as WebP (``--quality``) under their original file names (decoders read
the content, not the name, so label files and vote tables still match), and writes them with
the label files as one blob (``OUT.bin``, every file back to back) and its index
(``OUT.json.gz``: path, offset, length): 60,000 small files would cost more in archive headers
than in pixels. ``--unpack DIR`` restores the layout:

    OUT/fer2013/{train,val}/<class>/*.jpg + ferplus.csv
    OUT/rafdb/basic/EmoLabel/list_patition_label.txt + Image/aligned/*.jpg (train and test)
    OUT/affectnet-subset/{train,val,test}/<class>/*.jpg
    OUT/test-duplicates.txt

For research use on a lent machine only: the output must stay out of the repository
(``.gpu/`` is ignored through ``.git/info/exclude``).

    python bench/pack_data.py --src ../shared/data --out .gpu/data --quality 65
    python bench/pack_data.py --out .gpu/data --unpack /tmp/data     # on the GPU machine
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

PARTS = [
    "fer2013/train",
    "fer2013/val",
    "rafdb/basic/Image/aligned",
    "affectnet-subset/train",
    "affectnet-subset/val",
    "affectnet-subset/test",
]
FILES = [
    "fer2013/ferplus.csv",
    "rafdb/basic/EmoLabel/list_patition_label.txt",
    "test-duplicates.txt",
]


def encode(job: tuple[str, int]) -> bytes:
    src, quality = job
    with Image.open(src) as im:
        im.load()
        buf = io.BytesIO()
        im.save(buf, "WEBP", quality=quality, method=5)
    return buf.getvalue()


def pack(src: Path, out: Path, quality: int, skip: list[str], every: int = 1) -> None:
    names, jobs = [], []
    for part in PARTS:
        if part in skip:
            continue
        files = sorted((src / part).rglob("*"))
        for f in files[::every]:
            if f.suffix.lower() in (".jpg", ".jpeg", ".png") and f.is_file():
                names.append(str(f.relative_to(src)))
                jobs.append((str(f), quality))
    out.parent.mkdir(parents=True, exist_ok=True)
    index, offset = [], 0
    with open(out.with_suffix(".bin"), "wb") as blob:
        with ProcessPoolExecutor() as pool:
            for name, data in zip(names, pool.map(encode, jobs, chunksize=256)):
                blob.write(data)
                index.append([name, offset, len(data)])
                offset += len(data)
        packed = set(names)
        for name in FILES:
            data = (src / name).read_bytes()
            if name.endswith("ferplus.csv") and every > 1:  # only the rows of packed images
                lines = data.decode().splitlines(keepends=True)
                keep = [x for x in lines[1:] if "fer2013/" + x.split(",")[0] in packed]
                data = "".join(lines[:1] + keep).encode()
            if name.endswith("list_patition_label.txt") and every > 1:
                img = "rafdb/basic/Image/aligned/{}_aligned.jpg"
                lines = data.decode().splitlines(keepends=True)
                keep = [x for x in lines if img.format(x.split(".")[0]) in packed]
                data = "".join(keep).encode()
            blob.write(data)
            index.append([name, offset, len(data)])
            offset += len(data)
    with gzip.open(out.with_suffix(".json.gz"), "wt") as fh:
        json.dump(index, fh)
    print(f"{len(jobs)} images at WebP quality {quality}, {offset / 2**20:.1f} MiB in all")


def unpack(packed: Path, dest: Path) -> None:
    with gzip.open(packed.with_suffix(".json.gz"), "rt") as fh:
        index = json.load(fh)
    with open(packed.with_suffix(".bin"), "rb") as blob:
        data = blob.read()
    for name, offset, length in index:
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[offset : offset + length])
    print(f"{len(index)} files unpacked into {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="../shared/data")
    ap.add_argument("--out", default=".gpu/data", help="the pack: OUT.bin and OUT.json.gz")
    ap.add_argument("--quality", type=int, default=65)
    ap.add_argument("--skip", nargs="*", default=[], help="parts to leave out")
    ap.add_argument("--unpack", metavar="DIR", help="restore the pack's files under DIR")
    ap.add_argument("--every", type=int, default=1, help="every Nth image only (dry runs)")
    args = ap.parse_args()
    if args.unpack:
        unpack(Path(args.out), Path(args.unpack))
    else:
        pack(Path(args.src), Path(args.out), args.quality, args.skip, args.every)


if __name__ == "__main__":
    main()
