"""The architecture registry: torchvision classifiers with their head replaced.

Inference builds a checkpoint's network from here; fervid-train trains them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from .errors import first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: torchvision name and its default input size."""

    name: str
    input_size: int


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
    """Build a registered torchvision architecture with a ``num_classes`` head.

    ``pretrained=True`` loads torchvision's ImageNet weights (downloaded once into
    TORCH_HOME); :class:`PretrainedUnavailable` says clearly when they cannot be had.
    """
    import torchvision

    arch_spec(arch)
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
