"""The review page as a researcher reads it, in headless Chromium: a time axis with ticks at
the right times and the time under the pointer, a legend for every band, "in view" exactly
where the person was detected, a note when the video is not there, and no sideways scrolling
from a phone's width up."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from test_people import ARGS, _browser

from fervid.cli import cli

from conftest import ROOT


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The sample annotated (no video drawn), P1 taken out between 2 and 4 s."""
    d = tmp_path_factory.mktemp("page")
    video = shutil.copy(ROOT / "samples" / "two_people.mp4", d / "two.mp4")
    r = CliRunner().invoke(cli, ["-q", "annotate", str(video), "--no-video"])
    assert r.exit_code == 0, r.output
    table = d / "two.fervid.csv"
    df = pd.read_csv(table, keep_default_na=False, dtype=str)
    t, who = df["time_s"].astype(float), df["person"]
    df[~((who == "1") & (t >= 2.0) & (t < 4.0))].to_csv(table, index=False)
    r = CliRunner().invoke(cli, ["-q", "report", str(table), "--overwrite"])
    assert r.exit_code == 0, r.output
    return d / "two.fervid.html"


def _open(p, chromium, url, width):
    browser = p.chromium.launch(executable_path=chromium, args=ARGS)
    tab = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(url)
    tab.wait_for_function("document.getElementById('video').readyState >= 1", timeout=20000)
    return browser, tab, errors


def test_the_axis_the_legend_and_the_bands_say_what_happened_when(page, tmp_path):
    sync, chromium = _browser()
    with sync.sync_playwright() as p:
        browser, tab, errors = _open(p, chromium, page.as_uri(), 1280)
        d = tab.evaluate("document.getElementById('video').duration")
        ticks = tab.evaluate(
            "[...document.querySelectorAll('.tick')].map(t => [+t.dataset.t, "
            "parseFloat(t.style.left), t.textContent])"
        )
        assert len(ticks) >= 5 and ticks[0][0] == 0
        for t, left, label in ticks:
            assert left == pytest.approx(100 * t / d, abs=0.01)
            assert label.endswith("s")
        legend = tab.inner_text(".legend")
        for name in ("surprise", "happiness", "neutral", "in view", "playhead"):
            assert name in legend, name
        # P1's "in view" stops at 2 s and starts again at 4 s: the gap is shown
        stretches = tab.evaluate(
            "[...document.querySelectorAll('.timeline[data-person=\"1\"] .seen')].map(s => "
            "[parseFloat(s.style.left), parseFloat(s.style.left) + parseFloat(s.style.width)])"
        )
        stretches.sort()
        assert len(stretches) == 2
        assert stretches[0][1] * d / 100 == pytest.approx(2.0, abs=0.1)
        assert stretches[1][0] * d / 100 == pytest.approx(4.0, abs=0.1)
        # the time under the pointer
        box = tab.locator(".timeline").first.bounding_box()
        tab.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 5)
        assert tab.is_visible("#pointer")
        shown = tab.inner_text("#pointer").replace(" s", "")
        assert float(shown) == pytest.approx(d / 2, abs=0.1)
        assert not tab.is_visible("#novideo")
        browser.close()
    assert errors == []


@pytest.mark.parametrize("width", [400, 700, 1280])
def test_no_sideways_scrolling_from_a_phone_up(page, width):
    sync, chromium = _browser()
    with sync.sync_playwright() as p:
        browser, tab, errors = _open(p, chromium, page.as_uri(), width)
        over = tab.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        browser.close()
    assert over <= 0 and errors == []


def test_without_the_video_the_page_says_so(page, tmp_path):
    sync, chromium = _browser()
    moved = tmp_path / "copy"
    shutil.copytree(page.parent, moved)
    (moved / "two.mp4").unlink()
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        tab = browser.new_page()
        tab.goto((moved / "two.fervid.html").as_uri())
        tab.wait_for_selector("#novideo:not([hidden])", timeout=20000)
        assert "not beside this page" in tab.inner_text("#novideo")
        assert tab.locator(".tick").count() >= 2  # the timelines are still drawn, to scale
        browser.close()
    # a report made where no video could be found says so in the page itself
    r = CliRunner().invoke(cli, ["-q", "report", str(moved / "two.fervid.csv"), "--overwrite"])
    assert r.exit_code == 0, r.output
    text = (moved / "two.fervid.html").read_text()
    assert "No video was found beside the table" in text and "<video" in text
