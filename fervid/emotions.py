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

#: RGB colours, one per emotion, the same on the annotated video, the page and the plot:
#: Okabe and Ito's palette, which readers with any of the common colour-vision deficiencies
#: tell apart (tests/test_pages.py checks it under simulated protanopia, deuteranopia and
#: tritanopia); neutral a light grey. Surprise is sky blue, not the orange next to
#: happiness's yellow that it was.
COLORS: dict[str, tuple[int, int, int]] = {
    "surprise": (86, 180, 233),  # sky blue
    "fear": (204, 121, 167),  # reddish purple
    "disgust": (0, 158, 115),  # bluish green
    "happiness": (240, 228, 66),  # yellow
    "sadness": (0, 114, 178),  # blue
    "anger": (213, 94, 0),  # vermillion
    "neutral": (200, 200, 200),  # light grey
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
