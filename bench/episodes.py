"""Episode settings against the bench clips: how the enter/exit thresholds, the minimum
duration and the gap bridged change what a person's emotions break into.

    python bench/episodes.py VIDEO [VIDEO ...]

Each video is analysed once (default settings: probabilities smoothed 0.2 s); then, for each
setting, per person-minute: episodes, episodes shorter than 1 s (flicker of near-equal
classes that a coder would not call an episode), and the share of visible time covered by
an episode (of a non-neutral emotion). On these clips the faces are photos, so one
expression per person: the right answer is few, long episodes, and the question is which
settings fragment them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

GRID = [
    # enter, exit, min_duration, max_gap
    (0.5, 0.35, 0.5, 0.5),  # the defaults
    (0.5, 0.5, 0.0, 0.0),  # no hysteresis, nothing dropped or bridged
    (0.5, 0.35, 0.0, 0.0),
    (0.5, 0.5, 0.5, 0.5),
    (0.4, 0.3, 0.5, 0.5),
    (0.6, 0.45, 0.5, 0.5),
    (0.5, 0.35, 1.0, 1.0),
]


def measure(tables) -> list[dict]:
    from fervid.options import EpisodeOptions
    from fervid.persons import read_people

    out = []
    for enter, exit_, min_d, gap in GRID:
        opts = EpisodeOptions(enter=enter, exit=exit_, min_duration=min_d, max_gap=gap)
        eps = short = 0
        visible = covered = 0.0
        for df in tables:
            got = read_people(df, options=opts)
            eps += len(got.episodes)
            short += int((got.episodes.duration_s < 1.0).sum())
            covered += float(got.episodes.duration_s.sum())
            visible += float(got.people.seconds_visible.sum())
        minutes = visible / 60
        out.append(
            {
                "enter": enter,
                "exit": exit_,
                "min_duration": min_d,
                "max_gap": gap,
                "episodes_per_person_min": round(eps / minutes, 2),
                "under_1s_per_person_min": round(short / minutes, 2),
                "covered": round(covered / visible, 3),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    args = ap.parse_args()
    import fervid

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    model = fervid.load_model(device="cpu")
    tables = [fervid.analyze_video(v, model=model) for v in args.videos]
    print(f"# {len(tables)} clips, {sum(len(t) for t in tables)} rows")
    for row in measure(tables):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
