"""Training speed of fervid-train's loop, one architecture at a time, alone on the machine.

Random uint8 images through the real training step (batch augmentation on the device, mixed
precision and channels_last as fervid-train chooses them, AdamW): images/s, seconds per epoch
of a dataset of ``--epoch-images`` images, and peak memory. This is what the study's epoch
count and time budget are planned from (``docs/study-rafdb.md``).

    python bench/train_speed.py --archs resnet18,resnet34 --input-size 112 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fervid.architectures import STUDY_ARCHS, build_model, count_parameters
from fervid.runtime import Runtime
from fervid.train.augment import BatchAugment
from fervid.train.engine import train_one_epoch


def measure(arch: str, args) -> dict:
    rt = Runtime.create(args.device, args.amp)
    torch.manual_seed(0)
    model = rt.prepare_model(build_model(arch, 7))
    ema = None
    if args.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    bs, s = args.batch_size, args.input_size
    n = bs * (args.steps + args.warmup)
    images = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, device=rt.device)
    labels = torch.randint(0, 7, (n,), device=rt.device)

    def batches(lo, hi):
        for i in range(lo, hi):
            yield images[i * bs : (i + 1) * bs], labels[i * bs : (i + 1) * bs]

    kw = dict(
        runtime=rt,
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        augment=BatchAugment(),
        generator=torch.Generator().manual_seed(0),
        ema=ema,
    )
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(rt.device)
    train_one_epoch(model, batches(0, args.warmup), crit, opt, None, **kw)
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    t0 = time.perf_counter()
    r = train_one_epoch(
        model, batches(args.warmup, args.warmup + args.steps), crit, opt, None, **kw
    )
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    dt = time.perf_counter() - t0
    ips = r["images"] / dt
    peak = torch.cuda.max_memory_allocated(rt.device) / 2**20 if rt.device.type == "cuda" else 0
    return {
        "arch": arch,
        "params": count_parameters(model),
        "input_size": s,
        "batch_size": bs,
        "runtime": rt.describe(),
        "images_per_s": round(ips, 1),
        "seconds_per_epoch": round(args.epoch_images / ips, 2),
        "peak_mem_mb": round(peak, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(STUDY_ARCHS))
    ap.add_argument("--input-size", type=int, default=112)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--epoch-images", type=int, default=11_040, help="RAF-DB train less holdout")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", default="auto")
    ap.add_argument("--ema", action="store_true")
    ap.add_argument("--json", help="also append the rows to this JSON-lines file")
    args = ap.parse_args()
    # the first model in a process pays for one-time set-up (CPU kernels compiled on first
    # use, CUDA context): a throwaway run keeps that out of the first row
    measure(args.archs.split(",")[0], argparse.Namespace(**{**vars(args), "steps": 1}))
    for arch in args.archs.split(","):
        row = measure(arch, args)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
