"""Nothing lost, nothing hung, no traceback: bad files, awkward names, collisions, kills
(the corpus of tests/bad_inputs.py; generated files only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import fervid
from fervid.checkpoint import CheckpointError, load_checkpoint
from fervid.cli import cli
from fervid.outputs import OutputError, OutputLock
from fervid.train.cli import cli as train_cli
from fervid.video import VideoError

from bad_inputs import corrupt_one_packet, make_photos, make_videos
from conftest import samples


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return make_photos(root / "photos"), make_videos(root / "videos")


def _run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in r.output and r.exc_info[0] in (SystemExit, None), r.output
    return r


def _one_line(r) -> str:
    lines = [x for x in r.output.strip().splitlines() if x and not x.startswith(("Usage", "Try"))]
    return lines[-1] if len(lines) == 1 else "\n".join(lines)


# -- outputs never replace inputs or files fervid did not write ---------------------------


def test_a_csv_named_like_a_photo_is_refused_and_the_photo_kept(corpus, tmp_path):
    photos, _ = corpus
    before = (photos / "astronaut.jpg").read_bytes()
    for flag in ([], ["--overwrite"], ["--resume"]):
        r = _run("scan", photos, "--csv", photos / "astronaut.jpg", *flag)
        assert r.exit_code == 1 and "choose a .csv name" in r.output
    assert (photos / "astronaut.jpg").read_bytes() == before
    assert not (photos / "astronaut.partial.jpg").exists()


def test_resume_of_another_models_csv_touches_nothing(corpus, tmp_path):
    photos, _ = corpus
    out = tmp_path / "o.csv"
    out.write_text("path,face,x1,y1,x2,y2,score,a,b,emotion,confidence,error\nx.jpg,,,,,,,,,,,\n")
    before = out.read_text()
    r = _run("scan", photos, "--csv", out, "--resume")
    assert r.exit_code == 1 and "other columns" in r.output
    assert out.read_text() == before and not (tmp_path / "o.partial.csv").exists()
    r = _run("scan", photos, "--csv", out)  # a plain run refuses too, and deletes nothing
    assert r.exit_code == 1 and out.read_text() == before


def test_a_partial_csv_that_is_not_utf8_is_left_alone(corpus, tmp_path):
    photos, _ = corpus
    partial = tmp_path / "o.partial.csv"
    partial.write_bytes(b"\xff\xfe garbage\n")
    r = _run("scan", photos, "--csv", tmp_path / "o.csv", "--resume")
    assert r.exit_code == 1 and "not written by fervid" in r.output
    assert partial.read_bytes() == b"\xff\xfe garbage\n"


@pytest.mark.slow
def test_two_runs_on_one_output_the_second_is_refused(corpus, tmp_path):
    photos, videos = corpus
    out = tmp_path / "o.csv"
    with OutputLock(out):
        r = _run("scan", photos, "--csv", out)
        assert r.exit_code == 1 and "another fervid run is writing it" in r.output
    with OutputLock(tmp_path / "clip.fervid.csv"):
        r = _run("annotate", videos / "clip.mp4", "--out-dir", tmp_path, "--no-video")
        assert r.exit_code == 1 and "another fervid run is writing it" in r.output
    assert not out.exists()


@pytest.mark.slow
def test_a_lock_left_by_a_killed_run_is_free(tmp_path):
    code = (
        "import os, sys; from fervid.outputs import OutputLock\n"
        f"OutputLock({str(tmp_path / 'o.csv')!r}).__enter__(); os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", code])
    assert (tmp_path / "o.csv.lock").exists()
    with OutputLock(tmp_path / "o.csv"):
        pass


def test_output_names_never_collide_within_a_run(corpus, tmp_path):
    _, videos = corpus
    d = tmp_path / "in"
    (d / "a").mkdir(parents=True)
    (d / "b").mkdir()
    for sub in ("a", "b"):
        os.link(videos / "tiny.mp4", d / sub / "clip.mp4")
    os.link(videos / "clip.mov", d / "a" / "clip.mov")
    r = _run("annotate", d, "--out-dir", tmp_path / "out", "--no-video")
    assert r.exit_code == 0, r.output
    made = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    tables = [m for m in made if m.endswith(".fervid.csv") or "/" not in m]
    assert tables == [
        "a",
        "a/clip.mov.fervid.csv",
        "a/clip.mp4.fervid.csv",
        "b",
        "b/clip.fervid.csv",
    ]
    bases = [m[: -len(".csv")] for m in tables if m.endswith(".csv")]
    assert all(any(m.startswith(b + ".") for b in bases) for m in made if m not in tables)


def test_the_api_refuses_to_draw_over_its_input(corpus, model):
    _, videos = corpus
    before = (videos / "tiny.mp4").read_bytes()
    with pytest.raises(VideoError, match="is the input video"):
        fervid.analyze_video(videos / "tiny.mp4", model=model, annotated=videos / "tiny.mp4")
    assert (videos / "tiny.mp4").read_bytes() == before


def test_unwritable_output_folder_is_refused_before_any_work(corpus, tmp_path):
    _, videos = corpus
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = _run("annotate", videos / "clip.mp4", "--out-dir", blocker / "sub")
    assert r.exit_code == 1 and "cannot create the output folder" in r.output
    r = _run("scan", videos, "--csv", blocker / "sub" / "o.csv")
    assert r.exit_code == 1 and "cannot create the output folder" in r.output


# -- damaged and awkward inputs ------------------------------------------------------------


def test_every_awkward_photo_gets_a_row_and_the_rest_are_read(corpus, tmp_path):
    photos, _ = corpus
    out = tmp_path / "o.csv"
    r = _run("scan", photos, "--csv", out)
    assert r.exit_code == 1
    df = pd.read_csv(out, keep_default_na=False)
    errors = dict(zip(df["path"], df["error"]))
    assert "broken symbolic link" in errors["broken_link.jpg"]
    assert "symbolic link loop" in errors["loop.jpg"]
    assert "FIFO" in errors["pipe.jpg"] and "folder" in errors["folder.jpg"]
    for name in ("empty.jpg", "truncated.jpg", "text.jpg"):
        assert errors[name].startswith("cannot read image")
    # no face, no crash: images smaller than the smallest face
    assert errors["one_pixel.png"] == "" and errors["sixteen.png"] == ""
    # names the OS allows, whatever they are
    faces = df[df["emotion"] != ""]
    assert {"astronaut.jpg", "new\nline.jpg", "latin\\xe9.jpg", "long" * 60 + ".jpg"} <= set(
        faces["path"]
    )
    # a newline in a name is escaped: every line of the output is one of the summary's
    for line in r.output.splitlines():
        assert line.startswith("  ") or "images scanned" in line or "not be read" in line, line


@pytest.mark.slow
def test_a_fifo_video_is_refused_without_hanging(corpus, tmp_path):
    _, videos = corpus
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fervid.cli",
            "-q",
            "annotate",
            str(videos / "pipe.mp4"),
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "not a regular file" in r.stderr


def test_a_folder_that_cannot_be_listed_is_said_and_the_rest_annotated(tmp_path, monkeypatch):
    # root reads every folder whatever its mode, so the refusal is the OS's answer, simulated
    top = tmp_path / "videos"
    (top / "locked").mkdir(parents=True)
    samples.write_video(top / "clip.mp4", width=160, height=120, fps=10, seconds=0.3, faces=[])
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    r = _run("annotate", top, "--out-dir", tmp_path / "o", "--no-video")
    assert r.exit_code == 1
    assert "locked: cannot list folder: Permission denied" in r.output
    assert "1 of 2 input(s) failed" in r.output
    assert (tmp_path / "o" / "clip.fervid.csv").exists()


def test_a_corrupt_packet_is_skipped_and_counted(corpus, tmp_path, model):
    _, videos = corpus
    df = fervid.analyze_video(videos / "corrupt_packet.mp4", model=model)
    report = df.attrs["fervid"]
    assert report.bad_packets == 1 and report.frames == 19 and report.error is None
    assert df["frame"].max() == 19  # frames after it keep their index
    r = _run("annotate", videos / "corrupt_packet.mp4", "--out-dir", tmp_path, "--no-video")
    assert r.exit_code == 0 and "1 undecodable packet(s) skipped" in r.output


def test_frames_smaller_than_the_smallest_face_have_no_face(corpus, model):
    _, videos = corpus
    df = fervid.analyze_video(videos / "tiny.mp4", model=model)
    assert len(df) == 5 and df["face"].isna().all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start", "60"], "--start 60 s is past the end of the video (2.00 s)"),
        (["--start", "nan"], "must be a finite number of seconds"),
        (["--end", "inf"], "must be a finite number of seconds"),
        (["--device", "bogus"], "--device bogus: not a device here"),
    ],
)
def test_bad_options_get_one_line(corpus, tmp_path, args, message):
    _, videos = corpus
    r = _run("annotate", videos / "clip.mp4", "--out-dir", tmp_path, *args)
    assert r.exit_code in (1, 2) and message in _one_line(r)
    assert not any(p.suffix in (".csv", ".mp4") for p in tmp_path.iterdir())


def test_a_video_without_frames_writes_nothing(tmp_path):
    empty = samples.write_video(tmp_path / "empty.mp4", frame_times=[], audio=True)
    r = _run("annotate", empty, "--out-dir", tmp_path / "o")
    assert r.exit_code == 1 and r.output.splitlines()[0] == f"{empty}: no video stream"
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@pytest.mark.slow
def test_plot_of_a_video_without_faces_warns_nothing(corpus, tmp_path):
    _, videos = corpus
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fervid.cli",
            "annotate",
            str(videos / "tiny.mp4"),
            "--plot",
            "--no-video",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "Warning" not in r.stderr, r.stderr
    assert (tmp_path / "tiny.fervid.png").stat().st_size > 1000


def test_a_huge_image_is_read_with_one_clear_line(tmp_path, monkeypatch, caplog):
    Image.fromarray(samples.astronaut()).resize((40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    from fervid.images import load_image

    with caplog.at_level("WARNING"):
        img = load_image(tmp_path / "big.png")
    assert img.shape == (40, 40, 3) and "a very large image (40 x 40)" in caplog.text


# -- training and checkpoints --------------------------------------------------------------


def test_evaluate_json_under_a_file_is_one_line(tmp_path):
    from train_fixtures import make_folder_dataset, train_tiny

    data, ckpt = train_tiny(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(
        train_cli, ["evaluate", str(ckpt), "--data", str(data), "--json", str(blocker / "m.json")]
    )
    assert r.exit_code == 1 and "Traceback" not in r.output and "cannot write" in r.output
    # every checkpoint fervid writes loads for inference, training states included
    for path in (ckpt, tmp_path / "r" / "resnet18" / "last.pt"):
        m = fervid.load_model(path, device="cpu")
        assert m.predict(np.zeros((1, 3, 32, 32), np.uint8)).shape == (1, 3)
    # resuming on another dataset is refused before the run is touched
    other = make_folder_dataset(tmp_path / "e", per_class=(8, 8, 8), val_per_class=4, seed=1)
    config = (tmp_path / "r" / "resnet18" / "config.json").read_text()
    r = CliRunner().invoke(
        train_cli,
        [
            "--data",
            str(other),
            "--archs",
            "resnet18",
            "--input-size",
            "32",
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "r"),
            "--resume",
            "-q",
        ],
    )
    assert r.exit_code == 1 and "was started with data" in r.output
    assert (tmp_path / "r" / "resnet18" / "config.json").read_text() == config


def test_checkpoint_errors_name_the_file(tmp_path):
    from safetensors.torch import save_file

    meta = {"format": "fervid-checkpoint", "format_version": "one", "arch": "resnet18"}
    bad = tmp_path / "v.safetensors"
    save_file({"w": torch.zeros(1)}, str(bad), metadata={"fervid": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=f"{bad}: .*'format_version' must be an integer"):
        load_checkpoint(bad)

    pickled = tmp_path / "p.pt"
    torch.save({"model": {}, "meta": Pickled()}, pickled)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(pickled)
    assert str(e.value).startswith(f"{pickled}: holds pickled Python objects")


class Pickled:
    """A Python object that only unpickling could rebuild."""


def test_output_error_is_a_value_error():
    assert issubclass(OutputError, ValueError)
    assert corrupt_one_packet  # the corpus' damaging helper is importable for users
