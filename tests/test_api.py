"""The public surface, the settings defined once, and the row schema."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import numpy as np
import pytest

import fervid
from fervid.cli import cli
from fervid.faces import Faces
from fervid.options import ImageOptions, VideoOptions
from fervid.rows import RowSchema

ROOT = Path(__file__).resolve().parents[1]


def test_every_name_the_readme_and_docs_use_resolves():
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    names = set()
    for p in texts:
        names |= set(re.findall(r"\bfervid\.([a-z_][A-Za-z_]*)\(", p.read_text()))
    assert {"analyze_video", "annotate_video", "analyze_images"} <= names
    for name in sorted(names):
        assert callable(getattr(fervid, name)), name


def test_the_package_exports_what_the_api_lists():
    import fervid.api

    assert set(fervid.__all__) - {"__version__"} == set(fervid.api.__all__)
    for name in fervid.__all__:
        getattr(fervid, name)
    with pytest.raises(AttributeError):
        fervid.nonexistent  # noqa: B018


def _cli_defaults(command: str) -> dict:
    cmd = cli.commands[command]
    return {p.name: p.default for p in cmd.params if isinstance(p, click.Option)}


@pytest.mark.parametrize("command, cls", [("annotate", VideoOptions), ("scan", ImageOptions)])
def test_options_are_made_from_the_settings(command, cls):
    defaults = _cli_defaults(command)
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            assert defaults[f.name] == f.default, f.name
        else:
            assert f.name not in defaults  # internal settings have no option


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"start": float("nan")}, "start: must be a finite number of seconds"),
        ({"detect_interval": float("nan")}, "detect_interval: must be a finite number"),
        ({"smooth": float("inf")}, "smooth: must be a finite number"),
        ({"detect_size": 32}, "detect_size: must be 0 or >= 64"),
        ({"start": 5.0, "end": 2.0}, "end: must be after start"),
        ({"every": 0}, "every: "),
        ({"batch_size": 5000}, "batch_size: "),
    ],
)
def test_video_options_refuse_bad_values_naming_the_setting(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        VideoOptions(**kw)


def test_api_takes_options_or_keywords_and_names_unknown_ones(tmp_path):
    with pytest.raises(TypeError, match="unexpected option"):
        fervid.analyze_video(tmp_path / "x.mp4", evry=3)
    with pytest.raises(ValueError, match="detect_size"):
        fervid.analyze_images(tmp_path, detect_size=10)


def test_cli_names_the_option_of_a_bad_value(tmp_path):
    from click.testing import CliRunner

    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    r = CliRunner().invoke(cli, ["annotate", str(video), "--detect-size", "32"])
    assert r.exit_code == 2 and "--detect-size: must be 0 or >= 64" in r.output


def test_row_schema_round_trip_by_name():
    classes = ("a", "b", "c")
    schema = RowSchema("video", classes)
    faces = Faces(
        [[1, 2, 30, 40], [50, 60, 90, 99]],
        [0.9, 0.8],
        [[0.2, 0.5, 0.3], [0.7, 0.1, 0.2]],
        [4, 7],
        classes,
    )
    rows = schema.video_rows(12, 0.48, faces)
    assert [schema.get(r, "face") for r in rows] == [4, 7]
    assert [schema.get(r, "emotion") for r in rows] == ["b", "a"]
    assert schema.get(rows[0], "frame") == 12 and schema.get(rows[0], "x2") == 30.0
    back = schema.faces([[str(v) for v in r] for r in rows])
    assert np.allclose(back.boxes, faces.boxes) and list(back.track_ids) == [4, 7]
    assert np.allclose(back.probs, faces.probs)
    empty = schema.video_rows(13, 0.52, Faces.empty(classes))
    assert len(empty) == 1 and len(empty[0]) == len(schema.columns)
    assert not schema.has_face(empty[0])
    assert RowSchema.from_header(schema.columns) == schema
    image = RowSchema("image", classes)
    assert RowSchema.from_header(image.columns) == image
    assert image.image_rows("p.jpg", faces)[1][:2] == ["p.jpg", 1]
    with pytest.raises(ValueError):
        RowSchema.from_header(["frame", "x"])
