from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import fervid
from fervid.cli import cli

from conftest import samples


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    samples.write_photos(d / "set")
    (d / "set" / "sub").mkdir()
    shutil.copy(d / "set" / "astronaut.jpg", d / "set" / "sub" / "ASTRONAUT_COPY.JPEG")
    Image.new("RGB", (200, 150), (120, 130, 140)).save(d / "set" / "sub" / "wall.png")
    (d / "set" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (d / "set" / "empty.png").write_bytes(b"")
    (d / "set" / "notes.webp").write_text("this is text")
    (d / "set" / "readme.txt").write_text("not scanned")
    return d / "set"


def _scan(args):
    return CliRunner().invoke(cli, ["scan", *args])


def test_scan_rows_errors_and_exit_code(photos, tmp_path):
    out = tmp_path / "out.csv"
    r = _scan([str(photos), "--csv", str(out)])
    assert r.exit_code == 1, r.output  # three unreadable files
    assert "3 file(s) could not be read" in r.output and "broken.jpg" in r.output
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns[:6]) == ["path", "face", "x1", "y1", "x2", "y2"]
    assert list(df.columns[6:12]) == ["yaw", "pitch", "roll", "eyes_open", "mouth_open", "score"]
    assert list(df.columns[-3:]) == ["emotion", "confidence", "error"]
    by = {p: g for p, g in df.groupby("path")}
    assert set(by) == {
        "astronaut.jpg",
        "grace_hopper.jpg",
        "two_people.jpg",
        "broken.jpg",
        "empty.png",
        "notes.webp",
        "sub/ASTRONAUT_COPY.JPEG",
        "sub/wall.png",
    }
    assert len(by["astronaut.jpg"]) == 1 and by["astronaut.jpg"]["emotion"].iloc[0] != ""
    pair = by["two_people.jpg"]
    assert list(pair["face"]) == ["0", "1"]
    assert float(pair["x1"].iloc[0]) < float(pair["x1"].iloc[1])
    wall = by["sub/wall.png"]
    assert len(wall) == 1 and wall["face"].iloc[0] == "" and wall["error"].iloc[0] == ""
    for bad in ("broken.jpg", "empty.png", "notes.webp"):
        assert by[bad]["error"].iloc[0].startswith("cannot read image"), by[bad]
    probs = df[df["face"] != ""][list(fervid.load_model().classes)].astype(float)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-3)


def test_api_and_cli_agree(photos, tmp_path, model):
    out = tmp_path / "out.csv"
    _scan([str(photos), "--csv", str(out)])
    cli_df = pd.read_csv(out, dtype={"face": "Int64"})
    api_df = fervid.analyze_images(photos, model=model)
    pd.testing.assert_frame_equal(
        cli_df.drop(columns="error"), api_df.drop(columns="error"), check_dtype=False, atol=1e-4
    )


def test_existing_csv_kept_unless_overwrite(photos, tmp_path):
    out = tmp_path / "out.csv"
    r = _scan([str(photos), "--csv", str(out)])
    first = out.read_text()
    r = _scan([str(photos), "--csv", str(out)])
    assert r.exit_code == 1 and "--overwrite" in r.output and out.read_text() == first
    r = _scan([str(photos), "--csv", str(out), "--overwrite"])
    assert r.exit_code == 1 and out.read_text().startswith("path,face")  # 1: unreadable files
    # a file fervid did not write is never replaced, even with --overwrite or --resume
    other = tmp_path / "notes.csv"
    other.write_text("precious")
    for flag in ("--overwrite", "--resume"):
        r = _scan([str(photos), "--csv", str(other), flag])
        assert r.exit_code == 1 and "not written by fervid" in r.output
        assert other.read_text() == "precious" and len(r.output.strip().splitlines()) == 1


def test_resume_after_interruption(photos, tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    import fervid.photos

    real = fervid.photos.iter_images

    def interrupted(*a, **k):
        for i, res in enumerate(real(*a, **k)):
            if i == 3:
                raise KeyboardInterrupt
            yield res

    monkeypatch.setattr(fervid.photos, "iter_images", interrupted)
    r = _scan([str(photos), "--csv", str(out)])
    assert r.exit_code == 130 and "--resume" in r.output
    partial = tmp_path / "out.partial.csv"
    assert not out.exists() and partial.exists()
    kept = pd.read_csv(partial)
    assert kept["path"].nunique() == 3
    # a row cut in half by a hard kill: recorded as about to be written, half written
    from fervid.scan_table import ScanRecord

    record = ScanRecord(partial, photos)
    record.start()
    record.will_write(b"sub/wall.png,0,1.0,2.0,3.0,4.0,0.9\r\n")
    with open(partial, "ab") as fh:
        fh.write(b"sub/wall.png,0,1.0,2")
    monkeypatch.setattr(fervid.photos, "iter_images", real)
    r = _scan([str(photos), "--csv", str(out), "--resume"])
    # the half-written image is cut back (the record says where its rows began) and redone
    assert r.exit_code == 1 and "(3 already done)" in r.output
    assert out.exists() and not partial.exists()
    full = tmp_path / "full.csv"
    _scan([str(photos), "--csv", str(full)])
    a = pd.read_csv(out).sort_values(["path", "face"]).reset_index(drop=True)
    b = pd.read_csv(full).sort_values(["path", "face"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_crops_mode_classifies_whole_images(tmp_path, portraits, model):
    d = tmp_path / "crops"
    d.mkdir()
    face = portraits[0][60:200, 150:270]
    Image.fromarray(face).save(d / "f.png")
    df = fervid.analyze_images(d, model=model, crops=True)
    assert len(df) == 1 and df["x2"].iloc[0] == face.shape[1] and df["emotion"].iloc[0]
    direct = model.predict(model.prepare(face)[None])[0]
    assert np.allclose(df[list(model.classes)].iloc[0].to_numpy(float), direct, atol=1e-5)


def test_missing_folder_is_usage_error(tmp_path):
    r = _scan([str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_bad_model_is_usage_error(photos, tmp_path):
    bad = tmp_path / "m.safetensors"
    bad.write_bytes(b"nonsense" * 10)
    r = _scan([str(photos), "--model", str(bad), "--csv", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "not a checkpoint" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_other_formats_hold_the_same_rows(photos, tmp_path, fmt):
    _scan([str(photos), "--csv", str(tmp_path / "o.csv")])
    r = _scan([str(photos), "--csv", str(tmp_path / "o.csv"), "--format", fmt])
    assert r.exit_code == 1 and (tmp_path / "o.csv").exists()  # the CSV of the first run kept
    csv = pd.read_csv(tmp_path / "o.csv")
    other = (
        pd.read_json(tmp_path / "o.jsonl", lines=True)
        if fmt == "jsonl"
        else pd.read_parquet(tmp_path / "o.parquet")
    )
    assert list(other.columns) == list(csv.columns) and len(other) == len(csv)
    assert (other["path"].astype(str) == csv["path"]).all()
    assert np.allclose(other["happiness"].astype(float), csv["happiness"], equal_nan=True)
    assert not list(tmp_path.glob("*partial*")) and not (tmp_path / f"o.{fmt}.csv").exists()


def test_a_page_inside_the_folder_keeps_its_pictures_out_of_the_scan(photos, tmp_path):
    """The page's face pictures written inside the scanned folder are not scanned next time
    (a resume or an --overwrite), and a folder of the page's name that is not fervid's is
    left alone."""
    inner = tmp_path / "set"
    shutil.copytree(photos, inner)
    out = inner / "out.csv"
    for flag in ([], ["--overwrite"]):
        r = _scan([str(inner), "--csv", str(out), "--page", *flag])
        assert r.exit_code == 1, r.output  # 1: the unreadable files
        rows = pd.read_csv(out, keep_default_na=False)
        assert not rows.path.str.contains("out.faces").any()
        pictures = list((inner / "out.faces").iterdir())
        assert len(pictures) == (rows.emotion != "").sum()
    other = tmp_path / "other"
    (tmp_path / "other.faces").mkdir()
    (tmp_path / "other.faces" / "mine.jpg").write_bytes(b"precious")
    r = _scan([str(photos), "--csv", str(other) + ".csv", "--page"])
    assert r.exit_code == 1 and "other.faces: exists and was not written by fervid" in r.output
    assert (tmp_path / "other.faces" / "mine.jpg").read_bytes() == b"precious"
