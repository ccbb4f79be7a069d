"""regroup and report under hostile input (issue #43): a table or identity file that is damaged,
cut, sorted, of another video, or changed while they run; a run stopped part way. Each is a
one-line refusal with nothing written, or the right result: never a traceback, never a table
half rewritten."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fervid.cli import cli

from conftest import ROOT


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The sample annotated with every output, once."""
    d = tmp_path_factory.mktemp("done")
    video = shutil.copy(ROOT / "samples" / "two_people.mp4", d / "two.mp4")
    r = CliRunner().invoke(cli, ["-q", "annotate", str(video), "--page", "--elan", "--plot"])
    assert r.exit_code == 0, r.output
    return d


@pytest.fixture
def run(done, tmp_path):
    """A fresh copy of the finished run."""
    for p in done.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy)(p, tmp_path / p.name)
    return tmp_path


def _cli(*args):
    r = CliRunner().invoke(cli, ["-q", *[str(a) for a in args]])
    assert "Traceback" not in r.output, r.output
    return r


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _refused(run, args, *words):
    before = _files(run)
    r = _cli(*args)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    for w in words:
        assert w in r.output, r.output
    assert _files(run) == before  # nothing written, nothing removed
    return r


def _edit_table(run, change):
    table = run / "two.fervid.csv"
    df = pd.read_csv(table, keep_default_na=False, dtype=str)
    change(df)
    df.to_csv(table, index=False)
    return table


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("tracks"),
        lambda d: d["tracks"]["0"]["samples"][0].__setitem__(5, float("nan")),
        lambda d: d["tracks"]["1"].__setitem__("samples", [[0.1] * 12]),
        lambda d: d.__setitem__("cooccur", [[0, 99]]),
        lambda d: d.__setitem__("people", "two"),
        lambda d: d["tracks"]["0"].__setitem__("first_t", None),
    ],
    ids=["no tracks", "NaN embedding", "short embedding", "unknown pair", "people", "no time"],
)
def test_a_damaged_identity_file_is_one_line_naming_it(run, damage):
    ident = run / "two.fervid.identity.json"
    d = json.loads(ident.read_text())
    damage(d)
    ident.write_text(json.dumps(d).replace("NaN", "NaN"))
    _refused(run, ["regroup", run / "two.fervid.csv", "--people", "2"], "two.fervid.identity.json")


def test_an_identity_file_cut_off_is_refused(run):
    ident = run / "two.fervid.identity.json"
    ident.write_bytes(ident.read_bytes()[:200])
    _refused(run, ["regroup", run / "two.fervid.csv"], "two.fervid.identity.json")


def test_the_identity_of_another_video_is_refused(run):
    ident = run / "two.fervid.identity.json"
    d = json.loads(ident.read_text())
    d["video"] = "other.mp4"
    ident.write_text(json.dumps(d))
    _refused(run, ["regroup", run / "two.fervid.csv"], "identity of other.mp4")


def test_another_video_given_to_draw_on_is_refused(run):
    other = shutil.copy(run / "two.mp4", run / "other.mp4")
    _refused(run, ["regroup", run / "two.fervid.csv", "--video", other], "made from two.mp4")


@pytest.mark.parametrize("command", ["regroup", "report"])
def test_a_table_cut_mid_row_is_refused(run, command):
    table = run / "two.fervid.csv"
    table.write_bytes(table.read_bytes()[:-25])
    extra = ["--overwrite"] if command == "report" else []
    _refused(run, [command, table, *extra], "two.fervid.csv", "cut off")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("time_s", "nan"),
        ("time_s", "inf"),
        ("time_s", "-1"),
        ("happiness", "nan"),
        ("happiness", "-0.5"),
        ("happiness", "1e308"),
    ],  # fmt: skip
)
@pytest.mark.parametrize("command", ["regroup", "report"])
def test_numbers_that_are_not_times_or_probabilities_are_refused(run, command, column, value):
    table = _edit_table(run, lambda df: df.loc.__setitem__((40, column), value))
    extra = ["--overwrite"] if command == "report" else []
    _refused(run, [command, table, *extra], "two.fervid.csv", "row 42")


def test_rows_out_of_time_order_give_the_same_people_and_episodes(run, done):
    table = _edit_table(run, lambda df: df.sort_values("person", kind="stable", inplace=True))
    assert _cli("report", table, "--overwrite").exit_code == 0
    for name in ("two.fervid.people.csv", "two.fervid.episodes.csv"):
        assert (run / name).read_text() == (done / name).read_text(), name


def test_regroup_waits_for_no_one_it_reads_only_under_the_lock(run):
    """While another run holds the table (annotate --overwrite finishing), regroup reads
    nothing: its refusal is the lock's, even with a damaged identity file."""
    from fervid.outputs import OutputLock

    (run / "two.fervid.identity.json").write_text("{}")
    with OutputLock(run / "two.fervid.csv"):
        _refused(run, ["regroup", run / "two.fervid.csv"], "another fervid run is writing it")


def test_a_regroup_stopped_part_way_is_finished_by_the_next(run, monkeypatch):
    import fervid.regroup

    table = run / "two.fervid.csv"
    real = fervid.regroup._redraw

    def stopped(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(fervid.regroup, "_redraw", stopped)
    r = CliRunner().invoke(cli, ["-q", "regroup", str(table), "--apart", "0,1", "--people", "2"])
    assert r.exit_code != 0
    journal = run / "two.fervid.regroup.json"
    assert journal.exists()  # the table may be rewritten; what remains to do is written down
    monkeypatch.setattr(fervid.regroup, "_redraw", real)
    # the same command again: the stopped one is finished first, then this one runs
    assert _cli("regroup", table, "--apart", "0,1", "--people", "2").exit_code == 0
    assert not journal.exists()
    ident = json.loads((run / "two.fervid.identity.json").read_text())
    assert ident["people"] == 2 and [0, 1] in ident["apart"]
    df = pd.read_csv(table)
    people = pd.read_csv(run / "two.fervid.people.csv")
    assert sorted(people["person"]) == sorted(df["person"].dropna().astype(int).unique())


def test_a_journal_of_an_older_run_is_not_applied(run):
    """A journal left by a regroup stopped before the video was annotated again belongs to
    the old identity: it is dropped, not applied to the new table."""
    table = run / "two.fervid.csv"
    journal = run / "two.fervid.regroup.json"
    journal.write_text(json.dumps({"written_by": "fervid regroup journal", "from": "0" * 64,
                                   "persons": {"0": [5, 1.0]}}))  # fmt: skip
    assert _cli("regroup", table, "--people", "2").exit_code == 0
    assert not journal.exists()
    assert set(pd.read_csv(table)["person"].dropna().astype(int)) == {0, 1}
    assert np.isfinite(pd.read_csv(table)["person"].dropna()).all()


def _scan_peak_mb(folder, out) -> float:
    import subprocess
    import sys

    code = (
        "import resource, sys; from fervid.cli import main; sys.argv = ['fervid', '-q', "
        f"'scan', {str(folder)!r}, '--csv', {str(out)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    return int(r.stdout.strip().splitlines()[-1]) / 1024


@pytest.mark.slow
def test_a_tiff_of_many_huge_blank_pages_stays_within_memory(tmp_path):
    """A 4 MB TIFF of 60 blank 4000 x 4000 pages took 4.1 GB (about 50 MB a page more): a
    file gives at most 50 megapixels (here 3 pages), the pages past them said in a row, and
    the scan's peak is within 600 MB of a scan of one such page (PyTorch, OpenVINO and the
    models take about 1.4 GB here whatever the photos)."""
    from PIL import Image

    blank = Image.new("RGB", (4000, 4000), "white")
    for n in (1, 60):
        (tmp_path / f"p{n}").mkdir()
        blank.save(tmp_path / f"p{n}" / "stack.tif", save_all=True,
                   append_images=[blank] * (n - 1), compression="tiff_deflate")  # fmt: skip
    assert (tmp_path / "p60" / "stack.tif").stat().st_size < 8_000_000
    one = _scan_peak_mb(tmp_path / "p1", tmp_path / "one.csv")
    many = _scan_peak_mb(tmp_path / "p60", tmp_path / "many.csv")
    assert many - one < 600, (one, many)
    df = pd.read_csv(tmp_path / "many.csv", keep_default_na=False)
    said = df[df["error"] != ""]["error"].tolist()
    assert len(said) == 1 and "4-60 of 60 not read" in said[0] and "50 megapixels" in said[0]


def test_a_rewrite_leaves_nothing_of_the_run_before(run):
    """annotate --overwrite with fewer outputs asked removes the earlier run's others (fervid's
    own only); a regroup to fewer people removes the pictures of people no longer there."""
    mine = run / "two.fervid.notes.txt"
    mine.write_text("mine")
    assert _cli("regroup", run / "two.fervid.csv", "--same", "0,1").exit_code == 1  # seen together
    ident = run / "two.fervid.identity.json"
    d = json.loads(ident.read_text())
    d["cooccur"] = []  # as if never seen together: one person
    ident.write_text(json.dumps(d))
    assert _cli("regroup", run / "two.fervid.csv", "--same", "0,1").exit_code == 0
    assert sorted(p.name for p in (run / "two.fervid.people").iterdir()) == ["person_0.jpg"]
    r = _cli("annotate", run / "two.mp4", "--overwrite", "--no-video")
    assert r.exit_code == 0, r.output
    for gone in ("mp4", "html", "eaf", "episodes.tsv", "png"):
        assert not (run / f"two.fervid.{gone}").exists(), gone
    assert (run / "two.fervid.csv").exists() and mine.read_text() == "mine"


@pytest.mark.parametrize("command", [["report", "--overwrite"], ["regroup", "--people", "2"]])
def test_report_and_regroup_need_no_pytorch(run, command):
    """They read a table and write from it: PyTorch (650 MB, seconds to import) is not loaded."""
    import subprocess
    import sys

    argv = ["fervid", "-q", command[0], str(run / "two.fervid.csv"), *command[1:]]
    code = (
        f"import sys; from fervid.cli import main; sys.argv = {argv!r}\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "False"
