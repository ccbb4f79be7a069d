"""The emotion timeline of a video: one panel per person (per track for tables without
persons), one line per emotion, broken where the person is out of sight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .emotions import color_for
from .outputs import atomic_path
from .rows import read_csv, read_csv_chunks


def _who(data) -> str:
    columns = read_csv(data, nrows=0).columns if not isinstance(data, pd.DataFrame) else data
    return "person" if "person" in columns else "face"


def _face_rows(data, classes, max_points: int, who: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data.dropna(subset=["face"])
    parts: list[pd.DataFrame] = []
    columns = list(dict.fromkeys(["time_s", "face", who, *classes]))
    for part in read_csv_chunks(data, 200_000, usecols=columns):
        parts.append(part.dropna(subset=["face"]))
        rows = sum(len(p) for p in parts)
        if rows > 4 * max_points:  # thin what was read so far: memory stays bounded
            parts = [pd.concat(parts).iloc[::2]]
    return pd.concat(parts) if parts else pd.DataFrame(columns=columns)


def plot_timeline(
    data: pd.DataFrame | str | Path,
    classes,
    path: str | Path,
    *,
    max_tracks: int = 8,
    title: str = "",
    max_points: int = 20_000,
) -> None:
    """Write a PNG of each person's emotion probabilities against time (``data``: the rows,
    or a video CSV read in chunks; the points thinned to ``max_points``); the most seen
    ``max_tracks`` people."""
    from matplotlib.figure import Figure  # half a second to import: only to draw

    who = _who(data)
    faces = _face_rows(data, classes, max_points, who)
    tracks = faces[who].value_counts().index[:max_tracks].tolist() if len(faces) else []
    n = max(1, len(tracks))
    fig = Figure(figsize=(9, 1.8 * n + 0.8), dpi=110)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)
    for ax, tid in zip(axes[:, 0], tracks):
        g = faces[faces[who] == tid].sort_values("time_s")
        for c in classes:
            rgb = [v / 255 for v in color_for(c)]
            ax.plot(
                *_with_gaps(g["time_s"].to_numpy(), g[c].to_numpy()), color=rgb, lw=1.2, label=c
            )
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{who} {int(tid)}")
        ax.grid(alpha=0.3)
    if not tracks:
        axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center")
    else:
        axes[0, 0].legend(loc="upper right", fontsize=7, ncol=min(7, len(classes)))
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": "fervid"})


def _with_gaps(t: np.ndarray, y: np.ndarray, gap: float = 1.0):
    """``t`` and ``y`` with a NaN point wherever ``gap`` seconds pass unseen (the line
    breaks there)."""
    cuts = np.flatnonzero((t[1:] - t[:-1]) > gap) + 1
    return np.insert(t.astype(float), cuts, np.nan), np.insert(y.astype(float), cuts, np.nan)
