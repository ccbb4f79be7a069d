"""The people's face pictures: kept during the pass (no second decode of the video), the same
as those fetched from the video afterwards; and frames fetched by time in one forward pass."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from fervid import face_pictures
from fervid.annotation import annotate_video
from fervid.cli import cli
from fervid.face_pictures import is_fervid_jpeg, write_faces
from fervid.persons import read_people
from fervid.video import FrameReader, frames_at

from conftest import samples


@pytest.fixture(scope="module")
def gops(tmp_path_factory):
    d = tmp_path_factory.mktemp("gops")
    kw = dict(width=320, height=240, fps=10, seconds=3.0, audio=False)
    return {
        "one key frame": samples.write_video(d / "long.mp4", gop=1000, **kw),
        "key frame every 0.5 s": samples.write_video(d / "short.mp4", gop=5, **kw),
    }


@pytest.mark.parametrize("kind", ["one key frame", "key frame every 0.5 s"])
def test_frames_at_gives_the_frames_a_straight_decode_gives(gops, kind):
    decoded = {round(f.time_s, 3): f.image for f in FrameReader(gops[kind])}
    times = [2.5, 0.3, 0.4, 1.7, 0.3, 2.9]  # out of order, one twice, far and near
    got = frames_at(gops[kind], times)
    assert sorted(got) == sorted(set(times))
    for t in times:
        np.testing.assert_array_equal(got[t], decoded[t])
    assert frames_at(gops[kind], [99.0]) == {}  # past the end: left out, no error


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32)


def test_the_pictures_come_from_the_pass_without_seeking(tmp_path, videos, monkeypatch):
    video = shutil.copy(videos["two"], tmp_path / "two.mp4")

    def no_seeking(*a, **k):
        raise AssertionError("the pictures were fetched from the video again")

    monkeypatch.setattr(face_pictures, "frames_at", no_seeking)
    r = CliRunner().invoke(cli, ["annotate", str(video), "--no-video"])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "two.fervid.people"
    ppl = pd.read_csv(tmp_path / "two.fervid.people.csv")
    kept = sorted(folder.iterdir())
    assert [p.name for p in kept] == [f"person_{p}.jpg" for p in ppl.person]
    assert all(is_fervid_jpeg(p) for p in kept)

    # the same pictures as fetching the chosen rows' frames from the video afterwards
    monkeypatch.undo()
    found = read_people(tmp_path / "two.fervid.csv")
    again = write_faces(video, found.candidates, tmp_path / "again")
    for p in kept:
        a, b = _pixels(p), _pixels(again[int(p.stem.split("_")[1])])
        assert a.shape == b.shape == (160, 160, 3)
        assert np.abs(a - b).mean() < 3.0  # one more JPEG round trip, nothing else


def test_rows_the_pass_did_not_keep_are_fetched_from_the_video(tmp_path, videos, model):
    """A person whose rows have no kept crop (an earlier part of a resumed run, say) still
    gets a picture, from the video; the others' come from the pass."""
    table = tmp_path / "two.fervid.csv"
    run = annotate_video(videos["two"], table, model=model, pictures=True)
    found = read_people(table)
    assert len(found.candidates) == 2
    first, heap = sorted(found.candidates.items())[0]
    lost = {c.track for c in heap}
    kept = {k: v for k, v in run.pictures.items() if k[0] not in lost}
    asked = []

    def fetch(video, times):
        asked.extend(times)
        return frames_at(video, times)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(face_pictures, "frames_at", fetch)
        out = write_faces(videos["two"], found.candidates, tmp_path / "people", kept=kept)
    assert sorted(out) == sorted(found.candidates)
    assert sorted(asked) == sorted(c.time_s for c in heap)  # only the one without crops


def test_a_persons_picture_comes_from_the_tracks_near_the_centre_of_its_embeddings():
    """A person made of a long track and a short one joined on a weak match (another face,
    larger and better scored): the picture comes from the long one, nearer the centre of
    the person's embeddings (rows weigh); without embeddings, from the best rows."""
    from fervid.face_pictures import candidate, central_candidates, keep_best
    from fervid.persons import Takeaway

    rng = np.random.default_rng(0)
    own, other = rng.normal(size=128), rng.normal(size=128)
    by_track = {0: {0: [], 1: []}}
    for k in range(10):
        keep_best(by_track[0][0], candidate(0.95, [0, 0, 80, 80], 0.1 * k, 0))
        keep_best(by_track[0][1], candidate(0.99, [0, 0, 150, 150], 5 + 0.1 * k, 1))
    found = Takeaway(pd.DataFrame(), pd.DataFrame(), {}, 0.1, by_track, {0: {0: 300, 1: 20}})
    assert {c.track for c in found.candidates[0]} == {1}  # the best rows: the joined face
    identity = {
        "tracks": {
            "0": {"samples": [list(own + 0.01 * rng.normal(size=128)) for _ in range(3)]},
            "1": {"samples": [list(other)]},
        }
    }
    assert {c.track for c in central_candidates(found, identity)[0]} == {0}
    assert central_candidates(found, None)[0] == found.candidates[0]
