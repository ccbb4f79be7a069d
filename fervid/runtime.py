"""Where a model runs: device choice, mixed precision and channels_last, decided in one place
for training and inference alike."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .calibration import readout
from .preprocess import normalize


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, then mps, else cpu; otherwise the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r}: not a device fervid runs on (cpu, cuda, cuda:N, mps)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(f"device {name!r} requested but MPS is not available")
    return dev


def _hidden_by_isa_cap(word: str) -> bool:
    """Whether ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below the ISAs whose names hold ``word``
    (``AVX2`` or ``AVX512_CORE`` hide ``AMX`` and ``BF16``; unset or ``ALL`` hide nothing)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return bool(isa) and isa != "ALL" and word not in isa


def _cpu_flag(flag: str) -> bool:
    """Whether the kernel lists ``flag`` among this CPU's flags (False where it cannot tell)."""
    try:
        with open("/proc/cpuinfo") as fh:
            return any(line.startswith("flags") and f" {flag}" in line for line in fh)
    except OSError:
        return False


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (bf16 matrix units: Sapphire Rapids and later).

    Asks PyTorch (a private function, which may go away) and, failing that, the kernel's
    list of CPU flags. ``ONEDNN_MAX_CPU_ISA`` set below AMX (``AVX2``, ``AVX512_CORE``...)
    hides it, as it hides it from oneDNN: the CPU then runs as one without AMX."""
    if _hidden_by_isa_cap("AMX"):
        return False
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        if check is not None:
            return bool(check())
    except RuntimeError:
        pass
    return _cpu_flag("amx_tile")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively: AMX tiles, or AVX-512 with its bf16 dot
    products (``avx512_bf16``: Intel Cooper Lake, AMD Zen 4 and later). Without either,
    oneDNN emulates bf16 and it is slower than fp32 (docs/video.md). ``ONEDNN_MAX_CPU_ISA``
    set below them (``AVX2``, ``AVX512_CORE``...) hides them, as it hides them from oneDNN."""
    return cpu_has_amx() or (not _hidden_by_isa_cap("BF16") and _cpu_flag("avx512_bf16"))


@dataclass
class Runtime:
    """Device, autocast dtype and memory format, decided once.

    ``amp``: "auto" (bf16 on CUDA if supported else fp16; on CPU bf16 where it computes bf16
    natively: AMX or AVX-512 bf16, else off), "bf16", "fp16" or "off". bf16 changes
    probabilities in their last digits (under 0.03 in the tests), not the top class on real
    faces; ``amp="off"`` gives fp32.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @classmethod
    def create(
        cls, device: str = "auto", amp: str = "auto", channels_last: bool | None = None
    ) -> Runtime:
        dev = resolve_device(device)
        if amp == "auto":
            if dev.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.bfloat16 if cpu_has_native_bf16() else None
        elif amp == "bf16":
            dtype = torch.bfloat16
        elif amp == "fp16":
            if dev.type == "cpu":
                raise ValueError("fp16 autocast is for GPUs; use --amp bf16 on CPU")
            dtype = torch.float16
        elif amp in ("off", "none", "no"):
            dtype = None
        else:
            raise ValueError(f"unknown amp mode {amp!r} (auto, bf16, fp16, off)")
        if channels_last is None:
            # channels_last pays everywhere measured: CUDA, bf16, and fp32 on CPUs too
            # (docs/video.md: 8.1 -> 7.1 ms per face here, 13.4 -> 8.0 on an AVX2-only CPU)
            channels_last = dev.type in ("cuda", "cpu")
        return cls(dev, dtype, channels_last)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, images: torch.Tensor, mean, std) -> torch.Tensor:
        """uint8 BxCxHxW -> normalised float on the device, in the chosen memory format."""
        x = normalize(images.to(self.device, non_blocking=True), mean, std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def describe(self) -> str:
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return f"{self.device} {amp}{' channels_last' if self.channels_last else ''}"

    def probabilities(
        self,
        module: nn.Module,
        x: torch.Tensor,
        tta: str = "none",
        temperature: float = 1.0,
        class_weights: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Softmax probabilities (float32) of a prepared batch; ``tta="hflip"`` averages them
        with those of the mirrored batch; then the model's ``class_weights`` and
        ``temperature`` are applied (:mod:`fervid.calibration`). Training's evaluator and
        inference both use this."""
        check_tta(tta)
        with self.autocast():
            logits = module(x)
        flipped = None
        if tta == "hflip":
            with self.autocast():
                flipped = module(torch.flip(x, dims=[3]))
        return combine_probabilities(logits, flipped, temperature, class_weights)


def check_tta(tta: str) -> None:
    if tta not in ("none", "hflip"):
        raise ValueError(f"unknown test-time augmentation {tta!r} (none, hflip)")


def combine_probabilities(
    logits: torch.Tensor,
    flipped: torch.Tensor | None,
    temperature: float,
    class_weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Softmax of the logits, averaged with the mirrored batch's (when given), then the
    model's class weights and temperature: every runtime's probabilities end here."""
    probs = torch.softmax(logits.float(), dim=1)
    if flipped is not None:
        probs = (probs + torch.softmax(flipped.float(), dim=1)) / 2
    return readout(probs, class_weights, temperature)
