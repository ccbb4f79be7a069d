"""A long video's parts made whole again (fervid.stitch), without Ray: the rows in order, a
track that crosses a cut keeps its id, a face new after the cut gets a new one, and the whole
video's persons come from the parts' identities."""

from __future__ import annotations

import csv
import json

from fervid.identity.store import identity_path_of
from fervid.options import VideoOptions
from fervid.rows import RowSchema
from fervid.stitch import part_path, persons_across_parts, split_ranges, stitch

CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
SCHEMA = RowSchema("video", CLASSES)


def _row(frame, t, face, box):
    probs = [0.0] * 6 + [1.0]
    return [frame, t, face, face, 0.9, *box, 0.99, *probs, "neutral", 1.0]


def _part(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SCHEMA.columns)
        w.writerows(rows)
    return path


def test_parts_are_stitched_with_tracks_continued_across_the_cut(tmp_path):
    table = tmp_path / "v.fervid.csv"
    left, right = [10, 10, 60, 60], [200, 10, 250, 60]
    # part 0: tracks 0 (left) and 1 (right); part 1 numbers its own tracks from 0 again:
    # its 0 is the right face (continues 1), its 1 a face that was not there before
    _part(part_path(table, 0), [_row(0, 0.0, 0, left), _row(0, 0.0, 1, right)])
    _part(part_path(table, 1), [_row(1, 0.5, 0, right), _row(1, 0.5, 1, [100, 100, 150, 150])])
    mappings, seen = stitch([part_path(table, 0), part_path(table, 1)], table, drop_parts=True)
    assert mappings == [{"0": 0, "1": 1}, {"0": 1, "1": 2}]
    assert seen == {0: (0.0, 0.0), 1: (0.0, 0.5), 2: (0.5, 0.5)}
    with open(table, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == SCHEMA.columns
    assert [(r[0], r[2]) for r in rows[1:]] == [("0", "0"), ("0", "1"), ("1", "1"), ("1", "2")]
    assert not part_path(table, 0).exists() and not part_path(table, 1).exists()
    # the persons of the whole video, from the parts' identities (none known: each its own)
    persons_across_parts("v.mp4", table, [None, None], mappings, seen, VideoOptions())
    with open(table, newline="") as fh:
        people = [r[SCHEMA.index("person")] for r in list(csv.reader(fh))[1:]]
    assert people == ["0", "1", "1", "2"]
    ident = json.loads(identity_path_of(table).read_text())
    assert sorted(ident["tracks"]) == ["0", "1", "2"]


def test_a_long_video_is_cut_into_parts_and_a_short_tail_joins_the_last(tmp_path):
    from conftest import samples

    video = samples.write_video(tmp_path / "v.mp4", width=160, height=120, fps=10, seconds=4.8)
    assert split_ranges(video, VideoOptions(), None) == [(None, None)]
    # 4.8 s in parts of 2 s: 0-2, 2-end (a 0.8 s tail, under half a part, joins the last)
    assert split_ranges(video, VideoOptions(), 2.0) == [(None, 2.0), (2.0, None)]
    assert split_ranges(video, VideoOptions(), 1.5) == [(None, 1.5), (1.5, 3.0), (3.0, None)]
    assert split_ranges(video, VideoOptions(end=2.5), 2.0) == [(None, 2.5)]  # under 1.5 parts
