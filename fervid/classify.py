"""The emotion classifier: a checkpoint's model, its crops and its probabilities."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .architectures import build_model
from .checkpoint import CheckpointError, CropPolicy, ModelMeta, load_checkpoint
from .compiled import CompiledClassifier, compile_for_cpu, int8_path
from .errors import first_line
from .faces import Faces
from .preprocess import channel_count, normalize, prepare_crop, square_crop
from .runtime import Runtime

log = logging.getLogger(__name__)

#: The model fervid uses when none is given (trained with fervid-train on FER2013 with FER+
#: votes, RAF-DB and AffectNet; docs/default-model.md).
DEFAULT_MODEL = Path(__file__).parent / "models" / "default.safetensors"


def crop_box(image: np.ndarray, box: Sequence[float], policy: CropPolicy) -> np.ndarray:
    """Cut the square crop the policy defines around a detector box (edges replicated)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    side = max(2.0, policy.scale * max(bw, bh))
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2 + policy.shift_y * bh
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return square_crop(image, left, top, int(round(side)))


def fold_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """The same network with each convolution's batch norm folded into its weights (an
    inference-only rewrite: the same function in fewer operations, 14% faster for ResNet18
    in bf16 on CPU). Networks torch.fx cannot trace are returned as they are."""
    from torch.fx.experimental.optimization import fuse  # torch.fx loads slowly: only to fold

    try:
        return fuse(module.eval())
    except Exception:  # noqa: BLE001 - untraceable: keep the network unfused
        log.debug("batch norm not folded (torch.fx could not trace the network)")
        return module


class EmotionModel:
    """A loaded checkpoint: the network, its metadata, and where it runs. ``module`` may be
    a function that builds the network: it is built when first needed (never, where OpenVINO
    runs the checkpoint's int8 copy: building it imports torchvision, 1.4 s). ``state``: the
    checkpoint's weights, for :attr:`fingerprint` without the network."""

    def __init__(
        self,
        module: torch.nn.Module | Callable[[], torch.nn.Module],
        meta: ModelMeta,
        runtime: Runtime,
        source: str = "",
        compiled: CompiledClassifier | None = None,
        *,
        state: dict | None = None,
    ) -> None:
        self.meta, self.runtime, self.source, self.compiled = meta, runtime, source, compiled
        self._state = state
        self._built: torch.nn.Module | None = None
        self._build = None if isinstance(module, torch.nn.Module) else module
        if self._build is None:
            self._built = runtime.prepare_model(fold_batchnorm(module.eval()))

    @property
    def module(self) -> torch.nn.Module:
        """The network, ready to run (batch norm folded, on the runtime's device)."""
        if self._built is None:
            self._built = self.runtime.prepare_model(fold_batchnorm(self._build().eval()))
        return self._built

    @module.setter
    def module(self, module: torch.nn.Module) -> None:
        self._built = module

    def describe(self) -> str:
        """Where and how the network runs (``cpu openvino int8``, ``cuda bf16 ...``)."""
        return self.compiled.describe() if self.compiled else self.runtime.describe()

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta.classes)

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def fingerprint(self) -> str:
        """A short digest of the weights and metadata: the same model gives the same string."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256(json.dumps(self.meta.to_dict(), sort_keys=True).encode())
            state = self._state if self._state is not None else self.module.state_dict()
            for k, v in state.items():
                h.update(k.encode())
                h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def crops(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """uint8 (N, C, S, S) model inputs for the faces of one RGB image."""
        c = channel_count(self.meta.channels)
        s = self.meta.input_size
        if len(faces) == 0:
            return np.zeros((0, c, s, s), np.uint8)
        return np.stack(
            [
                prepare_crop(crop_box(image, b, self.meta.crop), s, self.meta.channels)
                for b in faces.boxes
            ]
        )

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """A whole image taken as one face crop (``--crops``): uint8 (C, S, S)."""
        return prepare_crop(image, self.meta.input_size, self.meta.channels)

    @torch.inference_mode()
    def predict(self, crops: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, C) float32 for uint8 crops (N, C, S, S)."""
        x_all = torch.as_tensor(crops)
        if len(x_all) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = []
        meta = self.meta
        for s in range(0, len(x_all), batch_size):
            if self.compiled is not None:  # on the CPU, in the network's own (NCHW) layout
                x = normalize(x_all[s : s + batch_size], meta.mean, meta.std)
                p = self.compiled.probabilities(x, meta.tta, meta.temperature, meta.class_weights)
            else:
                x = self.runtime.prepare_input(x_all[s : s + batch_size], meta.mean, meta.std)
                p = self.runtime.probabilities(
                    self.module, x, meta.tta, meta.temperature, meta.class_weights
                )
            out.append(p.cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def classify(
        self, images: Sequence[np.ndarray], faces: Sequence[Faces], batch_size: int = 256
    ) -> list[Faces]:
        """Classify every face of several images in one pass; returns Faces with probs."""
        crops = [self.crops(img, f) for img, f in zip(images, faces)]
        counts = [len(c) for c in crops]
        flat = np.concatenate(crops) if sum(counts) else np.zeros((0,), np.uint8)
        probs = (
            self.predict(flat, batch_size)
            if sum(counts)
            else np.zeros((0, len(self.classes)), np.float32)
        )
        out, k = [], 0
        for f, n in zip(faces, counts):
            out.append(f.with_probs(probs[k : k + n], self.classes))
            k += n
        return out


def _network(ckpt: Path, meta: ModelMeta, state: dict) -> torch.nn.Module:
    """The checkpoint's network with its weights."""
    try:
        module = build_model(meta.arch, len(meta.classes))
        module.load_state_dict(state)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"{ckpt}: weights do not fit architecture {meta.arch} ({first_line(exc, 120)})"
        ) from None
    return module


#: Which runtime runs the classifier: "auto" (the default: OpenVINO on a CPU, int8 for the
#: bundled model, PyTorch on a GPU or where OpenVINO is missing or cannot compile the network),
#: "torch" (always PyTorch) or "openvino" (OpenVINO or an error). docs/video.md: why.
BACKENDS = ("auto", "torch", "openvino")


def load_model(
    path: str | Path | None = None,
    *,
    device: str = "auto",
    amp: str = "auto",
    backend: str = "auto",
) -> EmotionModel:
    """Load a fervid checkpoint (default: the bundled model) ready for inference.
    ``backend``: on a CPU the network is compiled by OpenVINO (:mod:`fervid.compiled`: int8
    for the bundled model, 4x faster than PyTorch on a CPU without AMX) unless it is
    ``"torch"``; ``"openvino"`` refuses to fall back to PyTorch (see :data:`BACKENDS`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")

    ckpt = Path(path) if path is not None else DEFAULT_MODEL
    state, meta = load_checkpoint(ckpt)
    build = functools.partial(_network, ckpt, meta, state)
    runtime = Runtime.create(device, amp, channels_last=None)
    on_cpu = backend != "torch" and runtime.device.type == "cpu"
    # the network is built now (a checkpoint that does not fit fails here) unless OpenVINO
    # runs the checkpoint's int8 copy: then only if something asks for it
    lazy = on_cpu and int8_path(ckpt).is_file()
    model = EmotionModel(build if lazy else build(), meta, runtime, str(ckpt), state=state)
    if on_cpu:
        model.compiled = compile_for_cpu(lambda: model.module, ckpt, meta.input_size, amp)
    if backend == "openvino" and model.compiled is None:
        raise ValueError(
            "backend 'openvino': OpenVINO is not installed (pip install openvino) "
            "or cannot run here"
        )
    log.debug(
        "model %s (%s, %d px %s) on %s",
        ckpt,
        meta.arch,
        meta.input_size,
        meta.channels,
        model.describe(),
    )
    return model
