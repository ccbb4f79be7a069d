from __future__ import annotations

import re

import av
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import fervid
from fervid.cli import cli
from fervid.video import FrameReader, VideoError, VideoInfo, VideoSink


def _annotate(*args):
    return CliRunner().invoke(cli, ["annotate", *map(str, args)])


def _frames(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = [f.pts for f in c.decode(s)]
        return pts, s.time_base, s.codec_context.name, s.codec_context.pix_fmt


@pytest.fixture(scope="module")
def two(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("ann")
    r = _annotate(videos["two"], "--out-dir", out, "--plot")
    assert r.exit_code == 0, r.output
    return out


def test_csv_schema_and_tracks(two, model):
    df = pd.read_csv(two / "two.fervid.csv")
    assert list(df.columns) == [
        "frame",
        "time_s",
        "face",
        "person",
        "person_confidence",
        "x1",
        "y1",
        "x2",
        "y2",
        "yaw",
        "pitch",
        "roll",
        "eyes_open",
        "mouth_open",
        "speaking",
        "score",
        *model.classes,
        "emotion",
        "confidence",
    ]
    assert sorted(df["frame"].unique()) == list(range(12))
    assert (df.groupby("frame").size() == 2).all()
    assert np.allclose(df[list(model.classes)].sum(axis=1), 1, atol=1e-3)
    assert (df["confidence"] == df[list(model.classes)].max(axis=1)).all()
    # two people moving across 12 frames keep their ids; each stays on its side
    assert sorted(df["face"].unique()) == [0, 1]
    centre = (df["x1"] + df["x2"]) / 2
    left, right = df[centre < 320]["face"].unique(), df[centre >= 320]["face"].unique()
    assert len(left) == 1 and len(right) == 1 and left[0] != right[0]
    # two people seen together are two persons, numbered in order of first appearance
    assert sorted(df["person"].unique()) == [0, 1]
    assert (df.groupby("face")["person"].nunique() == 1).all()


def test_annotated_video_same_frames_h264_audio(two, videos):
    src_pts, src_tb, _, _ = _frames(videos["two"])
    pts, tb, codec, pix = _frames(two / "two.fervid.mp4")
    assert codec == "h264" and pix == "yuv420p"
    assert len(pts) == len(src_pts) == 12
    assert [float(p * tb) for p in pts] == pytest.approx(
        [float(p * src_tb) for p in src_pts], abs=1e-3
    )
    with av.open(str(two / "two.fervid.mp4")) as c:
        assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].duration and c.streams.audio[0].duration > 0
    assert (two / "two.fervid.png").stat().st_size > 5000
    assert not list(two.glob("*.partial*"))


def test_time_s_follows_variable_frame_rate(videos, tmp_path, model):
    df = fervid.analyze_video(videos["vfr"], model=model)
    pts, tb, _, _ = _frames(videos["vfr"])
    times = df.groupby("frame")["time_s"].first().to_numpy()
    assert times == pytest.approx([float(p * tb) for p in pts], abs=1e-6)
    assert times == pytest.approx([0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0], abs=1e-3)


def test_no_face_frames_get_empty_rows(videos, tmp_path):
    r = _annotate(videos["blank"], "--out-dir", tmp_path, "--no-video")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "blank.fervid.csv")
    assert list(df["frame"]) == [0, 1, 2, 3, 4]
    assert df["face"].isna().all() and df["emotion"].isna().all()
    assert not (tmp_path / "blank.fervid.mp4").exists()


def test_every_n_and_carried_boxes(videos, tmp_path, model):
    out = tmp_path / "e.mp4"
    df = fervid.analyze_video(videos["two"], model=model, every=3, annotated=out)
    assert sorted(df["frame"].unique()) == [0, 3, 6, 9]
    pts, _, _, _ = _frames(out)
    assert len(pts) == 12  # every frame is still in the video


def test_start_end(videos, tmp_path, model):
    out = tmp_path / "se.mp4"
    df = fervid.analyze_video(videos["two"], model=model, start=0.3, end=0.8, annotated=out)
    assert sorted(df["frame"].unique()) == [3, 4, 5, 6, 7]
    assert df["time_s"].min() == pytest.approx(0.3)
    pts, tb, _, _ = _frames(out)
    assert len(pts) == 5 and float(pts[0] * tb) == pytest.approx(0.0, abs=1e-3)


def test_rotation_metadata_applied(videos, model):
    info = VideoInfo.from_path(videos["rotated"])
    assert info.rotation == -90 and (info.width, info.height) == (270, 480)
    frame = next(iter(FrameReader(videos["rotated"])))
    assert frame.image.shape == (480, 270, 3)
    df = fervid.analyze_video(videos["rotated"], model=model)
    assert df.groupby("frame")["face"].count().min() >= 1  # upright faces are found


def test_existing_outputs_kept_unless_overwrite(videos, tmp_path):
    r = _annotate(videos["blank"], "--out-dir", tmp_path, "--no-video")
    csv = tmp_path / "blank.fervid.csv"
    first = csv.read_text()
    r = _annotate(videos["blank"], "--out-dir", tmp_path, "--no-video")
    assert r.exit_code == 0 and "skipped" in r.output and csv.read_text() == first
    csv.write_text(first.replace("frame,", "frame,", 1) + "")
    r = _annotate(videos["blank"], "--out-dir", tmp_path, "--no-video", "--overwrite")
    assert r.exit_code == 0 and csv.read_text().startswith("frame,")
    # a file fervid did not write is never replaced, even with --overwrite
    csv.write_text("precious")
    r = _annotate(videos["blank"], "--out-dir", tmp_path, "--no-video", "--overwrite")
    assert r.exit_code == 1 and "not written by fervid" in r.output
    assert csv.read_text() == "precious"


def test_api_and_cli_agree(two, videos, model):
    api = fervid.analyze_video(videos["two"], model=model)
    cli_df = pd.read_csv(two / "two.fervid.csv")
    pd.testing.assert_frame_equal(api, cli_df, check_dtype=False, atol=1e-4)


def test_missing_input_is_usage_error(tmp_path):
    r = _annotate(tmp_path / "nope.mp4")
    assert r.exit_code == 2 and "does not exist" in r.output


@pytest.mark.parametrize("bad", ["audio_only", "text"])
def test_file_without_video_is_refused(tmp_path, bad):
    p = tmp_path / "x.mp4"
    if bad == "text":
        p.write_text("hello")
    else:
        with av.open(str(p), "w") as out:
            a = out.add_stream("aac", rate=44100)
            for i in range(10):
                f = av.AudioFrame.from_ndarray(
                    np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
                )
                f.sample_rate, f.pts = 44100, i * 1024
                for pk in a.encode(f):
                    out.mux(pk)
            for pk in a.encode(None):
                out.mux(pk)
    r = _annotate(p, "--out-dir", tmp_path / "o")
    assert r.exit_code == 1, r.output
    assert "no video stream" in r.output or "not a readable video" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "o" / "x.fervid.csv").exists()


def test_truncated_video_processed_as_far_as_it_decodes(tmp_path):
    from conftest import samples

    full = samples.write_video(tmp_path / "full.mkv", width=320, height=240, fps=10, seconds=2.0)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    r = _annotate(cut, "--out-dir", tmp_path / "o")
    assert r.exit_code == 1, r.output
    assert re.search(
        r"truncated: frames end at 1\.\d+ s of the 2\.0\d s the file declares", r.output
    ), r.output
    df = pd.read_csv(tmp_path / "o" / "cut.fervid.csv")  # what decoded is kept
    n = df["frame"].nunique()
    assert 3 <= n < 20 and list(sorted(df["frame"].unique())) == list(range(n))
    pts, _, _, _ = _frames(tmp_path / "o" / "cut.fervid.mp4")
    assert len(pts) == n


def test_truncated_mp4_without_index_is_refused(videos, tmp_path):
    cut = tmp_path / "cut.mp4"  # the MP4 index sits at the end: cut, nothing can be read
    data = videos["two"].read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    r = _annotate(cut, "--out-dir", tmp_path)
    assert r.exit_code == 1 and "failed" in r.output and "Traceback" not in r.output


def test_sink_leaves_nothing_on_error(tmp_path, videos):
    info = VideoInfo.from_path(videos["two"])
    target = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError), VideoSink(target, info) as sink:
        sink.write(np.zeros((info.height, info.width, 3), np.uint8), 0.0)
        raise RuntimeError("boom")
    assert not target.exists() and not list(tmp_path.iterdir())


def test_video_error_type():
    with pytest.raises(VideoError):
        VideoInfo.from_path(__file__)


def test_bf16_classification_agrees_with_fp32(portraits):
    from fervid.classify import load_model
    from fervid.faces import Faces

    boxes = [Faces([[150, 50, 270, 200]], [1.0]), Faces([[0, 0, 512, 512]], [1.0])]
    p32 = load_model(device="cpu", amp="off", backend="torch").classify(portraits, boxes)
    p16 = load_model(device="cpu", amp="bf16", backend="torch").classify(portraits, boxes)
    for a, b in zip(p32, p16):
        assert np.abs(a.probs - b.probs).max() < 0.03
        assert a.emotions == b.emotions
