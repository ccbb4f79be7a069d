"""The seven basic emotions: canonical names, their order, aliases and colours."""

from __future__ import annotations

#: Canonical class names in fervid's standard output order (RAF-DB's label order 1..7).
EMOTIONS: tuple[str, ...] = (
    "surprise",
    "fear",
    "disgust",
    "happiness",
    "sadness",
    "anger",
    "neutral",
)

#: Folder or label spellings found in the wild, mapped to canonical names.
ALIASES: dict[str, str] = {
    "surprise": "surprise",
    "surprised": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "happiness": "happiness",
    "happy": "happiness",
    "joy": "happiness",
    "sadness": "sadness",
    "sad": "sadness",
    "anger": "anger",
    "angry": "anger",
    "neutral": "neutral",
    "calm": "neutral",
}

#: BGR-free RGB colours, one per emotion, for drawing and plots.
COLORS: dict[str, tuple[int, int, int]] = {
    "surprise": (255, 165, 0),
    "fear": (148, 0, 211),
    "disgust": (34, 139, 34),
    "happiness": (255, 215, 0),
    "sadness": (30, 144, 255),
    "anger": (220, 20, 60),
    "neutral": (190, 190, 190),
}


def canonical(name: str) -> str | None:
    """Return the canonical emotion for a folder/label spelling, or None if unknown."""
    return ALIASES.get(name.strip().lower())


def color_for(name: str) -> tuple[int, int, int]:
    """RGB colour for a class name; unknown classes get a stable colour from their hash."""
    if name in COLORS:
        return COLORS[name]
    h = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    return (80 + h % 176, 80 + (h * 7) % 176, 80 + (h * 13) % 176)
