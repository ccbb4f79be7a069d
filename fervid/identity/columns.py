"""The ``person`` and ``person_confidence`` columns of a video's rows, written from the whole
video's persons (track id -> person, confidence): in rows held in memory (:func:`set_persons`)
or in a table file, streamed (:func:`persons_in_file`, through :func:`rewrite_rows`)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from ..outputs import replace_into
from ..rows import RowSchema


def set_persons(rows: list[list], schema: RowSchema, persons: dict) -> bool:
    """Give video rows (lists, changed in place) the whole video's persons (track id ->
    (person, confidence)); whether any row's person changed."""
    face, person, conf = (schema.index(k) for k in ("face", "person", "person_confidence"))
    changed = False
    for r in rows:
        if r[face] == "" or int(r[face]) not in persons:
            continue
        p, c = persons[int(r[face])]
        changed |= str(r[person]) != str(p)
        r[person] = p
        r[conf] = "" if c != c else round(float(c), 3)  # NaN: not measured
    return changed


def persons_in_file(csv_path: Path, persons: dict, chunk: int = 10_000) -> bool:
    """:func:`set_persons` on a video CSV, streamed (written beside it, then renamed over
    it); whether any row's person changed."""
    schema = RowSchema.of_file(csv_path)
    return rewrite_rows(csv_path, lambda block: set_persons(block, schema, persons), chunk)


def rewrite_rows(csv_path: Path, change: Callable[[list[list]], bool], chunk: int = 10_000):
    """A CSV's rows changed in place by ``change`` (a block of rows at a time, lists of
    text; it says whether it changed any), streamed into a file beside it that is then
    renamed over it: the table is the old one or the new one, never half of each. Whether
    any row changed."""
    tmp = csv_path.with_name(csv_path.name + ".persons")
    changed = False
    try:
        with (
            open(csv_path, newline="", encoding="utf-8") as src,
            open(tmp, "w", newline="", encoding="utf-8") as dst,
        ):
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader))
            while block := [r for _, r in zip(range(chunk), reader)]:
                changed |= change(block)
                writer.writerows(block)
        replace_into(tmp, csv_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return changed
