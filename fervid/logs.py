"""Logging set-up for fervid's entry points (never called on import)."""

from __future__ import annotations

import logging
import warnings


def configure(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", force=True)
    for noisy in ("PIL", "matplotlib", "libav"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # torchvision/facenet-pytorch deprecation chatter is not for end users
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", category=FutureWarning)
