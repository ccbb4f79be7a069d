"""The architecture registry: torchvision classifiers with their head replaced, and dlib's
face-recognition ResNet as a classifier (``dlib_resnet``: its "pretrained" weights are dlib's,
trained on about three million faces, installed with fervid, nothing downloaded).

Inference builds a checkpoint's network from here; fervid-train trains them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from ._dlib_resnet import DlibEmotionNet
from .errors import first_line

log = logging.getLogger(__name__)

#: dlib's face-recognition ResNet (:class:`fervid._dlib_resnet.DlibEmotionNet`)
DLIB = "dlib_resnet"


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: its name, default input size and the smallest input it
    takes."""

    name: str
    input_size: int
    min_input: int = 32


REGISTRY: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("resnet18", 224),
        ArchSpec("resnet34", 224),
        ArchSpec("resnet50", 224),
        ArchSpec("resnet101", 224),
        ArchSpec("efficientnet_b0", 224),
        ArchSpec("efficientnet_b3", 300),
        ArchSpec("efficientnet_b7", 600),
        ArchSpec("mobilenet_v3_large", 224),
        ArchSpec("convnext_tiny", 224),
        ArchSpec(DLIB, 150, min_input=104),  # no padding on its strided layers
    )
}

#: The five architectures of the study fervid reproduces.
STUDY_ARCHS: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet101",
    "efficientnet_b3",
    "efficientnet_b7",
)


class PretrainedUnavailable(RuntimeError):
    """torchvision's ImageNet weights could not be loaded (offline and not cached)."""


def arch_spec(name: str) -> ArchSpec:
    """The registry entry for ``name``; ValueError listing the choices if unknown."""
    if name not in REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build_model(arch: str, num_classes: int, *, pretrained: bool = False) -> nn.Module:
    """Build a registered architecture with a ``num_classes`` head.

    ``pretrained=True`` loads torchvision's ImageNet weights (downloaded once into
    TORCH_HOME), or for ``dlib_resnet`` dlib's face-recognition weights (installed with
    fervid); :class:`PretrainedUnavailable` says clearly when they cannot be had.
    """
    import torchvision  # its model zoo takes a second to import: only when a network is built

    arch_spec(arch)
    if arch == DLIB:
        return _dlib(num_classes, pretrained)
    weights = None
    if pretrained:
        try:
            weights = torchvision.models.get_model_weights(arch).DEFAULT
            model = torchvision.models.get_model(arch, weights=weights)
        except Exception as exc:  # network, cache or hash errors all mean "not available"
            raise PretrainedUnavailable(
                f"ImageNet weights for {arch} could not be loaded ({type(exc).__name__}: "
                f"{first_line(exc, 120)}); go online once or put "
                "them in $TORCH_HOME/hub/checkpoints, or use --no-pretrained"
            ) from None
    else:
        model = torchvision.models.get_model(arch, weights=None)
    _replace_head(model, num_classes)
    return model


def _dlib(num_classes: int, pretrained: bool) -> nn.Module:

    if not pretrained:
        return DlibEmotionNet(num_classes)
    try:
        return DlibEmotionNet.from_dlib(num_classes)
    except (OSError, ValueError) as exc:
        raise PretrainedUnavailable(
            f"dlib's face weights could not be read ({first_line(exc, 160)}); "
            "pip install face-recognition-models"
        ) from None


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear layer for a fresh one with ``num_classes`` outputs."""
    target = None
    for module in model.modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.Linear):
                target = (module, child_name, child)
    if target is None:
        raise ValueError(f"{type(model).__name__}: no Linear head to replace")
    parent, attr, last = target
    new = nn.Linear(last.in_features, num_classes)
    setattr(parent, attr, new)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
