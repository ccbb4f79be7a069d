"""Training data from one or several datasets at once.

Each ``--data`` root is a *source* in its own layout (RAF-DB or class folders). Its classes
are mapped onto one class list (fervid's seven emotions, in their standard order, restricted
to those present); its validation split is its own ``val/``, or a stratified part of its
train split held out when it has none (RAF-DB); its ``test/`` split, if any, is kept for the
report and never used for training or model selection. Training images listed in an
exclusion file are left out, and crowd votes (FER+) can replace hard labels as targets.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fervid.emotions import EMOTIONS, canonical

from .data import DataError, DatasetSpec, Split, class_counts, open_dataset

log = logging.getLogger(__name__)

#: Seed of the held-out validation part: fixed, so runs with other seeds select on the same
#: images and never see them in training.
HOLDOUT_SEED = 20261126
EVAL_SPLITS = ("auto", "val", "holdout", "test")


@dataclass
class Source:
    """One dataset of a run, its labels already mapped onto the run's classes."""

    name: str
    root: Path
    layout: str
    train: Split
    val: Split
    val_split: str  # "val", "holdout" or "test": where ``val`` comes from
    test: Split | None
    info: dict = field(default_factory=dict)  # counts recorded in the run's config

    def describe(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.root),
            "layout": self.layout,
            "train": len(self.train),
            "val": len(self.val),
            "val_split": self.val_split,
            "test": len(self.test) if self.test is not None else 0,
            **self.info,
        }


@dataclass
class SoftLabels:
    """Target distributions read from a vote table, keyed by resolved image path."""

    file: Path
    classes: list[str]
    targets: dict[str, np.ndarray]
    too_few: set[str]  # images whose valid votes were too few: left out of training
    dropped_columns: list[str]


def open_sources(
    data: Sequence[str | os.PathLike],
    *,
    eval_split: str = "auto",
    holdout: float = 0.1,
    exclude: Sequence[str | os.PathLike] = (),
    soft_labels: Sequence[str | os.PathLike] = (),
    labels: str = "dataset",
    soft_min_valid: float = 0.5,
    eval_labels: str = "dataset",
    ignore_unknown: bool = False,
) -> tuple[list[str], list[Source]]:
    """Read every ``--data`` root and return the run's class list and its sources."""
    if not data:
        raise DataError("no dataset given (--data)")
    if eval_split not in EVAL_SPLITS:
        raise DataError(f"--eval-split must be one of {', '.join(EVAL_SPLITS)}")
    if not 0 <= holdout < 1:
        raise DataError("--holdout must be in [0, 1)")
    specs = [open_dataset(r, ignore_unknown=ignore_unknown) for r in data]
    names = _unique_names([s.name for s in specs])
    present = {c for s in specs for c in s.classes}
    classes = [e for e in EMOTIONS if e in present]
    excluded = read_exclusions(exclude)
    tables = [read_soft_labels(f, classes, soft_min_valid) for f in soft_labels]
    if labels == "ferplus":
        found = [s.root / "ferplus.csv" for s in specs if (s.root / "ferplus.csv").is_file()]
        if not found:
            raise DataError(
                "--labels ferplus: no ferplus.csv at the root of any --data folder "
                "(FER2013 with FER+ votes); or give --soft-labels CSV"
            )
        tables += [read_soft_labels(f, classes, soft_min_valid) for f in found]
    elif labels != "dataset":
        raise DataError("--labels must be 'dataset' or 'ferplus'")
    if eval_labels not in ("dataset", "majority"):
        raise DataError("--eval-labels must be 'dataset' or 'majority'")
    merged = _merge_tables(tables)
    sources = []
    for spec, name in zip(specs, names):
        sources.append(
            _make_source(spec, name, classes, eval_split, holdout, excluded, merged, eval_labels)
        )
    if exclude:
        matched = sum(s.info.get("excluded", 0) for s in sources)
        log.info("left out %d training images listed in %s", matched, ", ".join(map(str, exclude)))
    return classes, sources


def _unique_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        name, k = n, 2
        while name in out:
            name, k = f"{n}-{k}", k + 1
        out.append(name)
    return out


def _make_source(
    spec: DatasetSpec,
    name: str,
    classes: list[str],
    eval_split: str,
    holdout: float,
    excluded: set[str],
    soft: dict[str, np.ndarray | None],
    eval_labels: str,
) -> Source:
    remap = [classes.index(c) for c in spec.classes]

    def mapped(split: Split) -> Split:
        return Split(list(split.paths), [remap[y] for y in split.labels])

    info: dict = {}
    train = mapped(spec.split("train"))
    keep = [i for i, p in enumerate(train.paths) if _key(p) not in excluded]
    info["excluded"] = len(train) - len(keep)
    train = train.subset(keep)
    which = eval_split
    if which == "auto":
        which = "val" if "val" in spec.splits else "holdout"
    if which == "holdout":
        if holdout <= 0:
            raise DataError(f"{spec.root}: no val split; hold out part of train with --holdout")
        train, val = holdout_split(train, holdout, len(classes))
    else:
        val = mapped(spec.split(which))
        if which == "test":
            log.warning("%s: selecting on the test split: its figures will be optimistic", name)
    test = mapped(spec.splits["test"]) if which != "test" and "test" in spec.splits else None
    if soft:
        train, info["soft_labelled"], info["soft_skipped"] = _apply_soft(train, soft, classes)
        if info["soft_labelled"] == 0:
            train = Split(train.paths, train.labels)  # no votes for this source: hard labels
        if eval_labels == "majority":
            val, _, info["val_skipped"] = _apply_soft(val, soft, classes, majority=True)
            info["val_labels"] = "soft-label majority"
    if len(train) == 0:
        raise DataError(f"{spec.root}: no training images left after exclusions")
    return Source(name, spec.root, spec.layout, train, val, which, test, info)


def holdout_split(split: Split, fraction: float, num_classes: int) -> tuple[Split, Split]:
    """A stratified, seeded part of ``split`` held out: (rest, held-out).

    Each class with at least two images gives ``round(fraction * n)`` of them (at least one,
    and never all), drawn with :data:`HOLDOUT_SEED`.
    """
    rng = np.random.default_rng(HOLDOUT_SEED)
    labels = np.asarray(split.labels)
    held: list[int] = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        held += sorted(rng.choice(idx, size=k, replace=False).tolist())
    held_set = set(held)
    rest = [i for i in range(len(split)) if i not in held_set]
    return split.subset(rest), split.subset(sorted(held))


def _key(path: str | os.PathLike) -> str:
    return os.path.realpath(path)


def read_exclusions(files: Sequence[str | os.PathLike]) -> set[str]:
    """Resolved paths listed in exclusion files (one per line, relative to the file's folder;
    blank lines and ``#`` comments ignored)."""
    out: set[str] = set()
    for f in files:
        f = Path(f)
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"--exclude {f}: cannot read ({type(exc).__name__})") from None
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.add(_key(f.parent / line))
    return out


def read_soft_labels(file: str | os.PathLike, classes: list[str], min_valid: float) -> SoftLabels:
    """Read a vote table: a ``path`` column (relative to the file's folder) and one column
    per class. Columns that are not one of ``classes`` (contempt, unknown, not-a-face) are
    dropped; an image whose kept votes are under ``min_valid`` of all its votes (or zero)
    is listed in ``too_few``."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--soft-labels {file}: cannot read ({type(exc).__name__})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise DataError(f"{file}: empty or not a CSV file") from None
    if "path" not in header:
        raise DataError(f"{file}: no 'path' column (header: {','.join(header)[:80]})")
    pcol = header.index("path")
    cols = {i: canonical(h) for i, h in enumerate(header) if i != pcol}
    keep = {i: classes.index(c) for i, c in cols.items() if c in classes}
    if not keep:
        raise DataError(f"{file}: no column names one of the classes {', '.join(classes)}")
    dropped = [header[i] for i in cols if i not in keep]
    targets: dict[str, np.ndarray] = {}
    too_few: set[str] = set()
    row_reader = _VoteRows(file, pcol, cols, keep, len(classes), min_valid, targets, too_few)
    try:
        for lineno, row in enumerate(reader, start=2):
            row_reader(lineno, row)
    except csv.Error as exc:
        raise DataError(f"{file}: not a readable CSV ({exc})") from None
    log.info(
        "%s: %d images with votes, %d with too few valid votes; dropped columns: %s",
        file,
        len(targets),
        len(too_few),
        ", ".join(dropped) or "none",
    )
    return SoftLabels(file, classes, targets, too_few, dropped)


@dataclass
class _VoteRows:
    """Reads one row of a vote table into ``targets`` or ``too_few``."""

    file: Path
    pcol: int
    cols: dict[int, str | None]
    keep: dict[int, int]
    n: int
    min_valid: float
    targets: dict[str, np.ndarray]
    too_few: set[str]

    def __call__(self, lineno: int, row: list[str]) -> None:
        file = self.file
        if not row or all(not v.strip() for v in row):
            return
        if len(row) != len(self.cols) + 1:
            raise DataError(f"{file}:{lineno}: {len(row)} fields, expected {len(self.cols) + 1}")
        rel = row[self.pcol].strip()
        path = file.parent / rel
        if not rel or not path.is_file():
            raise DataError(f"{file}:{lineno}: image not found: {path}")
        key = _key(path)
        if key in self.targets or key in self.too_few:
            raise DataError(f"{file}:{lineno}: {rel} is listed twice")
        votes = np.zeros(self.n, dtype=np.float64)
        total = 0.0
        for i in self.cols:
            text = row[i].strip()
            try:
                v = float(text) if text else 0.0
            except ValueError:
                raise DataError(f"{file}:{lineno}: not a number: {text[:20]!r}") from None
            if not np.isfinite(v) or v < 0:
                raise DataError(f"{file}:{lineno}: votes must be finite and >= 0, got {text!r}")
            total += v
            if i in self.keep:
                votes[self.keep[i]] += v
        valid = votes.sum()
        if valid <= 0 or valid < self.min_valid * total:
            self.too_few.add(key)
        else:
            self.targets[key] = (votes / valid).astype(np.float32)


def _merge_tables(tables: list[SoftLabels]) -> dict[str, np.ndarray | None]:
    """One mapping path -> target (None: too few valid votes) over every table."""
    merged: dict[str, np.ndarray | None] = {}
    for t in tables:
        for k, v in t.targets.items():
            merged[k] = v
        for k in t.too_few:
            merged[k] = None
    return merged


def _apply_soft(
    split: Split, soft: dict[str, np.ndarray | None], classes: list[str], *, majority=False
) -> tuple[Split, int, int]:
    """Vote targets for the images a table lists (one-hot for the others), their hard label
    the votes' majority; images with too few valid votes are left out. ``majority``: keep
    only the hard labels (evaluation)."""
    eye = np.eye(len(classes), dtype=np.float32)
    keep, rows, labels, labelled = [], [], [], 0
    for i, p in enumerate(split.paths):
        t = soft.get(_key(p), False)
        if t is None:  # too few valid votes
            continue
        keep.append(i)
        if t is False:  # not in any table: its dataset label
            rows.append(eye[split.labels[i]])
            labels.append(split.labels[i])
        else:
            labelled += 1
            rows.append(t)
            labels.append(int(np.argmax(t)))
    paths = [split.paths[i] for i in keep]
    soft_rows = None if majority or not rows else np.stack(rows)
    return Split(paths, labels, soft_rows), labelled, len(split) - len(keep)


def union_train(sources: Sequence[Source], num_classes: int) -> tuple[Split, torch.Tensor]:
    """All sources' training images as one split, and each image's source index."""
    paths, labels, softs, ids = [], [], [], []
    any_soft = any(s.train.soft is not None for s in sources)
    for k, s in enumerate(sources):
        paths += s.train.paths
        labels += s.train.labels
        ids += [k] * len(s.train)
        if any_soft:
            softs.append(
                s.train.soft
                if s.train.soft is not None
                else np.eye(num_classes, dtype=np.float32)[s.train.labels]
            )
    soft = np.concatenate(softs) if any_soft else None
    return Split(paths, labels, soft), torch.tensor(ids, dtype=torch.int64)


def sampling_weights(
    labels: Sequence[int],
    source_ids: torch.Tensor,
    num_classes: int,
    power: float,
    source_power: float,
) -> torch.Tensor:
    """Per-image draw weights over the union: ``n_class ** -power * n_source ** -source_power``
    (class counts over all sources; ``source_power=1`` gives every source an equal share)."""
    labels_t = torch.as_tensor(labels, dtype=torch.int64)
    per_class = torch.tensor(class_counts(labels, num_classes), dtype=torch.float64)
    w = per_class.clamp(min=1)[labels_t] ** -power
    if source_power > 0:
        per_source = torch.bincount(source_ids).double()
        w = w * per_source[source_ids] ** -source_power
    return w
