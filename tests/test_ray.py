"""Scan and annotate on a Ray cluster started by the test (2 CPUs, no network): the same
rows as on one machine, worker crashes retried, a clear line without Ray."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

import fervid
from fervid.cli import cli

from conftest import samples

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a Ray cluster starts in each module run


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray whose workers can be made to crash (:mod:`ray_crash`); fervid joins it."""
    import os

    from fervid.ray_jobs import connect, shutdown

    from ray_crash import CRASH_DIR_ENV

    crash_dir = tmp_path_factory.mktemp("crash")
    tests = os.path.dirname(os.path.abspath(__file__))
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": path, CRASH_DIR_ENV: str(crash_dir)}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env, "worker_process_setup_hook": "ray_crash.install"},
    )
    connect("local")  # already running: fervid uses it
    yield crash_dir
    shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray")
    samples.write_photos(d / "photos")
    (d / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    v = d / "videos"
    v.mkdir()
    samples.write_video(v / "a.mp4", width=320, height=240, fps=10, seconds=1.2)
    samples.write_video(v / "b.mp4", width=480, height=270, fps=10, seconds=0.8, audio=False)
    return d


def _run(*args):
    r = CliRunner().invoke(cli, ["-q", *[str(a) for a in args]])
    assert "Traceback" not in r.output, r.output
    return r


def test_scan_on_ray_writes_the_same_csv(cluster, inputs, tmp_path):
    photos = inputs / "photos"
    _run("scan", photos, "--csv", tmp_path / "one.csv")
    r = _run(
        "scan",
        photos,
        "--csv",
        tmp_path / "ray.csv",
        "--ray-address",
        "local",
        "--ray-workers",
        "2",
    )
    assert r.exit_code == 1 and "broken.jpg" in r.output  # the bad file reported, the rest read
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "one.csv").read_text()
    df = fervid.analyze_images(photos, ray_address="local")
    assert len(df) == len(fervid.analyze_images(photos)) == 5


def test_annotate_on_ray_writes_the_same_csvs(cluster, inputs, tmp_path):
    videos = inputs / "videos"
    _run("annotate", videos, "--out-dir", tmp_path / "one")
    r = _run("annotate", videos, "--out-dir", tmp_path / "ray", "--ray-address", "local")
    assert r.exit_code == 0, r.output
    for name in ("a", "b"):
        one = (tmp_path / "one" / f"{name}.fervid.csv").read_text()
        assert (tmp_path / "ray" / f"{name}.fervid.csv").read_text() == one
        assert (tmp_path / "ray" / f"{name}.fervid.mp4").stat().st_size > 1000


def test_a_long_video_cut_into_parts_is_stitched(cluster, inputs, tmp_path):
    video = samples.write_video(tmp_path / "long.mp4", width=480, height=270, fps=10, seconds=2.0)
    _run("annotate", video, "--out-dir", tmp_path / "one", "--no-video")
    r = _run(
        "annotate",
        video,
        "--out-dir",
        tmp_path / "ray",
        "--ray-address",
        "local",
        "--ray-split",
        "0.0125",
    )
    assert r.exit_code == 0, r.output
    import pandas as pd

    one = pd.read_csv(tmp_path / "one" / "long.fervid.csv")
    cut = pd.read_csv(tmp_path / "ray" / "long.fervid.csv")
    # every analysed frame, in order, once (a cut restarts the search: faces per frame may differ)
    frames = cut["frame"].drop_duplicates().tolist()
    assert frames == one["frame"].drop_duplicates().tolist() == list(range(20))
    assert cut["frame"].is_monotonic_increasing
    assert cut["face"].nunique() == one["face"].nunique() == 2  # ids continued across cuts
    assert not list((tmp_path / "ray").glob("*.part*"))
    from fervid.video import VideoInfo

    assert VideoInfo.from_path(tmp_path / "ray" / "long.fervid.mp4").frames == 20


def test_parts_are_stitched_by_identity_not_only_by_place(cluster, tmp_path):
    from test_identity import LEAVE_RETURN

    video = tmp_path / "leave_return.mp4"
    samples.write_clip(video, LEAVE_RETURN, width=640, height=360, fps=25, frames=125)
    args = ("--out-dir", tmp_path / "ray", "--ray-address", "local", "--no-video")
    r = _run("annotate", video, *args, "--ray-split", "0.05")  # parts 0-3 s and 3-5 s
    assert r.exit_code == 0, r.output
    import pandas as pd

    df = pd.read_csv(tmp_path / "ray" / "leave_return.fervid.csv").dropna(subset=["face"])
    x = (df["x1"] + df["x2"]) / 2
    astronaut = set(df.loc[(x < 200) | (x > 450), "person"])  # before and after the cut
    hopper = set(df.loc[(x > 250) & (x < 400), "person"])
    assert astronaut == {0} and hopper == {1}
    # the stitched identity is kept beside the table, named by the stitched track ids
    import json

    ident = json.loads((tmp_path / "ray" / "leave_return.fervid.identity.json").read_text())
    assert {int(t) for t in ident["tracks"]} == set(df["face"].astype(int))
    assert not list((tmp_path / "ray").glob("*.part*"))


def test_a_crashed_worker_is_retried_and_nothing_is_lost(cluster, inputs, tmp_path):
    from ray_crash import arm

    photos = inputs / "photos"
    _run("scan", photos, "--csv", tmp_path / "one.csv")
    arm(cluster)
    _run("scan", photos, "--csv", tmp_path / "ray.csv", "--ray-address", "local")
    assert (cluster / "crashed").exists()  # a worker did die mid-task
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "one.csv").read_text()
    arm(cluster)
    videos = inputs / "videos"
    _run("annotate", videos, "--out-dir", tmp_path / "one_v", "--no-video")
    r = _run(
        "annotate", videos, "--out-dir", tmp_path / "ray_v", "--no-video", "--ray-address", "local"
    )
    assert r.exit_code == 0 and (cluster / "crashed").exists()
    for name in ("a", "b"):
        one = (tmp_path / "one_v" / f"{name}.fervid.csv").read_text()
        assert (tmp_path / "ray_v" / f"{name}.fervid.csv").read_text() == one


def test_without_ray_one_line_says_how_to_install_it(inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    r = _run("scan", inputs / "photos", "--csv", tmp_path / "o.csv", "--ray-address", "local")
    assert r.exit_code == 1
    assert r.output.strip() == 'Error: Ray is not installed: pip install "fervid[ray]"'
