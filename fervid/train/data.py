"""Datasets for fervid-train: RAF-DB's official layout and class-per-folder trees.

Images are decoded once into uint8 tensors held in memory when they fit (``cache="memory"``),
or streamed from disk through a DataLoader with workers (``cache="stream"``). Either way a
batch is ``(uint8 BxCxSxS, int64 labels)``; augmentation happens later, on the batch.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from fervid.emotions import EMOTIONS, canonical
from fervid.images import IMAGE_EXTS, ImageError, load_image
from fervid.preprocess import channel_count, prepare_crop

log = logging.getLogger(__name__)

RAFDB_LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
#: Above this many bytes of decoded images, ``cache="auto"`` streams from disk.
MEMORY_LIMIT_BYTES = 3 * 1024**3


class DataError(ValueError):
    """A dataset problem the user must fix; its message is one line."""


@dataclass
class Split:
    """One split of a dataset: image paths and integer labels (indices into ``classes``).

    ``soft``, when set, holds one target distribution per image (N x classes, rows summing
    to 1): crowd votes to train on instead of the one-hot ``labels``.
    """

    paths: list[Path]
    labels: list[int]
    soft: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: Sequence[int]) -> Split:
        """The images at positions ``keep``, in that order."""
        keep = list(keep)
        return Split(
            [self.paths[i] for i in keep],
            [self.labels[i] for i in keep],
            None if self.soft is None else self.soft[keep],
        )

    def relabel(self, classes: Sequence[str], target: Sequence[str], where: str = "") -> Split:
        """The same images with labels that index ``target`` instead of ``classes`` (a
        model's class list); a class ``target`` lacks is a :class:`DataError`."""
        unknown = [c for c in classes if c not in target]
        if unknown:
            raise DataError(
                f"{where}classes {', '.join(unknown)} are not among the checkpoint's "
                f"({', '.join(target)})"
            )
        remap = [list(target).index(c) for c in classes]
        return Split(list(self.paths), [remap[y] for y in self.labels])


@dataclass
class DatasetSpec:
    """A dataset found on disk: its layout, class names and splits."""

    name: str
    root: Path
    layout: str  # "rafdb" or "folders"
    classes: list[str]
    splits: dict[str, Split] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(
                f"{self.root}: no '{name}' split (has: {', '.join(sorted(self.splits))})"
            )
        return self.splits[name]

    @property
    def eval_split(self) -> str:
        """The split used for validation: 'val' if present, else 'test'."""
        for name in ("val", "test"):
            if name in self.splits:
                return name
        raise DataError(f"{self.root}: no 'val' or 'test' split to evaluate on")


def open_dataset(root: str | os.PathLike, *, ignore_unknown: bool = False) -> DatasetSpec:
    """Find and read a dataset at ``root`` (RAF-DB layout or class folders)."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset root not found: {root}")
    if not root.is_dir():
        raise DataError(f"dataset root is not a folder: {root}")
    if (root / RAFDB_LABEL_FILE).exists() or (root / "EmoLabel").is_dir():
        return read_rafdb(root)
    if (root / "train").is_dir():
        return read_folders(root, ignore_unknown=ignore_unknown)
    raise DataError(
        f"{root}: not a dataset root: expected RAF-DB's {RAFDB_LABEL_FILE} "
        "or class folders under train/ and val/ (or test/)"
    )


_LABEL_LINE = re.compile(
    r"^(?P<name>(?P<split>train|test)_\d+)\.(?:jpg|jpeg|png)\s+(?P<label>[1-7])$"
)


def read_rafdb(root: str | os.PathLike) -> DatasetSpec:
    """RAF-DB basic: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned/<stem>_aligned.jpg``."""
    root = Path(root)
    label_file = root / RAFDB_LABEL_FILE
    if not label_file.is_file():
        raise DataError(f"{root}: RAF-DB label file missing: {label_file}")
    image_dir = root / "Image" / "aligned"
    if not image_dir.is_dir():
        raise DataError(f"{root}: RAF-DB image folder missing: {image_dir}")
    splits: dict[str, Split] = {"train": Split([], []), "test": Split([], [])}
    for split, name, label in parse_rafdb_labels(label_file):
        splits[split].paths.append(image_dir / f"{name}_aligned.jpg")
        splits[split].labels.append(label)
    for name, split in splits.items():
        missing = [p for p in split.paths if not p.is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(
                f"{root}: image listed in {RAFDB_LABEL_FILE} but missing: "
                f"{missing[0]}{more} [{name} split]"
            )
    spec = DatasetSpec("rafdb", root, "rafdb", list(EMOTIONS), splits)
    _check_classes(spec)
    return spec


def parse_rafdb_labels(label_file: Path):
    """Yield (split, stem, label 0..6) per line of RAF-DB's label file (CRLF or LF)."""
    text = label_file.read_bytes().decode("utf-8", errors="replace")
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        m = _LABEL_LINE.match(line)
        if not m:
            raise DataError(
                f"{label_file}:{lineno}: malformed label line {line[:60]!r} "
                "(expected e.g. 'train_00001.jpg 5', labels 1..7)"
            )
        yield m["split"], m["name"], int(m["label"]) - 1


def read_folders(root: str | os.PathLike, *, ignore_unknown: bool = False) -> DatasetSpec:
    """Class-per-folder: ``train/<class>/*`` and ``val/<class>/*`` (or ``test/``)."""
    root = Path(root)
    split_dirs = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" not in split_dirs:
        raise DataError(f"{root}: no train/ folder")
    found: dict[str, dict[str, list[Path]]] = {}
    for split, d in split_dirs.items():
        found[split] = {}
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):
            name = canonical(sub.name)
            if name is None:
                if ignore_unknown:
                    log.warning("ignoring folder %s: not one of the seven emotions", sub)
                    continue
                raise DataError(
                    f"{sub}: folder name '{sub.name}' is not one of the seven emotions "
                    f"({', '.join(EMOTIONS)}); rename it or pass --ignore-unknown"
                )
            files = sorted(
                p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file()
            )
            found[split].setdefault(name, []).extend(files)
    names = set()
    for per in found.values():
        names.update(per)
    if not names:
        raise DataError(f"{root}/train: no class folders found")
    classes = [e for e in EMOTIONS if e in names]
    splits = {}
    for split, per in found.items():
        paths, labels = [], []
        for i, c in enumerate(classes):
            for p in per.get(c, []):
                paths.append(p)
                labels.append(i)
        splits[split] = Split(paths, labels)
    spec = DatasetSpec(root.name or "folders", root, "folders", classes, splits)
    _check_classes(spec)
    return spec


def _check_classes(spec: DatasetSpec) -> None:
    train = spec.splits["train"]
    if len(train) == 0:
        raise DataError(f"{spec.root}: the train split has no images")
    counts = class_counts(train.labels, len(spec.classes))
    for c, n in zip(spec.classes, counts):
        if n == 0:
            raise DataError(f"{spec.root}: class '{c}' has no examples in the train split")


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    """Number of examples per class."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).tolist()


def detect_channels(paths: Sequence[Path], sample: int = 64) -> str:
    """'grayscale' when the sampled images are all single-channel, else 'rgb'."""
    step = max(1, len(paths) // sample)
    for p in list(paths)[::step][:sample]:
        try:
            with Image.open(p) as im:
                if im.mode not in ("L", "I;16", "I", "1", "LA"):
                    return "rgb"
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{p}: cannot read image ({exc})") from None
    return "grayscale"


def decode_image(path: Path, size: int, channels: str) -> np.ndarray:
    """Read one image file as the model's uint8 CxSxS input; DataError if unreadable.

    Decoded by :func:`fervid.images.load_image`, the decoder inference uses (EXIF orientation
    applied, transparency composited on white, 16-bit and palette images converted), then
    :func:`fervid.preprocess.prepare_crop`: training sees the pixels inference will see.
    """
    try:
        image = load_image(path)
    except ImageError as exc:
        raise DataError(f"{path}: {exc}") from None
    return prepare_crop(image, size, channels)


def decode_all(
    paths: Sequence[Path], size: int, channels: str, *, threads: int = 4, progress: bool = False
) -> torch.Tensor:
    """Decode images once into a uint8 NxCxSxS tensor."""
    c = channel_count(channels)
    out = torch.empty((len(paths), c, size, size), dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        it = pool.map(lambda p: decode_image(p, size, channels), paths, chunksize=64)
        for i, arr in enumerate(
            tqdm(
                it, total=len(paths), desc="decoding", unit="img", disable=not progress, leave=False
            )
        ):
            out[i] = torch.from_numpy(arr)
    return out


class FileImages(torch.utils.data.Dataset):
    """Streams images from disk; an unreadable one is reported, not raised in the worker.
    Each item's label is its class index, or (``by_index``) its position, for targets that
    the batching looks up (soft labels, carried rows: ``SplitData.by_index``)."""

    def __init__(self, split: Split, size: int, channels: str, by_index: bool) -> None:
        self.split, self.size, self.channels, self.by_index = split, size, channels, by_index

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        c = channel_count(self.channels)
        try:
            arr = torch.from_numpy(decode_image(self.split.paths[i], self.size, self.channels))
            err = ""
        except DataError as exc:
            arr = torch.zeros((c, self.size, self.size), dtype=torch.uint8)
            err = str(exc)
        label = i if self.by_index else self.split.labels[i]
        return arr, label, err


def _collate(items):
    errors = [e for _, _, e in items if e]
    if errors:
        return None, None, errors[0]
    x = torch.stack([a for a, _, _ in items])
    y = torch.tensor([lab for _, lab, _ in items], dtype=torch.int64)
    return x, y, ""


class SplitData:
    """A split ready for batching, held in memory or streamed (see module docstring)."""

    def __init__(
        self,
        split: Split,
        size: int,
        channels: str,
        *,
        cache: str = "auto",
        workers: int = 2,
        progress: bool = False,
    ) -> None:
        self.split, self.size, self.channels, self.workers = split, size, channels, workers
        # what a batch carries besides the images: class indices, or target distributions
        self.labels = (
            torch.tensor(split.labels, dtype=torch.int64)
            if split.soft is None
            else torch.as_tensor(split.soft, dtype=torch.float32)
        )
        c = channel_count(channels)
        nbytes = len(split) * c * size * size
        if cache == "auto":
            cache = "memory" if nbytes <= MEMORY_LIMIT_BYTES else "stream"
        if cache not in ("memory", "stream"):
            raise DataError(f"unknown cache mode {cache!r}")
        self.cache = cache
        self.by_index = split.soft is not None  # targets looked up by position (see carry)
        self.images = (
            decode_all(split.paths, size, channels, threads=max(2, workers * 2), progress=progress)
            if cache == "memory"
            else None
        )

    def __len__(self) -> int:
        return len(self.split)

    def carry(self, extra: torch.Tensor, num_classes: int) -> SplitData:
        """Make each image's target ``[class distribution | extra row]`` (float, N x (C + E)):
        what must travel with an image through mixing (a per-image logit adjustment)."""
        dist = self.labels.float()
        if not self.labels.is_floating_point():
            dist = torch.nn.functional.one_hot(self.labels, num_classes).float()
        self.labels = torch.cat([dist, extra.to(dist.device, torch.float32)], dim=1)
        self.by_index = True
        return self

    def to(self, device: torch.device) -> SplitData:
        """Hold the decoded images (and labels) on ``device``: no copy per batch on a GPU."""
        if self.images is not None:
            self.images = self.images.to(device)
            self.labels = self.labels.to(device)
        return self

    def batches(
        self, indices: Sequence[int] | torch.Tensor, batch_size: int, *, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(uint8 images, labels)`` batches in the order of ``indices``.

        ``drop_last`` leaves out a final incomplete batch (training: BatchNorm cannot take a
        batch of one, and each epoch draws a new order anyway).
        """
        idx = torch.as_tensor(indices, dtype=torch.int64)
        if drop_last and len(idx) >= batch_size:
            idx = idx[: len(idx) - len(idx) % batch_size]
        if self.images is not None:
            idx = idx.to(self.images.device)
            for s in range(0, len(idx), batch_size):
                b = idx[s : s + batch_size]
                yield self.images[b], self.labels[b]
            return
        ds = FileImages(self.split, self.size, self.channels, self.by_index)
        sampler = torch.utils.data.BatchSampler(idx.tolist(), batch_size, drop_last=False)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=self.workers,
            collate_fn=_collate,
            persistent_workers=False,
            prefetch_factor=4 if self.workers else None,
        )
        for x, y, err in loader:
            if err:
                raise DataError(err)
            yield x, (self.labels[y] if self.by_index else y)


def balanced_weights(
    labels: Sequence[int] | torch.Tensor, num_classes: int, power: float = 1.0
) -> torch.Tensor:
    """Per-example sampling weights, ``count ** -power`` of the example's class.

    ``power=1`` draws each class equally often (the study's sampler); ``0.5`` halfway.
    """
    labels = torch.as_tensor(labels, dtype=torch.int64)
    counts = torch.bincount(labels, minlength=num_classes).double()
    per_class = torch.where(counts > 0, counts.clamp(min=1) ** -power, torch.zeros_like(counts))
    return per_class[labels]


def class_loss_weights(labels: Sequence[int], num_classes: int, power: float = 1.0) -> torch.Tensor:
    """Class weights for the loss, ``count ** -power``, normalised to a mean of 1."""
    counts = torch.tensor(class_counts(labels, num_classes), dtype=torch.float64).clamp(min=1)
    w = counts**-power
    return (w / w.mean()).float()


def logit_adjustment(
    labels: Sequence[int],
    num_classes: int,
    tau: float,
    draw_weights: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """What the loss adds to the logits (Menon et al., 2021) so that they learn the class prior
    ``count ** (1 - tau)`` whatever the sampler draws: ``log q_draw - (1 - tau) log q_count``,
    where ``q_draw`` is the class share of the draws (``draw_weights`` per image, or the counts
    when the data are shuffled) and ``q_count`` the share of the images.

    With ``groups`` (each image's dataset index) the draws' share is taken per group: one row
    per group (G x C), so that the logits learn the same prior whichever group an image
    comes from."""
    labels_t = torch.as_tensor(labels, dtype=torch.int64)
    counts = torch.tensor(class_counts(labels, num_classes), dtype=torch.float64).clamp(min=1)
    q_count = counts / counts.sum()
    w = torch.ones(len(labels_t), dtype=torch.float64) if draw_weights is None else draw_weights
    g = torch.zeros_like(labels_t) if groups is None else torch.as_tensor(groups)
    rows = []
    for k in range(int(g.max()) + 1 if len(g) else 1):
        mine = g == k
        draws = torch.zeros(num_classes, dtype=torch.float64)
        draws.index_add_(0, labels_t[mine], w[mine].double())
        q_draw = draws.clamp(min=1e-12) / draws.sum().clamp(min=1e-12)
        rows.append((q_draw.log() - (1 - tau) * q_count.log()).float())
    return rows[0] if groups is None else torch.stack(rows)


class EpochSampler:
    """The order of one epoch's examples, derived only from ``(seed, epoch)``.

    ``mode="balanced"`` draws ``num_samples`` indices with replacement, weighted inverse to
    class frequency (the study's WeightedRandomSampler) unless ``weights`` are given;
    ``"shuffle"`` permutes. With
    ``world_size > 1`` every rank draws the same full list and keeps every ``world_size``-th
    entry from its rank on: the distributed form of the weighted sampler.
    """

    def __init__(
        self,
        labels: Sequence[int] | torch.Tensor,
        num_classes: int,
        *,
        mode: str,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        power: float = 1.0,
        weights: torch.Tensor | None = None,
    ) -> None:
        if mode not in ("balanced", "shuffle"):
            raise ValueError(f"sampler mode must be 'balanced' or 'shuffle', got {mode!r}")
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.mode, self.seed, self.rank, self.world = mode, seed, rank, world_size
        self.weights = (
            balanced_weights(self.labels, num_classes, power)
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float64)
        )
        self.num_samples = int(math.ceil(len(self.labels) / world_size)) * world_size

    def indices(self, epoch: int) -> torch.Tensor:
        """This rank's share of the epoch's draw."""
        return self.full_indices(epoch)[self.rank :: self.world]

    def full_indices(self, epoch: int) -> torch.Tensor:
        """The whole epoch's draw, the same on every rank."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        n = len(self.labels)
        if self.mode == "balanced":
            idx = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)
        else:
            idx = torch.randperm(n, generator=g)
            if self.num_samples > n:
                idx = torch.cat([idx, idx[: self.num_samples - n]])
        return idx
