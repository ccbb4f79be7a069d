"""What a researcher takes away: people, episodes, ELAN, and the pages, checked on synthetic
probability sequences, on a real annotated video and in a real headless browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import fervid
from fervid.cli import cli
from fervid.options import EpisodeOptions
from fervid.pages import write_photos_page
from fervid.persons import episodes, people, read_people
from fervid.rows import RowSchema

CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def _table(per_person: dict[int, list[tuple[float, dict]]], step: float = 0.04) -> pd.DataFrame:
    """A video table: for each person, (time, {emotion: probability}) rows; the rest of
    each row's probability goes to neutral."""
    rows = []
    for pid, seq in per_person.items():
        for t, probs in seq:
            p = [probs.get(c, 0.0) for c in CLASSES]
            p[-1] = 1 - sum(p[:-1])
            top = int(np.argmax(p))
            rows.append(
                [round(t / step), t, pid, pid, 0.9, 10, 10, 50, 60, 0.99, *p, CLASSES[top], p[top]]
            )
    rows.sort(key=lambda r: (r[0], r[2]))
    return pd.DataFrame(rows, columns=RowSchema("video", CLASSES, measures=False).columns)


def _ramp(values: list[float], emotion: str = "happiness", t0: float = 0.0, step: float = 0.04):
    return [(round(t0 + k * step, 3), {emotion: v}) for k, v in enumerate(values)]


def test_an_episode_starts_at_enter_and_holds_down_to_exit():
    # 0.3 (no), 0.6 (start), 0.4 x 10 (holds: above exit 0.35), 0.2 x 20 (ends)
    seq = _ramp([0.3] * 5 + [0.6] * 5 + [0.4] * 10 + [0.2] * 20)
    eps = episodes(_table({0: seq}), step=0.04)
    assert len(eps) == 1
    e = eps.iloc[0]
    assert e.emotion == "happiness" and e.start_s == pytest.approx(0.2)
    assert e.end_s == pytest.approx(0.8)  # the last row at or above exit (0.76) + one step
    assert e.duration_s == pytest.approx(0.6) and e.peak == pytest.approx(0.6)
    assert e.peak_s == pytest.approx(0.2)
    assert e["mean"] == pytest.approx((5 * 0.6 + 10 * 0.4) / 15, abs=1e-4)


def test_short_stretches_are_dropped_and_short_dips_bridged():
    short = _ramp([0.9] * 5 + [0.1] * 40)  # 0.2 s: under the 0.5 s minimum
    assert episodes(_table({0: short}), step=0.04).empty
    dip = _ramp([0.9] * 20 + [0.1] * 10 + [0.9] * 20 + [0.1] * 30)  # a 0.4 s dip: bridged
    eps = episodes(_table({0: dip}), step=0.04)
    assert len(eps) == 1 and eps.iloc[0].duration_s == pytest.approx(2.0)
    long_dip = _ramp([0.9] * 20 + [0.1] * 20 + [0.9] * 20 + [0.1] * 30)  # 0.8 s: two episodes
    assert len(episodes(_table({0: long_dip}), step=0.04)) == 2
    opts = EpisodeOptions(max_gap=1.0)
    assert len(episodes(_table({0: long_dip}), step=0.04, options=opts)) == 1


def test_a_person_out_of_sight_ends_an_episode_and_the_video_end_closes_one():
    seen = _ramp([0.9] * 25) + _ramp([0.9] * 25, t0=3.0)  # away for 2 s
    eps = episodes(_table({0: seen}), step=0.04)
    assert list(eps.start_s) == [0.0, 3.0]
    assert eps.iloc[1].end_s == pytest.approx(4.0)  # still going at the end: closed there


def test_one_emotion_at_a_time_and_neutral_only_when_asked():
    seq = _ramp([0.8] * 30) + [
        (round(1.2 + 0.04 * k, 3), {"happiness": 0.3, "surprise": 0.6}) for k in range(30)
    ]
    eps = episodes(_table({0: seq}), step=0.04)
    assert list(eps.emotion) == ["happiness", "surprise"]
    assert eps.iloc[0].end_s <= eps.iloc[1].start_s  # never overlapping
    calm = _ramp([0.0] * 50)  # all neutral
    assert episodes(_table({0: calm}), step=0.04).empty
    n = episodes(_table({0: calm}), step=0.04, options=EpisodeOptions(neutral=True))
    assert list(n.emotion) == ["neutral"]


def test_people_sums_match_the_rows_and_the_frame_step():
    a = _ramp([0.9] * 50) + _ramp([0.1] * 25, t0=2.0)  # 75 rows
    b = _ramp([0.7] * 30, emotion="anger", t0=1.0, step=0.12)  # every 3rd frame
    df = _table({0: a, 1: _ramp([0.0] * 10)})
    got = people(df, step=0.04)
    p0 = got.set_index("person").loc[0]
    assert p0.rows == 75 and p0.seconds_visible == pytest.approx(3.0)
    shares = [p0[f"share_{c}"] for c in CLASSES]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)  # rounded to 4 decimals each
    assert p0.share_happiness == pytest.approx(50 / 75, abs=1e-4)
    assert p0.dominant == "happiness" and p0.episodes_happiness == 1
    assert p0.first_s == 0.0 and p0.last_s == pytest.approx(3.0)
    every3 = people(_table({0: b}, step=0.12))  # the step read from the times
    assert every3.iloc[0].seconds_visible == pytest.approx(30 * 0.12)


def test_the_same_from_a_csv_streamed_in_chunks(tmp_path):
    df = _table({0: _ramp([0.9] * 60), 1: _ramp([0.8] * 40, emotion="sadness")})
    df.to_csv(tmp_path / "t.csv", index=False)
    whole = read_people(df)
    chunked = read_people(tmp_path / "t.csv", chunk_rows=7)
    pd.testing.assert_frame_equal(whole.people, chunked.people)
    pd.testing.assert_frame_equal(whole.episodes, chunked.episodes)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, videos):
    """The two-person clip annotated with every researcher's output."""
    out = tmp_path_factory.mktemp("takeaway")
    video = shutil.copy(videos["two"], out / "two.mp4")
    r = CliRunner().invoke(cli, ["annotate", str(video), "--elan", "--report", "--smooth", "0"])
    assert r.exit_code == 0, r.output
    return out


def test_annotate_writes_people_episodes_faces_and_elan(annotated):
    base = annotated / "two.fervid"
    ppl = pd.read_csv(f"{base}.people.csv")
    rows = pd.read_csv(f"{base}.csv").dropna(subset=["face"])
    assert list(ppl.person) == sorted(rows.person.unique())
    assert (ppl.set_index("person").rows == rows.groupby("person").size()).all()
    faces = sorted(p.name for p in (annotated / "two.fervid.people").iterdir())
    assert faces == [f"person_{p}.jpg" for p in ppl.person]
    eps = pd.read_csv(f"{base}.episodes.csv")
    tsv = pd.read_csv(f"{base}.episodes.tsv", sep="\t")
    assert list(tsv.columns) == ["tier", "begin", "end", "annotation"] and len(tsv) == len(eps)


def test_the_eaf_reads_back_with_pympi(annotated):
    pympi = pytest.importorskip("pympi")
    base = annotated / "two.fervid"
    eaf = pympi.Elan.Eaf(str(f"{base}.eaf"))
    eps = pd.read_csv(f"{base}.episodes.csv")
    ppl = pd.read_csv(f"{base}.people.csv")
    assert sorted(eaf.get_tier_names()) == [f"person {p}" for p in ppl.person]
    for p in ppl.person:
        got = sorted(eaf.get_annotation_data_for_tier(f"person {p}"))
        mine = eps[eps.person == p]
        want = sorted(
            (round(e.start_s * 1000), round(e.end_s * 1000), e.emotion) for e in mine.itertuples()
        )
        assert [(a, b, v) for a, b, v, *_ in got] == want
    media = eaf.get_linked_files()
    assert media and media[0]["RELATIVE_MEDIA_URL"] == "./two.fervid.mp4"


def test_report_from_an_existing_csv_gives_the_same_outputs(annotated, tmp_path):
    src = annotated / "two.fervid.csv"
    copy = tmp_path / "two.fervid.csv"
    shutil.copy(src, copy)
    shutil.copy(annotated / "two.mp4", tmp_path / "two.mp4")
    r = CliRunner().invoke(cli, ["report", str(copy), "--elan"])
    assert r.exit_code == 0, r.output
    for name in ("people.csv", "episodes.csv", "episodes.tsv", "html"):
        assert (tmp_path / f"two.fervid.{name}").exists(), name
    a = pd.read_csv(annotated / "two.fervid.people.csv")
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "two.fervid.people.csv"))


def test_the_python_api(annotated):
    df = pd.read_csv(annotated / "two.fervid.csv")
    assert len(fervid.people(df)) == df.dropna(subset=["face"]).person.nunique()
    assert list(fervid.episodes(df).columns)[:4] == ["person", "emotion", "start_s", "end_s"]


def test_outputs_fervid_did_not_write_are_left_alone(annotated, tmp_path):
    video = shutil.copy(annotated / "two.mp4", tmp_path / "two.mp4")
    mine = tmp_path / "two.fervid.people.csv"
    mine.write_text("my notes\n")
    r = CliRunner().invoke(cli, ["annotate", str(video), "--overwrite", "--no-video"])
    assert r.exit_code == 1 and "not written by fervid" in r.output
    assert mine.read_text() == "my notes\n"


# -- the page, in a real browser ------------------------------------------------------------


def _browser():
    sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    return sync, chromium


ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_the_page_plays_seeks_and_follows_in_chromium(annotated, tmp_path):
    sync, chromium = _browser()
    page_path = annotated / "two.fervid.html"
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        page.wait_for_function("document.getElementById('video').readyState >= 1", timeout=20000)
        duration = page.evaluate("document.getElementById('video').duration")
        assert duration == pytest.approx(1.2, abs=0.15)
        assert page.locator(".timeline").count() == 2 and page.locator(".ep").count() >= 1
        # a click on a timeline seeks the video there, and the playhead follows
        box = page.locator(".timeline").first.bounding_box()
        page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
        page.wait_for_function(
            f"Math.abs(document.getElementById('video').currentTime - {0.75 * duration}) < 0.1",
            timeout=10000,
        )
        left = page.evaluate("parseFloat(document.querySelector('.playhead').style.left)")
        assert left == pytest.approx(75, abs=3)
        # seeking the video moves the playhead
        page.evaluate("document.getElementById('video').currentTime = 0.3")
        page.wait_for_function(
            "Math.abs(parseFloat(document.querySelector('.playhead').style.left) - "
            f"{100 * 0.3 / duration}) < 2",
            timeout=10000,
        )
        imgs = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert imgs and all(imgs)  # the faces load
        hint = page.locator(".hint")  # how to correct the people, with this table's name
        assert hint.is_visible() and "fervid regroup two.fervid.csv --same" in hint.inner_text()
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        page.screenshot(path="/tmp/review-page.png", full_page=True)
        browser.close()
    assert not errors, errors
    assert (tmp_path / "page.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from conftest import samples

    d = tmp_path_factory.mktemp("photos") / "set"
    samples.write_photos(d)
    return d


def test_the_photo_page_filters_by_emotion_in_chromium(photos, tmp_path):
    sync, chromium = _browser()
    out = tmp_path / "photos.fervid.csv"
    r = CliRunner().invoke(cli, ["scan", str(photos), "--csv", str(out), "--report"])
    assert r.exit_code in (0, 1), r.output
    page_path = tmp_path / "photos.fervid.html"
    df = pd.read_csv(out, keep_default_na=False)
    faces = df[df.emotion != ""]
    thumbs = sorted((tmp_path / "photos.fervid.faces").iterdir())
    assert len(thumbs) == len(faces)  # one picture per face, cut during the scan
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page()
        errors, loaded = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: loaded.append(r.url))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("networkidle")
        assert page.locator(".card").count() == len(faces)
        sizes = page.eval_on_selector_all(
            ".card img", "els => els.map(e => [e.naturalWidth, e.getBoundingClientRect().width])"
        )
        assert sizes and all(s == [160, 120] for s in sizes[:6]), sizes  # the pictures, shown
        assert not [u for u in loaded if "/set/" in u]  # not one whole photo loaded
        # without pictures (a scan on Ray): each photo, cut to its face by the page
        write_photos_page(tmp_path / "plain.html", out, photos)
        page.goto((tmp_path / "plain.html").as_uri())
        page.wait_for_load_state("networkidle")
        cut = page.eval_on_selector_all(
            ".card img[data-box]", "els => els.map(e => e.complete && e.style.width !== '')"
        )
        assert len(cut) == len(faces) and all(cut)
        emotion = faces.emotion.iloc[0]
        page.select_option("#filter", emotion)
        shown = page.locator(".card:not(.hidden)").count()
        assert shown == int((faces.emotion == emotion).sum())
        assert page.inner_text("#count") == str(shown)
        browser.close()
    assert not errors, errors
    assert Path(page_path).read_text().count('content="fervid"') == 1
