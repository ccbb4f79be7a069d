"""Shot cuts (:mod:`fervid.shots`): found in dark and low-contrast footage and between two
shots of one scene; none on a flash, a fade, a pan or a shape crossing close to the camera;
the same after a resume; marked on the frames of a real encoded video, where they end every
track."""

from __future__ import annotations

import numpy as np
import pytest

import fervid
from fervid.keyframes import thumbnail
from fervid.shots import ShotCuts, mark_cuts
from fervid.video import FrameReader

from conftest import samples

W, H, FPS = 640, 360, 25


def _shot(who: int, t0: float, n: int, light: str = "normal") -> list[np.ndarray]:
    """``n`` frames of a portrait drifting in front of the background, from ``t0`` s."""
    out = []
    for i in range(n):
        x = samples.scene(t0 + i / FPS, W, H, [samples.portraits()[who]]).astype(np.float32)
        if light == "dark":
            x = 0.3 * x
        elif light == "low contrast":
            x = x.mean() + 0.4 * (x - x.mean())
        out.append(np.clip(x, 0, 255).astype(np.uint8))
    return out


def _cuts(frames: list[np.ndarray], cuts: ShotCuts | None = None, start: int = 0) -> list[int]:
    cuts = cuts or ShotCuts()
    found = []
    for i, f in enumerate(frames, start):
        found += [k for k, cut in cuts.see(i, thumbnail(f)) if cut]
    return found + [k for k, cut in cuts.finish() if cut]


@pytest.mark.parametrize("light", ["normal", "dark", "low contrast"])
def test_a_cut_to_another_person_is_found_in_any_light(light):
    assert _cuts(_shot(0, 0.0, 12, light) + _shot(1, 0.0, 12, light)) == [12]


def test_a_cut_between_two_shots_of_one_scene_is_found():
    # the same person, 6 s later: moved, a little larger; every frame drifts
    assert _cuts(_shot(0, 0.0, 12) + _shot(0, 6.0, 12)) == [12]


def _events() -> list[np.ndarray]:
    """One shot of 4 s with a flash (2 frames), a fade to black and back (1 s), a pan (a third
    of the width in 0.3 s) and a dark shape crossing close to the camera (0.4 s)."""
    frames = []
    for i, f in enumerate(_shot(0, 0.0, 4 * FPS)):
        x = f.astype(np.float32)
        if i in (10, 11):
            x *= 2.5
        if 20 <= i < 45:
            x *= abs(i - 32) / 12
        if i >= 55:
            x = np.roll(x, -int(W / 3 * min((i - 55) / (0.3 * FPS), 1.0)), axis=1)
        if 75 <= i < 85:
            cx = int(-W / 2 + (i - 75) / 10 * 2 * W)
            x[:, max(0, cx - W // 4) : max(0, cx + W // 4)] *= 0.1
        frames.append(np.clip(x, 0, 255).astype(np.uint8))
    return frames


def test_no_cut_on_a_flash_a_fade_a_pan_or_a_crossing():
    assert _cuts(_events()) == []


def test_the_decisions_go_on_alike_after_a_resume():
    frames = _shot(0, 0.0, 12) + _shot(1, 0.0, 3) + _shot(0, 6.0, 12)
    whole = _cuts(frames)
    assert whole == [12, 15]
    for stop in (11, 12, 13, 14):  # around both cuts: the state as of a frame already decided
        first = ShotCuts()
        decided = []
        for i, f in enumerate(frames[: stop + 3]):
            decided += first.see(i, thumbnail(f))
        state = first.state_dict(stop)
        assert [k for k, _ in decided][-1] >= stop
        again = ShotCuts()
        again.load_state_dict(state)
        before = [k for k, cut in decided if cut and k <= stop]
        assert before + _cuts(frames[stop + 1 :], again, start=stop + 1) == whole


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="cut needs"):
        ShotCuts(ratio=0.5)


def test_an_encoded_dark_cut_is_marked_and_ends_every_track(tmp_path, model):
    """A dark recording cut to another shot of the same person (moved and nearer): no frame
    lost, the cut marked on its frame; the track ends there (the tracker alone would have
    gone on: the face is near where it was)."""
    path = tmp_path / "cut.mp4"
    pictures = _shot(0, 0.0, 12, "dark") + _shot(0, 6.0, 12, "dark")
    samples.encode_clip(path, pictures, width=W, height=H, fps=FPS)
    frames = list(mark_cuts(FrameReader(path), ShotCuts()))
    assert [f.index for f in frames] == list(range(24))
    assert [f.index for f in frames if f.cut] == [12]
    df = fervid.analyze_video(path, model=model).dropna(subset=["face"])
    before, after = df[df.frame < 12], df[df.frame >= 12]
    assert len(before) == 12 and len(after) == 12
    assert before.face.nunique() == after.face.nunique() == 1
    assert set(before.face).isdisjoint(after.face)
