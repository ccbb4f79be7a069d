"""A hostile user, third pass: the API and fervid-train under the output rules, output names
decided before any work, hostile names and checkpoints, one line for each (issue 24)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import fervid
from fervid.checkpoint import CheckpointError, ModelMeta, load_checkpoint, save_checkpoint
from fervid.classify import DEFAULT_MODEL
from fervid.cli import cli
from fervid.outputs import OutputError, OutputSkip
from fervid.train.cli import cli as train_cli

from conftest import samples


def _run(*args, command=cli):
    r = CliRunner().invoke(command, [str(a) for a in args])
    assert "Traceback" not in r.output and r.exc_info[0] in (SystemExit, None), r.output
    return r


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    return samples.write_video(d / "clip.mp4", width=320, height=240, fps=10, seconds=1.0)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_photos") / "talk"
    samples.write_photos(d)
    return d


# -- the API keeps the rules ----------------------------------------------------------------


def test_the_api_never_draws_over_a_users_video(clip, model, tmp_path):
    holiday = shutil.copy(clip, tmp_path / "my_holiday.mp4")
    before = Path(holiday).read_bytes()
    with pytest.raises(OutputError, match="not written by fervid"):
        fervid.analyze_video(clip, model=model, annotated=holiday)
    assert Path(holiday).read_bytes() == before


def test_annotate_video_leaves_files_it_did_not_write(clip, model, tmp_path):
    holiday = shutil.copy(clip, tmp_path / "my_holiday.mp4")
    mine = {
        tmp_path / "report.partial.csv": "my,notes\n1,2\n",
        tmp_path / "report.state.json": '{"mine": true}',
    }
    for p, text in mine.items():
        p.write_text(text)
    with pytest.raises(OutputError, match="not written by fervid"):
        fervid.annotate_video(clip, tmp_path / "report.csv", model=model, annotated=holiday)
    assert all(p.read_text() == text for p, text in mine.items())
    assert Path(holiday).read_bytes() == Path(clip).read_bytes()


@pytest.mark.parametrize("entry", ["cli", "api"])
def test_empty_partial_files_a_kill_left_are_replaced_by_every_entry_point(
    clip, model, tmp_path, entry
):
    out = tmp_path / "clip.fervid.csv"
    for name in ("clip.fervid.partial.csv", "clip.fervid.state.json", "clip.fervid.partial.mp4"):
        (tmp_path / name).write_bytes(b"")  # a kill just after the files were created
    if entry == "cli":
        r = _run("annotate", clip, "--out-dir", tmp_path)
        assert r.exit_code == 0, r.output
    else:
        fervid.annotate_video(clip, out, model=model, annotated=tmp_path / "clip.fervid.mp4")
    assert len(pd.read_csv(out)) > 0 and (tmp_path / "clip.fervid.mp4").stat().st_size > 0


def test_a_finished_csv_is_kept_when_not_asked_to_overwrite(clip, model, tmp_path):
    out = tmp_path / "o.csv"
    fervid.annotate_video(clip, out, model=model)
    before = out.read_bytes()
    with pytest.raises(OutputSkip, match="exists"):  # checked under the lock: no race
        fervid.annotate_video(clip, out, model=model, overwrite=False)
    assert out.read_bytes() == before


def test_train_outputs_never_replace_a_users_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    r = _run("export", DEFAULT_MODEL, notes, command=train_cli)
    assert r.exit_code == 1 and "not written by fervid" in r.output
    assert notes.read_text() == "precious"
    from fervid.outputs import write_json_report

    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"my": 1}')
    with pytest.raises(OutputError, match="not written by fervid"):
        write_json_report(metrics, {"acc": 0.5})
    assert json.loads(metrics.read_text()) == {"my": 1}
    write_json_report(tmp_path / "ours.json", {"acc": 0.5})
    write_json_report(tmp_path / "ours.json", {"acc": 0.6})  # fervid's own: replaced
    assert json.loads((tmp_path / "ours.json").read_text())["acc"] == 0.6


def test_a_study_never_replaces_a_users_comparison(tmp_path):
    from fervid.train.study import write_report

    (tmp_path / "comparison.csv").write_text("my own table\n")
    with pytest.raises(OutputError, match="not written by fervid"):
        write_report([], tmp_path)
    assert (tmp_path / "comparison.csv").read_text() == "my own table\n"


def test_photo_scans_and_video_outputs_never_share_a_name(photo_dir, tmp_path):
    talk = photo_dir.parent / "talk.mp4"
    r = _run("scan", photo_dir)
    assert (photo_dir.parent / "talk.fervid.photos.csv").exists(), r.output
    assert not (photo_dir.parent / "talk.fervid.csv").exists()
    assert not talk.exists()  # nothing of a video's is touched


# -- names decided before any work, one line for each bad value -----------------------------


@pytest.mark.parametrize(
    "name, fmt, reader",
    [
        ("results", "csv", pd.read_csv),
        ("faces.txt", "csv", pd.read_csv),
        ("x.tsv", "parquet", pd.read_parquet),
    ],
)
def test_any_output_name_works(photo_dir, tmp_path, name, fmt, reader):
    r = _run("scan", photo_dir, "--csv", tmp_path / name, "--format", fmt)
    assert r.exit_code in (0, 1) and (tmp_path / name).exists(), r.output
    assert "emotion" in reader(tmp_path / name).columns


@pytest.mark.parametrize(
    "args, message",
    [
        (["--end", "1e308"], None),
        (["--device", "meta"], "--device meta: not a device here"),
        (["--detect-interval", "nan"], "--detect-interval: must be a finite number"),
        (["--smooth", "nan"], "--smooth: must be a finite number"),
    ],
)
def test_odd_values_get_one_line_before_any_work(clip, tmp_path, args, message):
    r = _run("annotate", clip, "--out-dir", tmp_path, "--no-video", *args)
    if message is None:
        assert r.exit_code == 0, r.output
    else:
        assert r.exit_code == 2 and message in r.output
        assert not list(tmp_path.glob("*.csv"))


def test_a_device_is_not_a_folder_to_scan(tmp_path):
    r = _run("scan", "/dev/zero", "--csv", tmp_path / "o.csv")
    assert r.exit_code == 2 and "not a folder or a regular file" in r.output
    assert not Path("/dev/zero.fervid.photos.csv").exists()


def test_workers_has_an_upper_bound():
    r = _run("--data", "x", "--workers", "100000", command=train_cli)
    assert r.exit_code == 2 and "--workers" in r.output


# -- hostile checkpoints --------------------------------------------------------------------


def test_class_names_that_are_fervids_columns_are_refused():
    _, meta = load_checkpoint(DEFAULT_MODEL)
    for bad in ("frame", "emotion", "confidence", "path", "new\nline", "=cmd()"):
        classes = [bad, *meta.classes[1:]]
        with pytest.raises(CheckpointError, match="class name"):
            ModelMeta(**{**meta.__dict__, "classes": classes})


def test_non_finite_weights_are_refused_at_load(tmp_path):
    state, meta = load_checkpoint(DEFAULT_MODEL)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")
    save_checkpoint(tmp_path / "nan.safetensors", state, meta)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(tmp_path / "nan.safetensors")
    r = _run("scan", tmp_path, "--model", tmp_path / "nan.safetensors", "--csv", tmp_path / "o.csv")
    assert r.exit_code == 2 and "NaN or infinite" in r.output


def test_a_safetensors_header_starting_with_0x80_loads(tmp_path):
    state, meta = load_checkpoint(DEFAULT_MODEL)
    for pad in range(300):
        path = tmp_path / "m.safetensors"
        save_checkpoint(path, state, replace(meta, dataset="x" * pad))
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no padding gave a header length starting with 0x80")
    _, got = load_checkpoint(path)
    assert got.classes == meta.classes


def test_a_folder_as_a_model_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        fervid.load_model(tmp_path)


# -- hostile names ---------------------------------------------------------------------------


def _interrupted_scan(folder, out, monkeypatch, after: int):
    """A scan of ``folder`` into ``out`` stopped by Ctrl-C after ``after`` images."""
    import fervid.photos

    real = fervid.photos.iter_images

    def interrupted(*a, **k):
        for i, res in enumerate(real(*a, **k)):
            if i == after:
                raise KeyboardInterrupt
            yield res

    monkeypatch.setattr(fervid.photos, "iter_images", interrupted)
    r = _run("scan", folder, "--csv", out)
    monkeypatch.setattr(fervid.photos, "iter_images", real)
    assert r.exit_code == 130, r.output


def test_formula_names_are_written_safe_and_resume_still_matches(photo_dir, tmp_path, monkeypatch):
    d = tmp_path / "p"
    d.mkdir()
    for name in ("=cmd.jpg", "+1.jpg", "@sum.jpg", "plain.jpg"):
        shutil.copy(photo_dir / "astronaut.jpg", d / name)
    _run("scan", d, "--csv", tmp_path / "full.csv")
    paths = set(pd.read_csv(tmp_path / "full.csv", keep_default_na=False)["path"])
    assert paths == {"'=cmd.jpg", "'+1.jpg", "'@sum.jpg", "plain.jpg"}
    out = tmp_path / "o.csv"
    _interrupted_scan(d, out, monkeypatch, after=3)
    r = _run("scan", d, "--csv", out, "--resume")  # the record says 3 images are whole
    assert r.exit_code == 0 and "1 images scanned (3 already done)" in r.output, r.output
    assert sorted(out.read_text().splitlines()) == sorted(
        (tmp_path / "full.csv").read_text().splitlines()
    )
    r = _run("scan", d, "--csv", out, "--resume")
    assert r.exit_code == 0 and "finished already" in r.output


@pytest.mark.parametrize("tamper", ["other folder", "sorted", "row appended", "no record"])
def test_resume_continues_only_this_scans_untouched_output(
    photo_dir, tmp_path, monkeypatch, tamper
):
    out = tmp_path / "o.csv"
    _interrupted_scan(photo_dir, out, monkeypatch, after=2)
    partial = tmp_path / "o.partial.csv"
    folder = photo_dir
    lines = partial.read_text().splitlines(keepends=True)
    if tamper == "other folder":
        folder = tmp_path / "other"
        shutil.copytree(photo_dir, folder)
    elif tamper == "sorted":
        partial.write_text(lines[0] + "".join(sorted(lines[1:], reverse=True)))
    elif tamper == "row appended":
        partial.write_text("".join(lines) + lines[-1])
    else:
        (tmp_path / "o.partial.csv.scan.json").unlink()
    before = partial.read_bytes()
    r = _run("scan", folder, "--csv", out, "--resume")
    assert r.exit_code == 1 and "cannot resume" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert partial.read_bytes() == before and not out.exists()  # nothing cut, nothing written


def test_escape_codes_in_a_video_name_are_not_printed_raw(clip, tmp_path):
    odd = tmp_path / "\x1b[31mred\x1b[0m.mp4"
    shutil.copy(clip, odd)
    r = _run("annotate", odd, "--no-video")
    assert r.exit_code == 0 and "\x1b" not in r.output
    r = _run("annotate", odd, "--no-video")  # skipped: the names in that line too
    assert "skipped" in r.output and "\x1b" not in r.output


def test_links_to_folders_out_of_the_scanned_folder_are_said_not_followed(photo_dir, tmp_path):
    d = tmp_path / "inside"
    d.mkdir()
    shutil.copy(photo_dir / "astronaut.jpg", d / "a.jpg")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(photo_dir / "astronaut.jpg", outside / "secret.jpg")
    os.symlink("..", d / "up")
    os.symlink(outside / "secret.jpg", d / "linked.jpg")
    out = tmp_path / "o.csv"
    _run("scan", d, "--csv", out)
    df = pd.read_csv(out, keep_default_na=False)
    by_path = df.set_index("path")
    assert set(df["path"]) == {"a.jpg", "linked.jpg", "up"}  # nothing read through "up"
    assert "outside the scanned folder: not followed" in by_path.loc["up", "error"]
    assert by_path.loc["linked.jpg", "emotion"]  # a link to a file is the user's choice: read


def test_a_path_given_as_bytes_is_read(clip, model):
    df = fervid.analyze_video(os.fsencode(str(clip)), model=model)
    assert len(df) and df.attrs["fervid"].frames == 10


def test_a_full_disk_is_one_line_and_keeps_what_was_written(photo_dir, tmp_path):
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(small)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        d = tmp_path / "many"
        d.mkdir()
        from PIL import Image

        for k in range(150):  # small pictures, long names: rows fill the 16 kB disk fast
            Image.new("RGB", (32, 32), (k, 90, 120)).save(d / f"p{k:03d}_{'x' * 200}.png")
        r = _run("scan", d, "--csv", small / "o.csv")
        assert r.exit_code == 1 and "--resume" in r.output and "cannot write" in r.output
        assert len(r.output.strip().splitlines()) == 1
        assert (small / "o.partial.csv").exists()
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_a_full_disk_while_converting_keeps_every_row_for_resume(photo_dir, tmp_path, monkeypatch):
    import errno

    import fervid.writers

    def full(csv_path, out):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "o.csv"
    real = fervid.writers.WRITERS["jsonl"]
    monkeypatch.setitem(fervid.writers.WRITERS, "jsonl", full)
    r = _run("scan", photo_dir, "--csv", out, "--format", "jsonl")
    assert r.exit_code == 1 and "every row is kept" in r.output and "--resume" in r.output
    assert len(r.output.strip().splitlines()) == 1
    monkeypatch.setitem(fervid.writers.WRITERS, "jsonl", real)
    r = _run("scan", photo_dir, "--csv", out, "--format", "jsonl", "--resume")
    assert r.exit_code == 0 and "0 images scanned (3 already done)" in r.output, r.output
    assert len(pd.read_json(tmp_path / "o.jsonl", lines=True)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl"]


# -- more hostile files ------------------------------------------------------------------------


def test_the_largest_video_stream_is_read_not_a_thumbnail_track(tmp_path, model):
    from fractions import Fraction

    import av

    path = tmp_path / "two_tracks.mp4"
    tb = Fraction(1, 12800)
    with av.open(str(path), "w") as out:
        thumb = out.add_stream("libx264", rate=10)
        thumb.width, thumb.height, thumb.pix_fmt = 160, 120, "yuv420p"
        main = out.add_stream("libx264", rate=10)
        main.width, main.height, main.pix_fmt = 480, 360, "yuv420p"
        for s in (thumb, main):
            s.time_base = s.codec_context.time_base = tb
        for i in range(10):
            t = i / 10
            for s, img in (
                (thumb, samples.background(160, 120) * 0),
                (main, samples.scene(t, 480, 360, samples.portraits())),
            ):
                frame = av.VideoFrame.from_ndarray(img.astype("uint8"), format="rgb24")
                frame.pts, frame.time_base = int(round(t / tb)), tb
                for p in s.encode(frame):
                    out.mux(p)
        for s in (thumb, main):
            for p in s.encode(None):
                out.mux(p)
    from fervid.video import VideoInfo

    info = VideoInfo.from_path(path)
    assert (info.width, info.height) == (480, 360)
    df = fervid.analyze_video(path, model=model)
    assert df["face"].notna().sum() >= 10


def test_the_very_large_image_warning_is_said_for_every_image(tmp_path, monkeypatch, caplog):
    from PIL import Image

    d = tmp_path / "big"
    d.mkdir()
    for k in range(6):
        Image.new("RGB", (40, 40), (k * 30, 80, 90)).save(d / f"b{k}.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for _ in range(3):  # decoded two at a time: the warnings are counted per file
        caplog.clear()
        with caplog.at_level("WARNING"):
            fervid.analyze_images(d)
        assert caplog.text.count("a very large image") == 6


def test_deeply_nested_checkpoint_metadata_is_one_line(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "nested.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"fervid": "[" * 100000 + "]" * 100000})
    with pytest.raises(CheckpointError, match=f"{path}: .*nested too deeply"):
        load_checkpoint(path)


def test_a_zip_bomb_as_a_model_is_refused_before_it_is_unpacked(tmp_path):
    import zipfile

    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:  # noqa: SIM117
        with z.open("archive/data/0", "w", force_zip64=True) as fh:
            for _ in range(300):  # 300 MB of zeros: a few hundred kB on disk
                fh.write(b"\0" * 2**20)
    assert bomb.stat().st_size < 2 * 2**20
    with pytest.raises(CheckpointError, match="unpacks to"):
        load_checkpoint(bomb)


def test_a_diverging_run_stops_with_one_line(tmp_path):
    from train_fixtures import make_folder_dataset

    data = make_folder_dataset(tmp_path / "toy", per_class=(12, 12, 12), val_per_class=4)
    args = ["--data", data, "--archs", "resnet18", "--epochs", "2", "--out", tmp_path / "runs"]
    args += ["--input-size", "32", "--batch-size", "12", "--lr", "1e30", "--seed", "0", "-q"]
    r = _run(*args, command=train_cli)
    assert r.exit_code == 1 and "diverged" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


def test_resume_cuts_only_between_whole_records(photo_dir, tmp_path, monkeypatch):
    d = tmp_path / "names"
    d.mkdir()
    for name in ("a.jpg", 'line\nbreak, "quoted".jpg', "z.jpg"):
        shutil.copy(photo_dir / "astronaut.jpg", d / name)
    _run("scan", d, "--csv", tmp_path / "full.csv")
    out = tmp_path / "o.csv"
    _interrupted_scan(d, out, monkeypatch, after=2)  # the odd name is the last one written
    r = _run("scan", d, "--csv", out, "--resume")
    assert r.exit_code == 0 and "(2 already done)" in r.output, r.output
    a = pd.read_csv(out).sort_values(["path", "face"]).reset_index(drop=True)
    b = pd.read_csv(tmp_path / "full.csv").sort_values(["path", "face"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_a_folder_tree_deeper_than_the_path_limit_gets_a_row(photo_dir, tmp_path):
    root = tmp_path / "deep"
    root.mkdir()
    shutil.copy(photo_dir / "astronaut.jpg", root / "top.jpg")
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(22):  # 22 x 201 characters: past Linux's 4096
            os.mkdir("d" * 200, dir_fd=fd)
            nxt = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    out = tmp_path / "o.csv"
    r = _run("scan", root, "--csv", out)
    assert r.exit_code == 1 and "cannot write" not in r.output, r.output
    df = pd.read_csv(out, keep_default_na=False)
    assert df.set_index("path").loc["top.jpg", "emotion"]
    assert df["error"].str.contains("too long").sum() == 1


# -- CPUs without AMX, classification by need ------------------------------------------------


def test_an_isa_below_amx_makes_the_runtime_choose_as_without_it(monkeypatch):
    from fervid.runtime import Runtime, cpu_has_amx, cpu_has_native_bf16

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_has_amx() and not cpu_has_native_bf16()
    rt = Runtime.create("cpu")
    assert rt.amp_dtype is None and rt.channels_last  # fp32, channels_last
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert Runtime.create("cpu").channels_last
    with open("/proc/cpuinfo") as fh:  # the CPU's own flags decide where nothing hides them
        flags = next(line for line in fh if line.startswith("flags")).split()
    native = "amx_tile" in flags or "avx512_bf16" in flags
    assert cpu_has_native_bf16() == native
    assert (Runtime.create("cpu").amp_dtype is torch.bfloat16) == native
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # AVX-512 without its bf16
    assert not cpu_has_native_bf16() and Runtime.create("cpu").amp_dtype is None


def test_classification_by_need_keeps_one_row_per_face_per_frame(tmp_path, model):
    clip = tmp_path / "still.mp4"
    still = [samples.Actor(0, lambda t: (160, 120), lambda t: 90)]
    samples.write_clip(clip, still, width=320, height=240, fps=10, frames=15)
    every = fervid.analyze_video(clip, model=model, smooth=0)
    by_need = fervid.analyze_video(clip, model=model, smooth=0, classify_interval=1.0)
    assert len(by_need) == len(every) and list(by_need["face"]) == list(every["face"])
    faces = by_need.dropna(subset=["face"])
    # a still face keeps its probabilities between classifications, within a batch of
    # frames too (all 15 frames are one batch: before, every one was classified)
    first = faces[faces["face"] == faces["face"].iloc[0]][list(model.classes)].to_numpy()
    carried = (np.abs(np.diff(first, axis=0)).max(axis=1) == 0).sum()
    assert carried >= 8, carried
    assert (by_need["emotion"] == every["emotion"]).mean() >= 0.9


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory, photo_dir):
    """A multi-page TIFF (a blank page, then two faces), an animated WebP (a face, then
    blank) and a still photo."""
    from PIL import Image

    d = tmp_path_factory.mktemp("frames") / "stacks"
    d.mkdir()
    face = Image.open(photo_dir / "astronaut.jpg").convert("RGB")
    other = Image.open(photo_dir / "grace_hopper.jpg").convert("RGB").resize(face.size)
    blank = Image.new("RGB", face.size, (90, 90, 90))
    blank.save(d / "stack.tif", save_all=True, append_images=[face, other])
    face.save(d / "anim.webp", save_all=True, append_images=[blank], duration=100, loop=0)
    shutil.copy(photo_dir / "astronaut.jpg", d / "still.jpg")
    return d


def test_every_frame_of_a_multi_page_or_animated_image_is_read(frames_dir, tmp_path):
    out = tmp_path / "f.csv"
    r = _run("scan", frames_dir, "--csv", out)
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out, keep_default_na=False)
    faces = df[df["emotion"] != ""].groupby("path").size().to_dict()
    assert set(df["path"]) == {"anim.webp#1", "anim.webp#2", "still.jpg"} | {
        f"stack.tif#{k}" for k in (1, 2, 3)
    }
    assert faces == {"anim.webp#1": 1, "still.jpg": 1, "stack.tif#2": 1, "stack.tif#3": 1}
    assert (df["error"] == "").all()
    assert "3 images scanned" in r.output, r.output


def test_frames_past_the_limit_are_said_in_a_row(frames_dir, tmp_path, monkeypatch):
    import fervid.photos

    monkeypatch.setattr(fervid.photos, "MAX_FRAMES", 2)
    out = tmp_path / "f.csv"
    r = _run("scan", frames_dir, "--csv", out)
    assert r.exit_code == 1 and "1 file(s) could not be read" in r.output, r.output
    df = pd.read_csv(out, keep_default_na=False)
    last = df[df["path"] == "stack.tif#3"]
    assert last["error"].tolist() == [
        "frame(s) 3 of 3 not read (a file gives at most 2 frames and 50 megapixels)"
    ]


def test_a_resumed_scan_keeps_each_files_frames_whole(frames_dir, tmp_path, monkeypatch):
    full = tmp_path / "full.csv"
    _run("scan", frames_dir, "--csv", full)
    out = tmp_path / "o.csv"
    _interrupted_scan(frames_dir, out, monkeypatch, after=4)  # in the TIFF's frames
    kept = pd.read_csv(tmp_path / "o.partial.csv", keep_default_na=False)["path"]
    assert set(kept) == {"anim.webp#1", "anim.webp#2"}  # not two thirds of the TIFF
    r = _run("scan", frames_dir, "--csv", out, "--resume")
    assert r.exit_code == 0 and "2 images scanned (1 already done)" in r.output, r.output
    assert sorted(out.read_text().splitlines()) == sorted(full.read_text().splitlines())


def test_an_identity_file_fervid_did_not_write_is_left_alone(clip, model, tmp_path):
    mine = tmp_path / "report.identity.json"
    mine.write_text('{"mine": true}')
    with pytest.raises(OutputError, match="not written by fervid"):
        fervid.annotate_video(clip, tmp_path / "report.csv", model=model)
    assert mine.read_text() == '{"mine": true}'
