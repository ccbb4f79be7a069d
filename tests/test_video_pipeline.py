"""The video pipeline: faces followed under motion, keyframes by time and need, rows streamed,
runs resumed after a kill (real MTCNN, real encoded clips)."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fervid
from fervid.faces import Faces
from fervid.keyframes import KeyframePolicy
from fervid.pipeline import truncate_rows_after
from fervid.render import faces_by_frame
from fervid.rows import RowSchema
from fervid.track import iou_matrix

from conftest import samples


@pytest.fixture(scope="module")
def fast_small(tmp_path_factory):
    """A 28 px face crossing a 640x360 clip at 8 px per frame (the issue's case)."""
    path = tmp_path_factory.mktemp("clips") / "fast_small.mp4"
    actors = [samples.Actor(0, lambda t: (40 + 200 * t, 180), lambda t: 28)]
    truth = samples.write_clip(path, actors, width=640, height=360, fps=25, frames=40)
    return path, truth


@pytest.fixture(scope="module")
def slow_two(tmp_path_factory):
    """Two faces moving slowly (2 and 1 px per frame, one bobbing), 640x360, 25 fps."""
    path = tmp_path_factory.mktemp("clips") / "slow_two.mp4"
    actors = [
        samples.Actor(0, lambda t: (190 + 50 * t, 180), lambda t: 64),
        samples.Actor(1, lambda t: (450 - 25 * t, 165 + 30 * math.sin(2 * t)), lambda t: 70),
    ]
    truth = samples.write_clip(path, actors, width=640, height=360, fps=25, frames=60)
    return path, truth


def _matched(df, truth) -> list[int]:
    """Per frame: how many true faces a box of ``df`` matches at IoU >= 0.5."""
    out = []
    for i, boxes in enumerate(truth):
        g = df[(df["frame"] == i) & df["face"].notna()]
        found = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        if not len(found):
            out.append(0)
            continue
        m = iou_matrix(np.stack([b for _, b in boxes]), found)
        out.append(int((m.max(1) >= 0.5).sum()))
    return out


def test_a_fast_small_face_is_found_on_every_frame(fast_small, model):
    path, truth = fast_small
    df = fervid.analyze_video(path, model=model, min_face_size=20)
    assert _matched(df, truth) == [1] * len(truth)
    assert df["face"].nunique() == 1


def test_ids_stay_stable_with_every_3(slow_two, model):
    path, truth = slow_two
    df = fervid.analyze_video(path, model=model, every=3, min_face_size=20)
    analysed = sorted(df["frame"].unique())
    assert analysed == list(range(0, 60, 3))
    assert df["face"].nunique() == 2
    assert (df.groupby("frame")["face"].nunique() == 2).all()
    # each true face keeps one id
    for k in (0, 1):
        ids = set()
        for i in analysed:
            g = df[df["frame"] == i]
            box = next(b for j, b in truth[i] if j == k)
            m = iou_matrix(box[None], g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))[0]
            ids.add(int(g["face"].iloc[int(m.argmax())]))
        assert len(ids) == 1


def test_whole_frame_searches_follow_time(videos, model, monkeypatch):
    decisions = []
    decide = KeyframePolicy.decide

    def spy(self, t, image, faces=None, *, cut=False):
        out = decide(self, t, image, faces, cut=cut)
        decisions.append((round(t, 2), out[0]))
        return out

    monkeypatch.setattr(KeyframePolicy, "decide", spy)
    df = fervid.analyze_video(videos["two"], model=model, every=3, detect_interval=0.5)
    # 12 frames at 10 fps, analysed 0, 3, 6, 9 (0, 0.3, 0.6, 0.9 s): whole frame at 0 and 0.6
    assert sorted(df["frame"].unique()) == [0, 3, 6, 9]
    full = [t for t, kind in decisions if kind == "full"]
    assert full == [0.0, 0.6]
    assert (df.groupby("frame").size() == 2).all()


def test_tracking_between_searches_matches_searching_every_frame(videos, model):
    fast = fervid.analyze_video(videos["two"], model=model)
    full = fervid.analyze_video(videos["two"], model=model, detect_interval=0)
    assert len(fast) == len(full) == 24
    assert full.attrs["fervid"].keyframes == 12
    for (_, a), (_, b) in zip(fast.groupby("frame"), full.groupby("frame")):
        boxes_a = a[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        boxes_b = b[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        assert (iou_matrix(boxes_b, boxes_a).max(1) >= 0.5).all()


def test_keyframe_policy_searches_where_something_new_moved():
    policy = KeyframePolicy(interval=10.0)
    scene = np.full((360, 640, 3), 90, np.uint8)
    face = np.array([[100, 100, 160, 160]], np.float32)
    assert policy.decide(0.0, scene, face)[0] == "full"  # the first frame
    assert policy.decide(0.04, scene, face) == ("none", None)
    moved = scene.copy()
    moved[40:120, 180:260] = 220  # beside the tracked person: their own movement
    assert policy.decide(0.08, moved, face) == ("none", None)
    new = moved.copy()
    new[200:300, 480:580] = 250  # far from everyone: someone new
    kind, regions = policy.decide(0.12, new, face)
    assert kind == "region" and len(regions) == 1
    x0, y0, x1, y1 = regions[0]
    assert x0 <= 480 and x1 >= 580 and y0 <= 200 and y1 >= 300 and x0 > 300
    assert policy.decide(0.16, new, face, cut=True)[0] == "full"  # a new shot
    assert policy.last_cut == 0.16


def test_rows_come_back_as_faces_and_truncate_at_a_frame(tmp_path):
    classes = ("happiness", "neutral")
    path = tmp_path / "v.csv"
    rows = [
        [0, 0.0, 0, 0, 0.9, 1, 2, 11, 12, 0.99, 0.75, 0.25, "happiness", 0.75],
        [0, 0.0, 1, 1, "", 20, 2, 31, 12, 0.98, 0.4, 0.6, "neutral", 0.6],
        [1, 0.04, "", "", "", "", "", "", "", "", "", "", "", ""],
        [2, 0.08, 0, 0, 0.9, 2, 2, 12, 12, 0.97, 0.7, 0.3, "happiness", 0.7],
    ]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(RowSchema("video", tuple(classes), measures=False).columns)  # an older table
        w.writerows(rows)
        fh.write("3,0.12,0,1")  # a line cut by a kill
    truncate_rows_after(path, 1)
    got = list(faces_by_frame(path, classes))
    assert [i for i, _ in got] == [0, 1]
    assert got[0][1].track_ids.tolist() == [0, 1] and len(got[1][1]) == 0
    assert isinstance(got[0][1], Faces) and got[0][1].emotions == ["happiness", "neutral"]
    assert got[0][1].persons.tolist() == [0, 1]
    assert got[0][1].person_conf[0] == np.float32(0.9) and np.isnan(got[0][1].person_conf[1])


def _annotate_cmd(video, out, *extra):
    return [
        sys.executable,
        "-m",
        "fervid.cli",
        "-q",
        "annotate",
        str(video),
        "--out-dir",
        str(out),
        "--batch-size",
        "4",
        *extra,
    ]


@pytest.mark.slow
def test_resume_after_kill_equals_an_uninterrupted_run(slow_two, tmp_path):
    path, _ = slow_two
    env = dict(os.environ, OMP_NUM_THREADS="1")
    whole = tmp_path / "whole"
    subprocess.run(_annotate_cmd(path, whole), check=True, env=env, capture_output=True)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        _annotate_cmd(path, cut), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = cut / "slow_two.fervid.state.json"
    partial = cut / "slow_two.fervid.partial.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and partial.exists() and len(partial.read_bytes().splitlines()) > 30:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "slow_two.fervid.csv").exists(), "the run was not interrupted mid-way"
    assert not (cut / "slow_two.fervid.mp4").exists()
    r = subprocess.run(
        _annotate_cmd(path, cut, "--resume"), env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    resumed = (cut / "slow_two.fervid.csv").read_text()
    assert resumed == (whole / "slow_two.fervid.csv").read_text()
    assert not partial.exists() and not state.exists()
    from fervid.video import VideoInfo

    a = VideoInfo.from_path(cut / "slow_two.fervid.mp4")
    b = VideoInfo.from_path(whole / "slow_two.fervid.mp4")
    assert a.frames == b.frames == 60
