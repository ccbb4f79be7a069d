"""Names that are legal for a file but read as something else elsewhere: a video named like an
address is read from the disk, never fetched; the pages and ELAN link local files only, by
paths no name can turn into another place; a class name cannot break a page's script."""

from __future__ import annotations

import http.server
import shutil
import threading

import pytest
from click.testing import CliRunner

from fervid.cli import cli
from fervid.pages import write_photos_page


@pytest.fixture
def listener():
    """An HTTP server on this machine that records every request it is sent."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()


def _run(*args):
    r = CliRunner().invoke(cli, ["-q", *[str(a) for a in args]])
    assert "Traceback" not in r.output, r.output
    return r


def test_a_video_named_like_an_address_is_read_from_the_disk(videos, listener, tmp_path):
    port, seen = listener
    video = shutil.copy(videos["two"], tmp_path / f"http:127.0.0.1:{port}.mp4")
    other = shutil.copy(videos["two"], tmp_path / "interview:part2.mp4")
    r = _run("annotate", video, other, "--page", "--elan", "--plot")
    assert r.exit_code == 0, r.output
    table = tmp_path / f"http:127.0.0.1:{port}.fervid.csv"
    for kind in ("csv", "mp4", "people.csv", "html", "eaf", "png"):
        assert (tmp_path / f"http:127.0.0.1:{port}.fervid.{kind}").exists(), kind
        assert (tmp_path / f"interview:part2.fervid.{kind}").exists(), kind
    assert _run("report", table, "--overwrite", "--elan").exit_code == 0
    assert _run("regroup", table, "--people", "2").exit_code == 0
    assert seen == []  # nothing was fetched
    page = (tmp_path / f"http:127.0.0.1:{port}.fervid.html").read_text()
    assert f'src="./http%3A127.0.0.1%3A{port}.fervid.mp4"' in page
    assert 'src="http' not in page
    eaf = (tmp_path / "interview:part2.fervid.eaf").read_text()
    assert 'RELATIVE_MEDIA_URL="./interview%3Apart2.fervid.mp4"' in eaf


def test_a_photo_folder_named_like_an_address_links_local_files(listener, tmp_path):
    from conftest import samples

    port, seen = listener
    folder = tmp_path / f"https:127.0.0.1:{port}"
    samples.write_photos(folder)
    out = tmp_path / "faces.csv"
    assert _run("scan", folder, "--csv", out, "--page").exit_code == 0
    page = out.with_suffix(".html").read_text()
    assert 'src="./faces.faces/' in page and 'src="https' not in page  # the faces' pictures
    write_photos_page(tmp_path / "plain.html", out, folder)  # without them: the photos
    page = (tmp_path / "plain.html").read_text()
    assert 'src="./https%3A127.0.0.1%3A' in page and 'src="https' not in page
    assert seen == []


def test_a_class_name_cannot_end_or_swallow_the_pages_script(videos, tmp_path):
    video = shutil.copy(videos["two"], tmp_path / "two.mp4")
    assert _run("annotate", video, "--no-video").exit_code == 0
    table = tmp_path / "two.fervid.csv"
    text = table.read_text().split("\n", 1)
    hostile = "<!--<script>"
    table.write_text(text[0].replace("disgust", hostile) + "\n" + text[1])
    assert _run("report", table, "--overwrite").exit_code == 0
    page = (tmp_path / "two.fervid.html").read_text()
    data = page.split('<script type="application/json" id="data">')[1].split("</script>")[0]
    assert "<" not in data and ">" not in data  # the data block is inert
    chromium = shutil.which("chromium")
    sync = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    from test_people import ARGS

    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        tab = browser.new_page()
        errors = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto((tmp_path / "two.fervid.html").as_uri())
        assert tab.locator(".timeline").count() == 2
        assert tab.evaluate("JSON.parse(document.getElementById('data').textContent).colors")[
            hostile
        ]
        browser.close()
    assert errors == []
