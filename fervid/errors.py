"""What fervid tells a user about an error: one line."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message cut to its first line (or its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def printable(text: str) -> str:
    """Text fit for a one-line message: control characters (a newline in a file name) escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
