"""The batch of videos as a library call (fervid.batch.annotate_many) and a video's outputs as
one typed set (fervid.video_outputs): what the `annotate` command prints is made from these."""

from __future__ import annotations

import shutil

import pytest

from fervid.batch import VideoOutcome, annotate_many, find_videos, video_kinds
from fervid.video_outputs import DERIVED, KINDS, VideoOutputs, write_derived


def test_an_outputs_set_names_every_kind_once(tmp_path):
    out = VideoOutputs.of_table(tmp_path / "talk.fervid.csv", {"csv", "people", "html"})
    assert out.path("people") == tmp_path / "talk.fervid.people.csv"
    assert out.path("faces") == tmp_path / "talk.fervid.people"
    assert out.table == tmp_path / "talk.fervid.csv"
    assert out.asked() == ["csv", "people", "html"]  # in the order of KINDS
    parquet = VideoOutputs(tmp_path / "talk", fmt="parquet")
    assert parquet.table == tmp_path / "talk.fervid.parquet.csv"  # never another run's CSV
    assert len({out.path(k) for k in KINDS}) == len(KINDS)
    assert set(DERIVED) == {"png", "people", "episodes", "faces", "eaf", "tsv", "html"}
    with pytest.raises(ValueError, match="unknown outputs: nope"):
        VideoOutputs(tmp_path / "talk", frozenset({"nope"}))


def test_the_kinds_of_annotate():
    assert video_kinds() == {"csv", "mp4", "people", "episodes", "faces", "identity"}
    kinds = video_kinds(fmt="jsonl", video=False, plot=True, elan=True, page=True)
    assert kinds == {"jsonl", "png", "people", "episodes", "faces", "eaf", "tsv", "html"}


def test_many_videos_give_one_outcome_each(videos, model, tmp_path):
    (tmp_path / "in").mkdir()
    two = shutil.copy(videos["two"], tmp_path / "in" / "two.mp4")
    (tmp_path / "in" / "bad.mp4").write_bytes(b"not a video")
    found, unread = find_videos([tmp_path / "in"])
    assert sorted(v.name for v, _ in found) == ["bad.mp4", "two.mp4"] and unread == []
    kinds = video_kinds(video=False, page=True)
    outcomes = list(annotate_many(found, kinds=kinds, model=model, out_dir=tmp_path / "out"))
    assert all(isinstance(o, VideoOutcome) for o in outcomes)
    by = {o.video.name: o for o in outcomes}
    assert by["bad.mp4"].failed and by["bad.mp4"].run is None
    assert "bad.mp4" not in by["bad.mp4"].error  # the name is the printer's, said once
    good = by["two.mp4"]
    assert not good.failed and good.run.frames == 12 and good.summary["faces"] > 0
    assert good.whole_s > good.run.seconds > 0
    for k in good.outputs.asked():
        assert good.outputs.path(k).exists(), k
    assert good.outputs.path("people").parent == tmp_path / "out"
    # a second run skips what is done, said as a skip, not a failure
    again = list(annotate_many([(two, None)], kinds=kinds, model=model, out_dir=tmp_path / "out"))
    assert again[0].skipped and not again[0].failed


def test_derived_outputs_are_written_from_a_table_alone(videos, model, tmp_path):
    """What annotate, report and regroup share: the outputs made from a finished table."""
    (found,) = list(
        annotate_many(
            [(videos["two"], None)], kinds=video_kinds(video=False), model=model, out_dir=tmp_path
        )  # fmt: skip
    )
    table = found.outputs.path("csv")
    again = VideoOutputs(tmp_path / "again")
    done = write_derived(table, again, {"people", "html", "tsv"}, video=None)
    assert done == ["people", "tsv", "html"]
    people = found.outputs.path("people").read_text()
    assert again.path("people").read_text() == people  # the same writer, the same bytes
    assert not again.path("faces").exists()  # no video given: no pictures


def test_the_summary_says_how_many_people_it_leaves_out(tmp_path):
    from fervid.cli import _summary
    from fervid.pipeline import VideoRun

    people = [{"person": p, "frames": 10, "emotion": "neutral", "share": 1.0} for p in range(12)]
    summary = {"rows": 120, "faces": 120, "tracks": 12, "people": people, "by": "person"}
    outputs = VideoOutputs(tmp_path / "crowd", frozenset({"csv", "people"}))
    run = VideoRun(str(tmp_path / "crowd.mp4"), frames=10, analysed=10, seconds=1.0)
    outcome = VideoOutcome(tmp_path / "crowd.mp4", outputs, run=run, summary=summary, whole_s=3.5)
    text = _summary(outcome)
    # the frames/s says what it covers, and the whole job's time stands beside it
    assert (
        "in 1.0 s, 10.0 frames/s (the whole job, outputs written after the analysis too: 3.5 s)"
        in text
    )
    lines = text.splitlines()
    assert sum(line.startswith("  person ") for line in lines) == 10
    assert f"... and 2 more (see {tmp_path / 'crowd.fervid.people.csv'})" in text
