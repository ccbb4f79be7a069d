"""One training run: data, model, loop, checkpoints, resume, and data-parallel training.

:func:`fit` takes a :class:`TrainConfig` and writes into ``<out>/<arch>/``:
``config.json`` (the resolved config), ``last.pt`` (full training state, rewritten atomically
after every epoch, what ``--resume`` reads), ``best.safetensors`` (the best model, in fervid's
checkpoint format), ``history.csv`` and ``metrics.json``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fervid import __version__
from fervid.checkpoint import ModelMeta, atomic_replace, load_checkpoint, save_checkpoint

from .augment import BatchAugment
from .data import (
    DataError,
    EpochSampler,
    SplitData,
    class_loss_weights,
    detect_channels,
    open_dataset,
)
from .engine import Runtime, evaluate, train_one_epoch
from .models import arch_spec, build_model, count_parameters

log = logging.getLogger(__name__)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
METRICS = ("balanced_acc", "acc", "macro_f1")


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` beside it."""

    data: str
    arch: str = "resnet34"
    out: str = "runs"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    input_size: int | None = None
    pretrained: bool = False
    init: str | None = None
    balance: str = "sampler"
    balance_power: float = 1.0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | None = None
    clip_grad: float = 1.0
    ema: bool = False
    ema_decay: float = 0.999
    seed: int = 0
    workers: int = 2
    cache: str = "auto"
    select: str = "balanced_acc"
    channels: str = "auto"
    eval_split: str = "auto"
    aug_scale: float = 0.7
    rotate: float = 10.0
    jitter: float = 0.3
    erase: float = 0.25
    crop_scale: float = 1.0
    crop_shift: float = 0.0
    tta: str = "none"
    ignore_unknown: bool = False
    dataset_name: str = ""
    progress: bool = True
    resume: bool = False

    def validate(self) -> None:
        arch_spec(self.arch)
        checks = [
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.optimizer in ("adamw", "sgd"), "--optimizer must be adamw or sgd"),
            (
                self.balance in ("sampler", "loss", "none"),
                "--balance must be sampler, loss or none",
            ),
            (self.select in METRICS, f"--select must be one of {', '.join(METRICS)}"),
            (
                self.input_size is None or 16 <= self.input_size <= 1024,
                "--input-size must be in [16, 1024]",
            ),
            (
                self.channels in ("auto", "grayscale", "rgb"),
                "--channels must be auto, grayscale or rgb",
            ),
            (self.tta in ("none", "hflip"), "--tta must be none or hflip"),
            (0 < self.aug_scale <= 1, "--aug-scale must be in (0, 1]"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass
class RunResult:
    """What a finished run reports (one row of the study's comparison)."""

    arch: str
    run_dir: str
    params: int
    input_size: int
    epochs: int
    best_epoch: int
    acc: float
    balanced_acc: float
    macro_f1: float
    fit_seconds: float
    seconds_per_epoch: float
    train_images_per_s: float
    peak_mem_mb: float
    device: str
    recall: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


# -- distributed helpers ---------------------------------------------------------------


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def _init_distributed(cfg: TrainConfig) -> tuple[int, int, str]:
    rank, world, local = dist_info()
    device = cfg.device
    if world > 1:
        import torch.distributed as dist

        use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        else:
            device = "cpu"
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, device


def _reduce_sum(cm, loss_sum):
    import numpy as np
    import torch.distributed as dist

    t = torch.tensor(np.asarray(cm), dtype=torch.float64)
    s = torch.tensor([loss_sum], dtype=torch.float64)
    dist.all_reduce(t)
    dist.all_reduce(s)
    return t.round().long().numpy(), float(s[0])


# -- peak memory -----------------------------------------------------------------------


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:  # Linux: resets VmHWM, the process's peak resident set
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the run ---------------------------------------------------------------------------


def _cosine_with_warmup(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    atomic_replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    atomic_replace(tmp, path)


def fit(cfg: TrainConfig) -> RunResult:
    """Train one architecture as configured; resume from ``last.pt`` when ``--resume``."""
    cfg.validate()
    rank, world, device_name = _init_distributed(cfg)
    main = rank == 0
    runtime = Runtime.create(device_name, cfg.amp, cfg.channels_last)
    spec = open_dataset(cfg.data, ignore_unknown=cfg.ignore_unknown)
    size = cfg.input_size or arch_spec(cfg.arch).input_size
    channels = (
        cfg.channels if cfg.channels != "auto" else detect_channels(spec.split("train").paths)
    )
    eval_name = spec.eval_split if cfg.eval_split == "auto" else cfg.eval_split
    num_classes = len(spec.classes)
    run_dir = Path(cfg.out) / cfg.arch
    resolved = dataclasses.asdict(cfg) | {
        "input_size": size,
        "channels": channels,
        "eval_split": eval_name,
        "world_size": world,
        "runtime": runtime.describe(),
    }
    state_path = run_dir / "last.pt"
    state = None
    if cfg.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("config", {}).get("arch") != cfg.arch:
            raise DataError(f"{state_path}: belongs to another architecture; cannot resume")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_text_atomic(run_dir / "config.json", json.dumps(resolved, indent=2) + "\n")
        log.info(
            "%s: %s, %d classes, train %d / %s %d images at %d px %s on %s",
            cfg.arch,
            spec.layout,
            num_classes,
            len(spec.split("train")),
            eval_name,
            len(spec.split(eval_name)),
            size,
            channels,
            runtime.describe(),
        )

    train_data = SplitData(
        spec.split("train"),
        size,
        channels,
        cache=cfg.cache,
        workers=cfg.workers,
        progress=cfg.progress and main,
    )
    eval_data = SplitData(
        spec.split(eval_name),
        size,
        channels,
        cache=cfg.cache,
        workers=cfg.workers,
        progress=cfg.progress and main,
    )

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, num_classes, pretrained=cfg.pretrained)
    if cfg.init and state is None:
        _init_from(model, cfg.init, cfg.arch, spec.classes)
    model = runtime.prepare_model(model)
    params = count_parameters(model)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD)
    ema = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None
        )

    train_labels = spec.split("train").labels
    loss_weights = (
        class_loss_weights(train_labels, num_classes, cfg.balance_power).to(runtime.device)
        if cfg.balance == "loss"
        else None
    )
    criterion = nn.CrossEntropyLoss(weight=loss_weights, label_smoothing=cfg.label_smoothing)
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    sampler = EpochSampler(
        train_labels,
        num_classes,
        mode="balanced" if cfg.balance == "sampler" else "shuffle",
        seed=cfg.seed,
        rank=rank,
        world_size=world,
        power=cfg.balance_power,
    )
    steps_per_epoch = max(1, sampler.num_samples // world // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        _cosine_with_warmup(cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)),
    )
    scaler = runtime.grad_scaler()
    augment = BatchAugment(
        scale=(cfg.aug_scale, 1.0), rotate=cfg.rotate, jitter=cfg.jitter, erase=cfg.erase
    )

    start_epoch, history = 0, []
    best = {"value": -1.0, "epoch": 0}
    fit_seconds = train_seconds = 0.0
    train_images = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        start_epoch = int(state["epoch"])
        history = list(state["history"])
        best = dict(state["best"])
        fit_seconds = float(state["fit_seconds"])
        train_seconds = float(state["train_seconds"])
        train_images = int(state["train_images"])
        if main:
            log.info("%s: resuming after epoch %d of %d", cfg.arch, start_epoch, cfg.epochs)

    meta_base = {
        "arch": cfg.arch,
        "classes": list(spec.classes),
        "input_size": size,
        "channels": channels,
        "mean": mean,
        "std": std,
        "crop": {"scale": cfg.crop_scale, "shift_y": cfg.crop_shift},
        "tta": cfg.tta,
        "dataset": cfg.dataset_name or spec.name,
        "config": resolved,
        "fervid_version": __version__,
    }
    eval_indices = torch.arange(len(eval_data))[rank::world]
    reduce_fn = _reduce_sum if world > 1 else None
    _reset_peak_memory(runtime.device)

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout & co: repeatable per epoch
        g = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        indices = sampler.indices(epoch)
        bar = None
        if main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(indices),
                desc=f"{cfg.arch} {epoch + 1}/{cfg.epochs}",
                unit="img",
                leave=False,
                dynamic_ncols=True,
            )

        def progress(n, loss, bar=bar):
            if bar is not None:
                bar.update(n)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

        tr = train_one_epoch(
            net,
            train_data.batches(indices, cfg.batch_size, drop_last=True),
            criterion,
            optimizer,
            scheduler,
            runtime=runtime,
            mean=mean,
            std=std,
            augment=augment,
            generator=g,
            scaler=scaler,
            clip_grad=cfg.clip_grad,
            ema=ema,
            progress=progress,
        )
        if bar is not None:
            bar.close()
        eval_model = ema.module if ema is not None else model
        ev = evaluate(
            eval_model,
            eval_data.batches(eval_indices, cfg.batch_size * 2),
            runtime=runtime,
            mean=mean,
            std=std,
            num_classes=num_classes,
            criterion=criterion,
            reduce_fn=reduce_fn,
            tta=cfg.tta,
        )
        dt = time.perf_counter() - t0
        fit_seconds += dt
        train_seconds += tr["seconds"]
        train_images += tr["images"] * world
        row = {
            "epoch": epoch + 1,
            "train_loss": round(tr["loss"], 5),
            "train_acc": round(tr["acc"], 5),
            "val_loss": round(ev["loss"], 5),
            "val_acc": round(ev["acc"], 5),
            "val_balanced_acc": round(ev["balanced_acc"], 5),
            "val_macro_f1": round(ev["macro_f1"], 5),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(dt, 2),
            "train_images_per_s": round(tr["images_per_s"] * world, 1),
        }
        history.append(row)
        improved = ev[cfg.select] > best["value"]
        if improved:
            best = {"value": ev[cfg.select], "epoch": epoch + 1, "metrics": ev}
        if main:
            log.info(
                "%s epoch %d/%d: train loss %.3f acc %.3f | %s acc %.4f bal %.4f f1 %.4f"
                " | %.0f s, %.0f img/s%s",
                cfg.arch,
                epoch + 1,
                cfg.epochs,
                tr["loss"],
                tr["acc"],
                eval_name,
                ev["acc"],
                ev["balanced_acc"],
                ev["macro_f1"],
                dt,
                row["train_images_per_s"],
                " *" if improved else "",
            )
            weights = eval_model.state_dict()
            if improved:
                meta = ModelMeta.from_dict(
                    meta_base
                    | {
                        "format": "fervid-checkpoint",
                        "format_version": 1,
                        "metrics": _metrics_meta(ev, eval_name, epoch + 1),
                    }
                )
                save_checkpoint(run_dir / "best.safetensors", weights, meta)
            _atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "meta": meta_base
                    | {
                        "format": "fervid-checkpoint",
                        "format_version": 1,
                        "metrics": _metrics_meta(ev, eval_name, epoch + 1),
                    },
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "ema": ema.state_dict() if ema else None,
                    "epoch": epoch + 1,
                    "history": history,
                    "best": best,
                    "config": resolved,
                    "fit_seconds": fit_seconds,
                    "train_seconds": train_seconds,
                    "train_images": train_images,
                },
                state_path,
            )
            _write_history(run_dir / "history.csv", history)

    peak = _peak_memory_mb(runtime.device)
    bm = best.get("metrics") or {}
    result = RunResult(
        arch=cfg.arch,
        run_dir=str(run_dir),
        params=params,
        input_size=size,
        epochs=cfg.epochs,
        best_epoch=int(best["epoch"]),
        acc=float(bm.get("acc", 0.0)),
        balanced_acc=float(bm.get("balanced_acc", 0.0)),
        macro_f1=float(bm.get("macro_f1", 0.0)),
        fit_seconds=round(fit_seconds, 2),
        seconds_per_epoch=round(fit_seconds / cfg.epochs, 2),
        train_images_per_s=round(train_images / train_seconds, 1) if train_seconds else 0.0,
        peak_mem_mb=round(peak, 1),
        device=runtime.describe(),
        recall=bm.get("recall", []),
        confusion=bm.get("confusion", []),
        classes=list(spec.classes),
    )
    if main:
        _write_text_atomic(
            run_dir / "metrics.json", json.dumps(dataclasses.asdict(result), indent=2) + "\n"
        )
    return result


def _init_from(model: nn.Module, path: str, arch: str, classes: list[str]) -> None:
    """Start from a fervid checkpoint's weights; a head for other classes is left fresh."""
    state, meta = load_checkpoint(path)
    if meta.arch != arch:
        raise DataError(f"--init {path}: a {meta.arch} checkpoint, but training {arch}")
    if list(meta.classes) != list(classes):
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        log.info("--init: classes differ from the checkpoint's; the head starts fresh")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or len(missing) > 2:
        raise DataError(f"--init {path}: weights do not fit {arch}")


def _metrics_meta(ev: dict, split: str, epoch: int) -> dict:
    return {
        "split": split,
        "epoch": epoch,
        "acc": ev["acc"],
        "balanced_acc": ev["balanced_acc"],
        "macro_f1": ev["macro_f1"],
        "recall": ev["recall"],
        "confusion": ev["confusion"],
        "n": ev["n"],
    }


def _write_history(path: Path, history: list[dict]) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    atomic_replace(tmp, path)
