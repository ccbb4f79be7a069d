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

from conftest import copy_run


@pytest.fixture(scope="module")
def page(tmp_path_factory, sample_annotated):
    """The sample annotated (no video drawn), P1 taken out between 2 and 4 s."""
    d = copy_run(sample_annotated, tmp_path_factory.mktemp("page"))
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


def test_a_weak_join_is_named_in_the_people_table_and_on_the_page(page, tmp_path):
    """P1's face from 3 s on made another track, joined to P1 on a weak match (0.62): the
    people table gives its confidence and time, the page says where to look."""
    sync, chromium = _browser()
    moved = tmp_path / "copy"
    shutil.copytree(page.parent, moved)
    table = moved / "two.fervid.csv"
    df = pd.read_csv(table, keep_default_na=False, dtype=str)
    later = (df["person"] == "1") & (df["time_s"].astype(float) >= 3.0)
    df.loc[later, "face"], df.loc[later, "person_confidence"] = "9", "0.62"
    df.to_csv(table, index=False)
    r = CliRunner().invoke(cli, ["-q", "report", str(table), "--overwrite"])
    assert r.exit_code == 0, r.output
    people = pd.read_csv(moved / "two.fervid.people.csv").set_index("person")
    assert people.loc[1, "weakest_join"] == 0.62 and people.loc[1, "weakest_join_s"] >= 3.0
    assert pd.isna(people.loc[0, "weakest_join"])  # one track: nothing joined
    with sync.sync_playwright() as p:
        browser, tab, errors = _open(p, chromium, (moved / "two.fervid.html").as_uri(), 1280)
        weak = tab.locator("td .weak")
        assert weak.count() == 1 and weak.is_visible()
        assert f"weak join at {people.loc[1, 'weakest_join_s']:.2f} s (0.62)" in weak.inner_text()
        tab.screenshot(path=str(tmp_path / "weak.png"), full_page=True)
        browser.close()
    assert not errors


# -- the palette and the annotated video's labels ------------------------------------------


def _min_difference(palette: dict, matrix) -> float:
    """The smallest CIELAB distance (Delta E 1976) between two colours of ``palette`` as a
    reader with the colour vision ``matrix`` simulates (Machado et al. 2009) sees them."""
    import itertools

    import numpy as np

    def lab(rgb):
        c = np.asarray(rgb) / 255
        c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        c = np.clip(np.asarray(matrix) @ c, 0, 1)
        to_xyz = [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
        xyz = np.array(to_xyz) @ c / np.array([0.95047, 1, 1.08883])
        f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
        return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])

    pairs = itertools.combinations(palette.values(), 2)
    return min(float(np.linalg.norm(lab(a) - lab(b))) for a, b in pairs)


VISION = {  # Machado, Oliveira and Fernandes (2009), severity 1, linear RGB
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
    "typical": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
}  # fmt: skip


@pytest.mark.parametrize("vision", sorted(VISION))
def test_the_seven_colours_stay_apart_for_colour_blind_readers(vision):
    from fervid.emotions import COLORS

    assert _min_difference(COLORS, VISION[vision]) >= 15
    # the palette before: disgust and anger 3.3 apart for deuteranopes
    old = {"disgust": (34, 139, 34), "anger": (220, 20, 60), "surprise": (255, 165, 0)}
    if vision == "deuteranopia":
        assert _min_difference(old, VISION[vision]) < 5


def test_no_label_covers_another_label_or_face_on_a_crowd_frame():
    import numpy as np

    from fervid.draw import _labels, _overlap, _text_size, annotate, place_labels
    from fervid.faces import Faces

    w, h, side = 1920, 1080, 90
    boxes = [[300 + c * 110, 200 + r * 130, 300 + c * 110 + side, 200 + r * 130 + side]
             for r in range(4) for c in range(10)]  # fmt: skip
    probs = np.tile(np.eye(7)[[3]], (len(boxes), 1)) * 0.9 + 0.1 / 7
    from fervid.emotions import EMOTIONS

    n = len(boxes)
    faces = Faces(boxes, [0.99] * n, probs, np.arange(n), EMOTIONS, np.arange(n))
    scale, thick = max(0.4, h / 900), max(1, round(h / 300))
    texts, _ = _labels(faces)
    sizes = [_text_size(t, scale, thick) for t in texts]
    spots = place_labels(
        [tuple(b) for b in boxes], [(tw + 4, th + b + b // 2) for tw, th, b in sizes], w, h
    )
    for i, a in enumerate(spots):
        assert a[0] >= 0 and a[2] < w and a[1] >= 0 and a[3] < h
        for j, b in enumerate(spots):
            assert i == j or not _overlap(a, b), (i, j)
        for j, box in enumerate(boxes):
            assert i == j or not _overlap(a, box), (i, j)
    out = annotate(np.zeros((h, w, 3), np.uint8), faces)
    assert out.any()
