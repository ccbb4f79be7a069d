"""The checkpoint contract shared by fervid-train (writer) and fervid's inference (reader).

A checkpoint is one ``.safetensors`` file: the model's weights as tensors, and the metadata as
JSON in the safetensors header under the key ``"fervid"``. A training state (``last.pt``,
written by fervid-train for ``--resume``) is also accepted: a plain dict loaded with
``torch.load(weights_only=True)`` holding ``"model"`` (weights) and ``"meta"`` (the same
metadata). Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .calibration import TEMPERATURE_RANGE
from .errors import first_line
from .outputs import atomic_path
from .rows import RowSchema

FORMAT = "fervid-checkpoint"
#: The newest format this fervid reads: 2 added ``class_weights`` (a checkpoint without them
#: is still written as 1, so that older fervid reads it).
FORMAT_VERSION = 2

#: Metadata keys every checkpoint must carry.
REQUIRED = ("arch", "classes", "input_size", "channels", "mean", "std", "crop")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or not a fervid checkpoint."""


@dataclass(frozen=True)
class CropPolicy:
    """How a face crop is cut from a detector box, so crops look like the training crops.

    The crop is a square of side ``scale * max(w, h)`` centred on the box centre moved down
    by ``shift_y * h``; areas outside the image are filled by replicating its edge.
    """

    scale: float = 1.0
    shift_y: float = 0.0

    def __post_init__(self) -> None:
        if not (0.2 <= float(self.scale) <= 5.0):
            raise CheckpointError(f"crop scale must be in [0.2, 5], got {self.scale}")
        if not (-1.0 <= float(self.shift_y) <= 1.0):
            raise CheckpointError(f"crop shift_y must be in [-1, 1], got {self.shift_y}")


@dataclass
class ModelMeta:
    """Validated checkpoint metadata (see the module docstring for the file layout)."""

    arch: str
    classes: list[str]
    input_size: int
    channels: str  # "grayscale" (crops converted to grey, fed as 3 equal channels) or "rgb"
    mean: list[float]
    std: list[float]
    crop: CropPolicy = field(default_factory=CropPolicy)
    tta: str = "none"  # test-time augmentation: "none" or "hflip" (mean with the mirror image)
    temperature: float = 1.0  # applied to the final probabilities (fervid.calibration)
    #: one weight per class, applied to the probabilities before the temperature: a shift of
    #: the class prior (fervid.calibration.reweight; fervid-train calibrate --prior-shift)
    class_weights: list[float] | None = None
    dataset: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    fervid_version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch:
            raise CheckpointError("checkpoint metadata: 'arch' must be a non-empty string")
        if (
            not isinstance(self.classes, list)
            or len(self.classes) < 2
            or not all(isinstance(c, str) and c for c in self.classes)
            or len(set(self.classes)) != len(self.classes)
        ):
            raise CheckpointError("checkpoint metadata: 'classes' must be 2+ distinct names")
        bad = [c for c in self.classes if not _fit_class_name(c)]
        if bad:
            raise CheckpointError(
                f"checkpoint metadata: class name {bad[0][:40]!r} is one of fervid's own columns"
                ", or holds a line break, a control character or a spreadsheet formula sign"
            )
        if not isinstance(self.input_size, int) or not 8 <= self.input_size <= 2048:
            raise CheckpointError("checkpoint metadata: 'input_size' must be an int in [8, 2048]")
        if self.channels not in ("grayscale", "rgb"):
            raise CheckpointError("checkpoint metadata: 'channels' must be 'grayscale' or 'rgb'")
        for key in ("mean", "std"):
            v = getattr(self, key)
            if (
                not isinstance(v, list)
                or len(v) != 3
                or not all(isinstance(x, (int, float)) for x in v)
            ):
                raise CheckpointError(f"checkpoint metadata: '{key}' must be 3 numbers")
        if not all(math.isfinite(x) for x in [*self.mean, *self.std]):
            raise CheckpointError("checkpoint metadata: 'mean' and 'std' must be finite numbers")
        if any(s <= 0 for s in self.std):
            raise CheckpointError("checkpoint metadata: 'std' must be positive")
        if self.tta not in ("none", "hflip"):
            raise CheckpointError("checkpoint metadata: 'tta' must be 'none' or 'hflip'")
        lo, hi = TEMPERATURE_RANGE
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not lo <= t <= hi:
            raise CheckpointError(
                f"checkpoint metadata: 'temperature' must be a number in [{lo}, {hi}]"
            )
        if isinstance(self.crop, dict):
            self.crop = CropPolicy(**self.crop)
        self._check_class_weights()

    def _check_class_weights(self) -> None:
        w = self.class_weights
        if w is None:
            return
        if (
            not isinstance(w, list)
            or len(w) != len(self.classes)
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in w)
            or not all(math.isfinite(x) and x > 0 for x in w)
        ):
            raise CheckpointError(
                "checkpoint metadata: 'class_weights' must be one positive number per class"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": 1 if self.class_weights is None else 2,
            "arch": self.arch,
            "classes": list(self.classes),
            "input_size": self.input_size,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop": {"scale": self.crop.scale, "shift_y": self.crop.shift_y},
            "tta": self.tta,
            "temperature": self.temperature,
            **({} if self.class_weights is None else {"class_weights": list(self.class_weights)}),
            "dataset": self.dataset,
            "metrics": self.metrics,
            "config": self.config,
            "fervid_version": self.fervid_version,
        }

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "checkpoint") -> ModelMeta:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not a fervid checkpoint (no fervid metadata)")
        version = d.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise CheckpointError(
                f"{source}: checkpoint metadata: 'format_version' must be an integer, "
                f"got {str(version)[:20]!r}"
            )
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint format {d.get('format_version')} is newer than this "
                f"fervid understands ({FORMAT_VERSION}); upgrade fervid"
            )
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise CheckpointError(f"{source}: checkpoint metadata lacks {', '.join(missing)}")
        crop = d["crop"]
        if not isinstance(crop, dict):
            raise CheckpointError(f"{source}: checkpoint metadata: 'crop' must be a mapping")
        try:
            return cls(
                arch=d["arch"],
                classes=list(d["classes"])
                if isinstance(d["classes"], (list, tuple))
                else d["classes"],
                input_size=d["input_size"],
                channels=d["channels"],
                mean=[float(x) for x in d["mean"]],
                std=[float(x) for x in d["std"]],
                crop=CropPolicy(float(crop.get("scale", 1.0)), float(crop.get("shift_y", 0.0))),
                tta=str(d.get("tta", "none")),
                temperature=d.get("temperature", 1.0),
                class_weights=d.get("class_weights"),
                dataset=str(d.get("dataset", "")),
                metrics=dict(d.get("metrics") or {}),
                config=dict(d.get("config") or {}),
                fervid_version=str(d.get("fervid_version", "")),
            )
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: invalid checkpoint metadata ({exc})") from None


def save_checkpoint(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    meta: ModelMeta,
    *,
    half: bool = False,
) -> Path:
    """Write weights and metadata as one safetensors file, atomically.

    ``half=True`` stores floating-point weights as fp16 (half the size; they are cast back
    to fp32 when loaded).
    """
    from safetensors.torch import save_file  # PyTorch's side of safetensors: only to write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu()
        if half and v.is_floating_point():
            v = v.half()
        tensors[k] = v.contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"fervid": json.dumps(meta.to_dict())})
        os.chmod(tmp, 0o644)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """Read a checkpoint (``.safetensors``) or a training state (``.pt``); validate it.

    Returns the fp32 state dict and the metadata. Raises :class:`CheckpointError` with a
    one-line message for a missing, corrupt or foreign file.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) < 8:
        raise CheckpointError(f"{path}: file is empty or truncated, not a checkpoint")
    if head[:2] == b"PK" or (head[:1] == b"\x80" and not _safetensors_head(path, head)):
        state, meta = _load_training_state(path)  # torch.save zip / legacy pickle
    else:
        state, meta = _load_safetensors(path)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    broken = next(
        (k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None
    )
    if broken is not None:
        raise CheckpointError(
            f"{path}: weights hold NaN or infinite values ({broken}); not a usable model"
        )
    return state, meta


def _safetensors_head(path: Path, head: bytes) -> bool:
    """Whether a file starts as safetensors does: an 8-byte little-endian header length
    (which may begin with byte 0x80, as a pickle does) followed by that much JSON."""
    n = int.from_bytes(head[:8], "little")
    if not 2 <= n <= min(path.stat().st_size - 8, 100 * 2**20):
        return False
    with open(path, "rb") as fh:
        fh.seek(8)
        return fh.read(1) == b"{"


def _reserved_columns() -> set[str]:
    """Column names of fervid's tables (:mod:`fervid.rows`): a model's classes may not take
    them."""
    return set(RowSchema("video", ()).columns) | set(RowSchema("image", ()).columns)


def _fit_class_name(name: str) -> bool:
    """A class name that can be a column of fervid's tables: not one of its own columns, no
    control characters, no leading spreadsheet formula sign."""
    return (
        name not in _reserved_columns()
        and name.isprintable()
        and name[:1] not in ("=", "+", "-", "@")
        and len(name) <= 64
    )


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    from safetensors import SafetensorError, safe_open  # only when a checkpoint is read

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or not a checkpoint ({first_line(exc)})") from None
    if "fervid" not in header:
        raise CheckpointError(f"{path}: a safetensors file, but not a fervid checkpoint")
    try:
        raw = json.loads(header["fervid"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON") from None
    except RecursionError:
        raise CheckpointError(f"{path}: checkpoint metadata is nested too deeply") from None
    return state, ModelMeta.from_dict(raw, source=str(path))


#: A training state may unpack to at most this many times its size (torch stores tensors
#: uncompressed: about 1); beyond it, a zip bomb, refused before it is unpacked.
MAX_UNPACK_RATIO = 50


def _check_unpacked_size(path: Path) -> None:

    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not a zip (legacy pickle): torch.load says what it is
    if unpacked > MAX_UNPACK_RATIO * path.stat().st_size + 64 * 2**20:
        raise CheckpointError(
            f"{path}: unpacks to {unpacked / 2**30:.1f} GiB from "
            f"{path.stat().st_size / 2**20:.1f} MiB; not a checkpoint fervid wrote"
        )


def _load_training_state(path: Path) -> tuple[dict[str, torch.Tensor], ModelMeta]:

    _check_unpacked_size(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to be a checkpoint") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: holds pickled Python objects, which fervid never loads (only tensors "
            "and plain data); re-save the weights with fervid-train export"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt/foreign file
        raise CheckpointError(f"{path}: corrupt or not a checkpoint ({first_line(exc)})") from None
    if not isinstance(obj, dict) or "model" not in obj or "meta" not in obj:
        raise CheckpointError(f"{path}: a torch file, but not a fervid checkpoint")
    state = obj["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: checkpoint weights are not a tensor dict")
    return state, ModelMeta.from_dict(obj["meta"], source=str(path))
