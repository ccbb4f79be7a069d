"""The classifier compiled by OpenVINO for CPUs (the default there, ``backend="auto"``): int8
where a quantized copy of the checkpoint sits beside it (the bundled model has one), else the
network converted as it is.

Measured on this project's 2-core Xeon (``python bench/classifier.py``; docs/video.md), ms
per face at batch 64 with the mirror image: PyTorch 1.95 (bf16, AMX) / 9.8 (fp32, as an
AVX2-only CPU); OpenVINO int8 0.86 / 4.1, with the test-split accuracies unchanged. PyTorch
runs the network on GPUs, for training, where asked (``backend="torch"``) and where OpenVINO
is missing or cannot compile it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .errors import first_line
from .preprocess import normalize
from .runtime import check_tta, combine_probabilities

log = logging.getLogger(__name__)

#: Where the quantized copy of a checkpoint is looked for: ``NAME.int8.xml`` (and ``.bin``).
INT8_SUFFIX = ".int8.xml"
#: The run-time information key that names the checkpoint a quantized copy was made from.
DIGEST_KEY = ["fervid", "checkpoint_sha256"]


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def int8_path(checkpoint: str | Path) -> Path:
    p = Path(checkpoint)
    return p.with_name(p.stem + INT8_SUFFIX)


class CompiledClassifier:
    """A network compiled by OpenVINO: probabilities of prepared (normalised, NCHW float32)
    batches, with the mirror image and the temperature as
    :meth:`fervid.runtime.Runtime.probabilities` applies them."""

    def __init__(self, compiled, kind: str) -> None:
        self.compiled = compiled
        self.kind = kind  # "int8" or "converted"

    def describe(self) -> str:
        return f"cpu openvino {self.kind}"

    def probabilities(
        self, x: torch.Tensor, tta: str, temperature: float, class_weights=None
    ) -> torch.Tensor:
        """As :meth:`fervid.runtime.Runtime.probabilities` for a normalised NCHW batch: the
        batch and its mirror image in one inference."""
        check_tta(tta)
        n = len(x)
        batch = torch.cat([x, torch.flip(x, dims=[3])]) if tta == "hflip" else x
        request = self.compiled.create_infer_request()  # one per call: safe across threads
        out = request.infer([np.ascontiguousarray(batch.numpy(), np.float32)])[0]
        logits = torch.from_numpy(np.array(out, np.float32))
        flipped = logits[n:] if tta == "hflip" else None
        return combine_probabilities(logits[:n], flipped, temperature, class_weights)


def compile_for_cpu(
    module: Callable[[], torch.nn.Module], checkpoint: str | Path, input_size: int, amp: str
) -> CompiledClassifier | None:
    """The checkpoint's network compiled by OpenVINO (its int8 copy when there is one made
    from exactly this file; else ``module()``, the network, converted), or None where
    OpenVINO is missing or fails: then PyTorch runs it. ``amp``: "off" asks for fp32 in the
    layers that are not int8, "bf16" for bf16; "auto" lets OpenVINO choose (bf16 on CPUs
    with AMX)."""
    try:
        import openvino as ov  # a second to import: only on the CPU path
    except ImportError:
        log.debug("OpenVINO is not installed: the classifier runs in PyTorch")
        return None
    config = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
    cache = cache_dir()
    if cache is not None:
        config["CACHE_DIR"] = str(cache)
    if amp in ("off", "none", "no"):
        config["INFERENCE_PRECISION_HINT"] = "f32"
    elif amp == "bf16":
        config["INFERENCE_PRECISION_HINT"] = "bf16"
    core = _core()
    try:
        network, kind = _quantized(core, checkpoint), "int8"
        if network is None:
            network, kind = _converted(ov, module(), input_size), "converted"
        return CompiledClassifier(_compile(core, network, config), kind)
    except Exception as exc:  # noqa: BLE001 - any failure: PyTorch runs the network
        log.warning(
            "OpenVINO could not compile the classifier (%s): PyTorch runs it", first_line(exc)
        )
        return None


def _compile(core, network, config: dict):
    """Compiled with the cache; where the cache fails it (a full disk, a folder made
    read-only), compiled again without it."""
    try:
        return core.compile_model(network, "CPU", config)
    except Exception as exc:  # noqa: BLE001 - then without the cache, which is optional
        if "CACHE_DIR" not in config:
            raise
        log.debug("OpenVINO's cache failed (%s): compiling without it", first_line(exc))
        return core.compile_model(
            network, "CPU", {k: v for k, v in config.items() if k != "CACHE_DIR"}
        )


def cache_dir() -> Path | None:
    """Where OpenVINO keeps the compiled classifier between runs (a second run starts without
    compiling it): ``$FERVID_CACHE`` or the user's cache folder (``$XDG_CACHE_HOME`` or
    ``~/.cache``) + ``fervid/openvino``; safe to delete, shared by concurrent runs (OpenVINO
    names each blob by the model and settings, and writes it whole before use). None (no
    cache) where it cannot be made; ``FERVID_CACHE=""`` turns it off."""
    root = os.environ.get("FERVID_CACHE")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "fervid")
    if not root:
        return None
    path = Path(root) / "openvino"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


@functools.cache
def _core():
    """One OpenVINO runtime for the process, kept until it exits. Each runtime's CPU plugin
    gives the thread that first compiles with it an alternate signal stack of its own and,
    when the runtime is freed, unmaps it and puts back the stack it found: with two runtimes
    freed in the other order (or freed on another thread), a thread was left with an unmapped
    signal stack, and the next signal it handled (a child process ending, with PyTorch's
    DataLoader handler for SIGCHLD installed) killed the process with SIGSEGV."""
    import openvino as ov  # a second to import: only on the CPU path

    core = ov.Core()
    core.set_property({"ENABLE_MMAP": False})  # weights read into memory, not mapped
    return core


def _quantized(core, checkpoint: str | Path):
    path = int8_path(checkpoint)
    if not path.is_file():
        return None
    network = core.read_model(str(path))
    made_from = (
        network.get_rt_info(DIGEST_KEY).astype(str) if network.has_rt_info(DIGEST_KEY) else ""
    )
    if made_from != file_digest(checkpoint):
        log.warning("%s was not made from %s: not used", path, checkpoint)
        return None
    return network


def _converted(ov, module: torch.nn.Module, input_size: int):
    """The network as OpenVINO's model; its input is 3 channels whatever the checkpoint's
    (:func:`fervid.preprocess.normalize` repeats a grayscale channel)."""
    module = copy.deepcopy(module).float().to(memory_format=torch.contiguous_format).eval()
    example = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings():  # OpenVINO traces with torch.jit, which says it is old
        warnings.simplefilter("ignore", FutureWarning)
        # weights copied: shared, they would point into the module copy once it is freed
        network = ov.convert_model(module, example_input=example, share_weights=False)
    network.reshape([-1, 3, input_size, input_size])
    return network


def quantize(model, calibration: np.ndarray, checkpoint: str | Path, out: str | Path | None = None):
    """Write an int8 copy of ``checkpoint`` (loaded as ``model``, a
    :class:`~fervid.classify.EmotionModel`) beside it (or to ``out``), its activations
    calibrated on ``calibration``: uint8 crops (N, C, S, S) as :meth:`EmotionModel.crops`
    makes them, from validation faces (never a test split). Needs ``pip install nncf``.
    Returns the path of the ``.xml`` file."""
    import nncf  # an extra (fervid[quantize])
    import openvino as ov  # a second to import: only on the CPU path

    meta = model.meta
    x = normalize(torch.as_tensor(calibration), meta.mean, meta.std).numpy()
    network = _converted(ov, model.module, meta.input_size)
    samples = nncf.Dataset([x[k : k + 1] for k in range(len(x))])
    quantized = nncf.quantize(
        network, samples, subset_size=len(x), preset=nncf.QuantizationPreset.PERFORMANCE
    )
    quantized.set_rt_info(file_digest(checkpoint), DIGEST_KEY)
    out = Path(out) if out is not None else int8_path(checkpoint)
    ov.save_model(quantized, str(out))
    return out
