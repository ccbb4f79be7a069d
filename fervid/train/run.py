"""One training run: set-up, the epoch loop, checkpoints and resume.

:func:`fit` takes a :class:`TrainConfig` and writes into ``<out>/<arch>/``:
``config.json`` (the resolved config, every data source included), ``last.pt`` (the full
training state, rewritten atomically after every epoch, what ``--resume`` reads),
``best.safetensors`` (the best model, in fervid's checkpoint format), ``history.csv`` and
``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from fervid import __version__
from fervid.architectures import arch_spec, build_model, count_parameters
from fervid.checkpoint import CheckpointError, load_checkpoint
from fervid.runtime import Runtime

from .augment import BatchAugment, BatchMix
from .checkpoints import CheckpointWriter, RunState, write_json_atomic
from .config import METRICS, SOURCE_SETTINGS, TrainConfig
from .data import (
    DataError,
    EpochSampler,
    SplitData,
    class_loss_weights,
    detect_channels,
    logit_adjustment,
)
from .distributed import init_distributed, reduce_sum
from .engine import (
    AdjustedLoss,
    SourceAdjustedLoss,
    evaluate,
    metrics_from_confusion,
    train_one_epoch,
)
from .schedule import LRSchedule
from .sources import Source, open_sources, sampling_weights, union_train

log = logging.getLogger(__name__)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class RunResult:
    """What a finished run reports (one row of the study's comparison).

    ``acc``, ``balanced_acc`` and ``macro_f1`` are on ``split``: the test split when every
    source has one (evaluated once, with the best epoch's weights), else the validation
    split that selected the best epoch. ``val_*`` are always the selection figures.
    """

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
    split: str = ""
    val_acc: float = 0.0
    val_balanced_acc: float = 0.0
    sources: dict = field(default_factory=dict)


@dataclass
class TrainData:
    """A run's data, ready for batching."""

    classes: list[str]
    sources: list[Source]
    size: int
    channels: str
    train: SplitData
    sampler: EpochSampler
    evals: dict[str, SplitData]  # per source name: its validation split

    @property
    def name(self) -> str:
        return "+".join(s.name for s in self.sources)


@dataclass
class Parts:
    """The trainable pieces of a run (what ``last.pt`` saves and restores)."""

    model: nn.Module
    net: nn.Module  # the model, wrapped for data-parallel training when distributed
    ema: nn.Module | None
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    augment: BatchAugment
    mix: BatchMix


# -- set-up ----------------------------------------------------------------------------


def prepare_data(
    cfg: TrainConfig, runtime: Runtime, rank: int, world: int, main: bool
) -> TrainData:
    """Open every source, decode the splits (once, into memory when they fit)."""
    classes, sources = open_sources(**{k: getattr(cfg, k) for k in SOURCE_SETTINGS})
    if cfg.select_source not in ["mean", *[s.name for s in sources]]:
        names = ", ".join(s.name for s in sources)
        raise DataError(f"--select-source must be 'mean' or one of the sources: {names}")
    size = cfg.input_size or arch_spec(cfg.arch).input_size
    channels = cfg.channels
    if channels == "auto":
        kinds = {detect_channels(s.train.paths) for s in sources}
        channels = "rgb" if "rgb" in kinds else "grayscale"
    train_split, source_ids = union_train(sources, len(classes))
    kw = dict(cache=cfg.cache, workers=cfg.workers, progress=cfg.progress and main)
    train = SplitData(train_split, size, channels, **kw)
    evals = {s.name: SplitData(s.val, size, channels, **kw) for s in sources}
    weights = sampling_weights(
        train_split.labels, source_ids, len(classes), cfg.balance_power, cfg.source_power
    )
    sampler = EpochSampler(
        train_split.labels,
        len(classes),
        mode="balanced" if cfg.balance == "sampler" else "shuffle",
        seed=cfg.seed,
        rank=rank,
        world_size=world,
        weights=weights,
    )
    if cfg.logit_adjust is not None and cfg.logit_adjust_by == "source":
        rows = _logit_adjustment(cfg.logit_adjust, sampler, len(classes), groups=source_ids)
        for s, row in zip(sources, rows):
            log.info("logit adjustment for %s: %s", s.name, [round(float(a), 3) for a in row])
        train.carry(rows[source_ids], len(classes))  # each image brings its source's row
    if runtime.device.type == "cuda":  # decoded images live on the GPU: no copy per batch
        train.to(runtime.device)
        for e in evals.values():
            e.to(runtime.device)
    return TrainData(classes, sources, size, channels, train, sampler, evals)


def _logit_adjustment(tau: float, sampler: EpochSampler, num_classes: int, groups=None):
    """``--logit-adjust``'s row (or one row per dataset, ``groups``) for what ``sampler``
    draws."""
    draws = sampler.weights if sampler.mode == "balanced" else None
    return logit_adjustment(sampler.labels, num_classes, tau, draws, groups=groups)


def build_parts(cfg: TrainConfig, data: TrainData, runtime: Runtime, world: int) -> Parts:
    """Model (and its EMA), loss, optimiser, schedule, scaler and augmentation."""
    torch.manual_seed(cfg.seed)
    num_classes = len(data.classes)
    model = build_model(cfg.arch, num_classes, pretrained=cfg.pretrained)
    if cfg.init:
        _init_from(model, cfg.init, cfg.arch, data.classes)
    model = runtime.prepare_model(model)
    ema = None
    if cfg.ema:
        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None
        )
    loss_weights = (
        class_loss_weights(data.train.split.labels, num_classes, cfg.balance_power).to(
            runtime.device
        )
        if cfg.balance == "loss"
        else None
    )
    criterion = nn.CrossEntropyLoss(weight=loss_weights, label_smoothing=cfg.label_smoothing)
    if cfg.logit_adjust is not None and cfg.logit_adjust_by == "source":
        criterion = SourceAdjustedLoss(criterion)  # the rows travel in the targets
    elif cfg.logit_adjust is not None:
        adjustment = _logit_adjustment(cfg.logit_adjust, data.sampler, num_classes)
        log.info("logit adjustment: %s", [round(float(a), 3) for a in adjustment])
        criterion = AdjustedLoss(criterion, adjustment).to(runtime.device)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    steps = steps_per_epoch(data, cfg, world)
    schedule = LRSchedule(
        optimizer,
        kind=cfg.schedule,
        total_steps=cfg.epochs * steps,
        warmup_steps=int(cfg.warmup_epochs * steps),
        plateau_factor=cfg.plateau_factor,
        patience=cfg.plateau_patience,
    )
    augment = BatchAugment(
        scale=(cfg.aug_scale, 1.0),
        rotate=cfg.rotate,
        jitter=cfg.jitter,
        erase=cfg.erase,
        gray=cfg.random_gray,
        footage=cfg.footage,
    )
    mix = BatchMix(num_classes, mixup=cfg.mixup, cutmix=cfg.cutmix, prob=cfg.mix_prob)
    return Parts(
        model, net, ema, criterion, optimizer, schedule, runtime.grad_scaler(), augment, mix
    )


def steps_per_epoch(data: TrainData, cfg: TrainConfig, world: int) -> int:
    return max(1, data.sampler.num_samples // world // cfg.batch_size)


def resolve_config(cfg: TrainConfig, data: TrainData, runtime: Runtime, world: int) -> dict:
    """The config as run: defaults filled in, every source described."""
    return dataclasses.asdict(cfg) | {
        "input_size": data.size,
        "channels": data.channels,
        "classes": list(data.classes),
        "sources": [s.describe() for s in data.sources],
        "world_size": world,
        "runtime": runtime.describe(),
    }


# -- the run ---------------------------------------------------------------------------


def fit(cfg: TrainConfig) -> RunResult:
    """Train one architecture as configured; resume from ``last.pt`` when ``--resume``."""
    cfg.validate()
    rank, world, device_name = init_distributed(cfg.device)
    main = rank == 0
    runtime = Runtime.create(device_name, cfg.amp, cfg.channels_last)
    run_dir = Path(cfg.out) / cfg.arch
    state = RunState.read(run_dir) if cfg.resume else None
    data = prepare_data(cfg, runtime, rank, world, main)
    resolved = resolve_config(cfg, data, runtime, world)
    if state is not None:
        state.check_compatible(resolved)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", resolved)
        _log_start(cfg, data, runtime)
    parts = build_parts(cfg, data, runtime, world)
    if state is not None:
        state.restore(parts)
        if main:
            log.info("%s: resuming after epoch %d of %d", cfg.arch, state.epoch, state.planned)
    else:
        state = RunState.fresh(cfg.epochs)
    meta_base = _meta_base(cfg, data, resolved)
    writer = CheckpointWriter(run_dir, meta_base, _val_name(data), enabled=main)
    reduce_fn = reduce_sum if world > 1 else None
    _reset_peak_memory(runtime.device)
    while state.epoch < state.planned:
        epoch = state.epoch
        t0 = time.perf_counter()
        tr = _train_epoch(cfg, data, parts, runtime, state, rank, world, main)
        _check_finite(cfg, parts.model, epoch + 1, run_dir)
        eval_model = parts.ema.module if parts.ema is not None else parts.model
        ev = evaluate_sources(
            eval_model, data, runtime, cfg, parts.criterion, rank, world, reduce_fn
        )
        parts.schedule.epoch_end(ev["select"])
        dt = time.perf_counter() - t0
        state.record(epoch + 1, tr, ev, dt, world, parts.optimizer.param_groups[0]["lr"])
        improved = state.update_best(ev, epoch + 1, eval_model)
        if cfg.time_budget:
            _keep_to_budget(cfg, state, parts, data, world, dt, main)
        if main:
            _log_epoch(cfg, state, tr, ev, dt, improved)
            if improved:
                writer.best(eval_model.state_dict(), ev, epoch + 1)
            writer.last(state.to_dict(parts, resolved, writer.meta(ev, epoch + 1)))
            writer.history(state.history)
    return _finish(cfg, data, parts, state, runtime, writer, main)


class TrainingDiverged(ValueError):
    """The weights became NaN or infinite; the message is one line."""


def _check_finite(cfg: TrainConfig, model: torch.nn.Module, epoch: int, run_dir) -> None:
    """Stop a run whose weights stopped being numbers (a learning rate far too high, a NaN
    setting): nothing of this epoch is written, the last good checkpoint stays."""
    if all(torch.isfinite(p).all() for p in model.parameters()):
        return
    raise TrainingDiverged(
        f"{cfg.arch}: training diverged in epoch {epoch} (weights became NaN or infinite; "
        f"try a lower --lr); the checkpoints of the epochs before are kept in {run_dir}"
    )


def _train_epoch(cfg, data, parts, runtime, state, rank, world, main) -> dict:
    epoch = state.epoch
    torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout & co: repeatable per epoch
    g = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
    indices = data.sampler.indices(epoch)
    bar = None
    if main and cfg.progress:
        bar = tqdm(
            total=len(indices),
            desc=f"{cfg.arch} {epoch + 1}/{state.planned}",
            unit="img",
            leave=False,
            dynamic_ncols=True,
        )

    def progress(n, loss, bar=bar):
        if bar is not None:
            bar.update(n)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    tr = train_one_epoch(
        parts.net,
        data.train.batches(indices, cfg.batch_size, drop_last=True),
        parts.criterion,
        parts.optimizer,
        parts.schedule,
        runtime=runtime,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment=parts.augment,
        mix=parts.mix,
        generator=g,
        scaler=parts.scaler,
        clip_grad=cfg.clip_grad,
        ema=parts.ema,
        progress=progress,
    )
    if bar is not None:
        bar.close()
    return tr


def evaluate_sources(
    model, data: TrainData, runtime, cfg, criterion=None, rank=0, world=1, reduce_fn=None
):
    """Each source's validation metrics, and the selection value (``--select`` of the
    source named by ``--select-source``, or its mean over the sources)."""
    per = {}
    for name, split in data.evals.items():
        idx = torch.arange(len(split))[rank::world]
        per[name] = evaluate(
            model,
            split.batches(idx, cfg.batch_size * 2),
            runtime=runtime,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            num_classes=len(data.classes),
            criterion=criterion,
            reduce_fn=reduce_fn,
            tta=cfg.tta,
        )
    return aggregate(per, cfg.select, cfg.select_source)


def aggregate(per: dict[str, dict], select: str, select_source: str = "mean") -> dict:
    """One source: its metrics. Several: the mean of each metric over the sources, the
    pooled confusion matrix and recall, and each source's metrics under ``sources``."""
    names = list(per)
    if len(names) == 1:
        ev = dict(per[names[0]])
    else:
        pooled = metrics_from_confusion(sum(_np(per[n]["confusion"]) for n in names))
        ev = {k: sum(per[n][k] for n in names) / len(names) for k in (*METRICS, "loss")}
        ev |= {"recall": pooled["recall"], "confusion": pooled["confusion"], "n": pooled["n"]}
        ev["sources"] = per
    ev["select"] = ev[select] if select_source == "mean" else per[select_source][select]
    return ev


def _np(x):

    return np.asarray(x, dtype=np.int64)


def _keep_to_budget(cfg, state, parts, data, world, epoch_seconds, main) -> None:
    """After epochs 1 and 2 (the first one pays for warm-up): as many epochs as the rest of
    the time budget allows at this pace (at most ``--epochs``), the cosine schedule
    re-planned to end there. After any later epoch: stop when the next one would overrun
    the budget (the machine got slower)."""
    budget = cfg.time_budget * 60
    left = budget - state.fit_seconds
    if state.epoch > 2:
        if state.epoch < state.planned and left < epoch_seconds:
            state.planned = state.epoch
            if main:
                log.info("%s: time budget reached after epoch %d", cfg.arch, state.epoch)
        return
    more = math.floor(max(left, 0.0) / max(epoch_seconds, 1e-6))
    planned = int(min(cfg.epochs, state.epoch + more))
    state.planned = max(planned, state.epoch)
    parts.schedule.set_total(state.planned * steps_per_epoch(data, cfg, world))
    if main:
        log.info(
            "%s: %.1f s per epoch; the time budget of %.1f min allows %d epoch(s)",
            cfg.arch,
            epoch_seconds,
            cfg.time_budget,
            state.planned,
        )


def _finish(cfg, data, parts, state, runtime, writer, main) -> RunResult:
    """Test splits evaluated once with the best weights; metrics.json; the result."""
    peak = _peak_memory_mb(runtime.device)
    best = state.best.get("metrics") or {}
    tests = {}
    if cfg.test and main and state.best_weights is not None:
        tests = evaluate_tests(cfg, data, runtime, state.best_weights)
    val_per = best.get("sources") or {data.sources[0].name: best}
    per_source = {}
    for s in data.sources:
        v = val_per.get(s.name, {})
        per_source[s.name] = {
            "val_split": s.val_split,
            "val": {k: v.get(k) for k in (*METRICS, "n", "recall", "confusion")},
        }
        if s.name in tests:
            per_source[s.name]["test"] = tests[s.name]
    all_tested = bool(tests) and len(tests) == len(data.sources)
    head = aggregate(tests, cfg.select) if all_tested else best
    result = RunResult(
        arch=cfg.arch,
        run_dir=str(writer.run_dir),
        params=count_parameters(parts.model),
        input_size=data.size,
        epochs=state.epoch,
        best_epoch=int(state.best["epoch"]),
        acc=float(head.get("acc", 0.0)),
        balanced_acc=float(head.get("balanced_acc", 0.0)),
        macro_f1=float(head.get("macro_f1", 0.0)),
        fit_seconds=round(state.fit_seconds, 2),
        seconds_per_epoch=round(state.fit_seconds / max(state.epoch, 1), 2),
        train_images_per_s=round(state.train_images / state.train_seconds, 1)
        if state.train_seconds
        else 0.0,
        peak_mem_mb=round(peak, 1),
        device=runtime.describe(),
        recall=head.get("recall", []),
        confusion=head.get("confusion", []),
        classes=list(data.classes),
        split="test" if all_tested else _val_name(data),
        val_acc=float(best.get("acc", 0.0)),
        val_balanced_acc=float(best.get("balanced_acc", 0.0)),
        sources=per_source,
    )
    if main:
        write_json_atomic(writer.run_dir / "metrics.json", dataclasses.asdict(result))
    return result


def _val_name(data: TrainData) -> str:
    kinds = {s.val_split for s in data.sources}
    return kinds.pop() if len(kinds) == 1 else "val"


def evaluate_tests(cfg, data: TrainData, runtime, weights: dict) -> dict[str, dict]:
    """Each source's test split (if it has one), read with the best epoch's weights."""
    model = build_model(cfg.arch, len(data.classes))
    model.load_state_dict(weights)
    model = runtime.prepare_model(model)
    out = {}
    for s in data.sources:
        if s.test is None:
            continue
        split = SplitData(s.test, data.size, data.channels, cache=cfg.cache, workers=cfg.workers)
        ev = evaluate(
            model,
            split.batches(torch.arange(len(split)), cfg.batch_size * 2),
            runtime=runtime,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            num_classes=len(data.classes),
            tta=cfg.tta,
        )
        ev.pop("loss", None)
        out[s.name] = ev
        log.info(
            "%s: %s test (%d images): acc %.4f bal %.4f f1 %.4f",
            cfg.arch,
            s.name,
            ev["n"],
            ev["acc"],
            ev["balanced_acc"],
            ev["macro_f1"],
        )
    return out


def _meta_base(cfg: TrainConfig, data: TrainData, resolved: dict) -> dict:

    return {
        "arch": cfg.arch,
        "classes": list(data.classes),
        "input_size": data.size,
        "channels": data.channels,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "crop": {"scale": cfg.crop_scale, "shift_y": cfg.crop_shift},
        "tta": cfg.tta,
        "dataset": cfg.dataset_name or data.name,
        "config": resolved,
        "fervid_version": __version__,
    }


def _log_start(cfg: TrainConfig, data: TrainData, runtime: Runtime) -> None:
    for s in data.sources:
        log.info(
            "%s: %s (%s), train %d / %s %d / test %d%s",
            cfg.arch,
            s.name,
            s.layout,
            len(s.train),
            s.val_split,
            len(s.val),
            len(s.test) if s.test is not None else 0,
            "".join(f", {k} {v}" for k, v in s.info.items() if v),
        )
    log.info(
        "%s: %d classes at %d px %s on %s",
        cfg.arch,
        len(data.classes),
        data.size,
        data.channels,
        runtime.describe(),
    )


def _log_epoch(cfg, state, tr, ev, dt, improved) -> None:
    per = ev.get("sources") or {}
    extra = "".join(f" | {n} {m['acc']:.4f}/{m['balanced_acc']:.4f}" for n, m in per.items())
    log.info(
        "%s epoch %d/%d: train loss %.3f acc %.3f | val acc %.4f bal %.4f f1 %.4f%s"
        " | %.0f s, %.0f img/s%s",
        cfg.arch,
        state.epoch,
        state.planned,
        tr["loss"],
        tr["acc"],
        ev["acc"],
        ev["balanced_acc"],
        ev["macro_f1"],
        extra,
        dt,
        state.history[-1]["train_images_per_s"],
        " *" if improved else "",
    )


def _init_from(model: nn.Module, path: str, arch: str, classes: list[str]) -> None:
    """Start from a fervid checkpoint's weights; a head for other classes is left fresh."""
    state, meta = load_checkpoint(path)
    if meta.arch != arch:
        raise CheckpointError(f"--init {path}: a {meta.arch} checkpoint, but training {arch}")
    if list(meta.classes) != list(classes):
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        log.info("--init: classes differ from the checkpoint's; the head starts fresh")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or len(missing) > 2:
        raise CheckpointError(f"--init {path}: weights do not fit {arch}")


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

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
