"""A track that holds two people parted by a user (``fervid regroup --apart P@S1,P@S2`` with
both times in one track, issue #40): where the face changes, found on the real video's frames
(or at ``--cut``), nothing carried across the cut."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fervid.cli import cli
from fervid.faces import Faces
from fervid.identity.parting import change_point
from fervid.track import ProbSmoother, restart_smoothing

from conftest import samples


def _swap_clip(path):
    """The astronaut's face replaced at 2.5 s, in the same place and size, by another
    person's: one track of two people when nothing sees the change."""
    first = samples.Actor(0, lambda t: (640, 360), lambda t: 90, lambda t: t < 2.5)
    then = samples.Actor(1, lambda t: (640, 360), lambda t: 90, lambda t: t >= 2.5)
    samples.write_clip(path, [first, then], width=1280, height=720, fps=10, frames=45)
    return path


def _cli(*args):
    r = CliRunner().invoke(cli, ["-q", *[str(a) for a in args]])
    assert "Traceback" not in r.output, r.output
    return r


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The clip annotated twice with no cut seen: with the track check off (one track of two
    people, every output) and on (split where the face changes: what parting should give)."""
    from fervid.identity.tracker import PersonTracker

    d = tmp_path_factory.mktemp("parting")
    video = _swap_clip(d / "swap.mp4")
    split = d / "split"
    split.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("fervid.pipeline.mark_cuts", lambda frames, cuts: frames)
        r = _cli("annotate", shutil.copy(video, split / "swap.mp4"), "--no-video")
        assert r.exit_code == 0, r.output
        mp.setattr(PersonTracker, "_far", lambda self, *a: False)
        r = _cli("annotate", video, "--page", "--elan")
        assert r.exit_code == 0, r.output
    assert pd.read_csv(d / "swap.fervid.csv").face.nunique() == 1
    return d, split


@pytest.fixture
def run(runs, tmp_path):
    """A fresh copy of the run with one track of two people."""
    for p in runs[0].iterdir():
        if p.is_file() or p.name.endswith(".people"):
            (shutil.copytree if p.is_dir() else shutil.copy)(p, tmp_path / p.name)
    return tmp_path


def test_a_track_of_two_people_is_parted_where_the_face_changes(run, runs):
    table = run / "swap.fervid.csv"
    r = CliRunner().invoke(cli, ["regroup", str(table), "--apart", "0@1,0@4"])
    assert r.exit_code == 0, r.output
    assert "track 0 parted at 2.50 s (track 1 from there" in r.output
    rows = pd.read_csv(table)
    assert set(rows.face[rows.time_s < 2.45]) == {0} and set(rows.face[rows.time_s > 2.45]) == {1}
    assert set(rows.person[rows.time_s < 2.45]).isdisjoint(rows.person[rows.time_s > 2.45])
    # nothing carried across: the second person's first reading is that of a run that split
    # the track there itself (its smoothing began at the cut; later rows differ a little, as
    # the split also restarts the box's smoothing)
    split = pd.read_csv(runs[1] / "swap.fervid.csv")
    classes = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
    first = rows.time_s == 2.5
    want = split[first][classes].to_numpy()
    assert np.abs(rows[first][classes].to_numpy() - want).max() < 1e-3
    unparted = pd.read_csv(runs[0] / "swap.fervid.csv")
    assert np.abs(unparted[first][classes].to_numpy() - want).max() > 0.2
    assert rows[first].emotion.item() == split[first].emotion.item()
    ident = json.loads((run / "swap.fervid.identity.json").read_text())
    one, two = ident["tracks"]["0"], ident["tracks"]["1"]
    assert one["last_t"] == 2.4 and two["first_t"] == 2.5 and [0, 1] in ident["apart"]
    assert all(t < 2.5 for t in one["sample_t"]) and all(t >= 2.5 for t in two["sample_t"])
    assert len(pd.read_csv(run / "swap.fervid.people.csv")) == 2
    episodes = pd.read_csv(run / "swap.fervid.episodes.csv")
    first_person = rows.person[rows.time_s < 2.45].iloc[0]
    assert (episodes[episodes.person == first_person].end_s <= 2.5).all()  # its last frame's end
    assert (episodes[episodes.person != first_person].start_s >= 2.5).all()
    assert len(list((run / "swap.fervid.people").glob("*.jpg"))) == 2
    # a later regroup keeps the track parted and the two apart
    assert _cli("regroup", table, "--people", "1").exit_code == 0
    again = pd.read_csv(table)
    assert again.face.tolist() == rows.face.tolist() and again.person.nunique() == 2


def test_a_track_is_parted_where_the_user_says_without_the_video(run):
    table = run / "swap.fervid.csv"
    (run / "swap.mp4").rename(run / "elsewhere.mp4")
    (run / "swap.fervid.mp4").unlink()  # nothing to draw again without the video
    r = _cli("regroup", table, "--apart", "0@1,0@4")
    assert r.exit_code == 1 and "--video PATH, or say where with --cut" in r.output
    assert _cli("regroup", table, "--apart", "0@1,0@4", "--cut", "3").exit_code == 0
    rows = pd.read_csv(table)
    assert set(rows.face[rows.time_s < 2.95]) == {0} and set(rows.face[rows.time_s > 2.95]) == {1}


@pytest.mark.parametrize(
    "args, words",
    [
        (["--apart", "0@1,0@4", "--cut", "4.5"], "not between the two times"),
        (["--apart", "0@1,0@9"], "give two different times inside it"),
        (["--apart", "0@1,0@1"], "give two different times inside it"),
        (["--apart", "0,0"], "to part a track, name it alone with two times"),
        (["--cut", "3"], "says where one track is parted"),
    ],
)
def test_a_part_that_cannot_be_is_one_line_and_nothing_written(run, args, words):
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = _cli("regroup", run / "swap.fervid.csv", *args)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and words in r.output
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_regroup_stopped_after_parting_is_finished_by_the_next(run, monkeypatch):
    import fervid.regroup

    table = run / "swap.fervid.csv"

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fervid.regroup, "_rewrite", stopped)
    CliRunner().invoke(cli, ["-q", "regroup", str(table), "--apart", "0@1,0@4", "--cut", "2.5"])
    assert (run / "swap.fervid.regroup.json").exists()
    monkeypatch.undo()
    assert _cli("regroup", table).exit_code == 0
    rows = pd.read_csv(table)
    assert set(rows.face[rows.time_s > 2.45]) == {1} and rows.person.nunique() == 2
    assert not (run / "swap.fervid.regroup.json").exists()


def test_the_smoothing_restarts_at_the_cut_as_a_new_track_would():
    rng = np.random.default_rng(0)
    n, cut = 40, 17
    times = np.cumsum(rng.uniform(0.02, 0.1, n))
    raw = rng.dirichlet(np.ones(7), n).astype(np.float32)

    def smoothed(split: bool) -> np.ndarray:
        smoother, out = ProbSmoother(tau=0.2), []
        for k in range(n):
            faces = Faces([[0, 0, 9, 9]], [0.9], [raw[k]], [int(split and k >= cut)], "abcdefg")
            out.append(smoother.update(faces, times[k]).probs[0])
        return np.array(out)

    one, two = smoothed(False), smoothed(True)
    fresh = restart_smoothing(times, np.round(one, 5), cut, 0.2)  # as the table holds them
    assert np.abs(fresh - two[cut:]).max() < 1e-3 < np.abs(one[cut:] - two[cut:]).max()


def test_the_change_point_is_where_the_means_part_most():
    rng = np.random.default_rng(1)
    vecs = np.r_[rng.normal(0, 0.1, (7, 8)), rng.normal(1, 0.1, (5, 8))]
    assert change_point(vecs) == 7
