"""fervid-train's view of the architecture registry (it lives in :mod:`fervid.architectures`,
which inference uses without importing training)."""

from __future__ import annotations

import torch

from fervid.architectures import (  # noqa: F401 (re-exported)
    REGISTRY,
    STUDY_ARCHS,
    ArchSpec,
    PretrainedUnavailable,
    arch_spec,
    build_model,
    count_parameters,
)


@torch.no_grad()
def smoke_forward(arch: str, size: int = 32, num_classes: int = 7) -> torch.Size:
    """Build and run one forward pass at a small size (used by tests)."""
    m = build_model(arch, num_classes).eval()
    return m(torch.zeros(1, 3, size, size)).shape
