"""A photo scan's table, resumed safely: every existing output checked before any is touched
(:func:`prepare_table`), and the record of what the scan wrote (:class:`ScanRecord`) without
which a partial table is never continued."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from .outputs import (
    OutputError,
    OutputSkip,
    is_fervid_csv,
    is_fervid_output,
    may_replace,
    partial_path,
    write_text_atomic,
)
from .rows import cell_text
from .writers import drop_last_item, repair_partial_csv


def prepare_table(
    final: Path,
    table: Path,
    columns: list[str],
    *,
    resume: bool,
    overwrite: bool,
    fmt: str,
    folder: Path | None = None,
) -> tuple[Path, set[str]]:
    """Check every existing output of a photo scan before touching any (``final``: the
    output, ``table``: the CSV the rows go to, the same path for CSV); returns the partial
    CSV's path and, when resuming, the items (first column) whose rows are complete in it.
    A resume continues only the untouched partial output of a scan of the same ``folder``
    (:class:`ScanRecord`); a finished table has nothing to resume."""
    partial = partial_path(table)
    if final.exists() and not (overwrite or resume):
        raise OutputError(f"{final} exists: --overwrite to replace it, --resume to continue it")
    may_replace(final, is_fervid_csv if fmt == "csv" else is_fervid_output)
    may_replace(table)
    may_replace(partial)
    record = ScanRecord(partial, folder)
    may_replace(record.path, lambda p: ScanRecord.is_record(p))
    if not resume:
        partial.unlink(missing_ok=True)
        record.path.unlink(missing_ok=True)
        return partial, set()
    for p in (partial, table):
        if p.exists() and not is_fervid_csv(p, columns):
            raise OutputError(
                f"{p} was written with other columns (another model?); cannot resume it"
            )
    if final.exists() and not partial.exists():
        raise OutputSkip(f"{final}: finished already, nothing to resume; --overwrite to redo it")
    if not partial.exists():
        return partial, set()
    record.check_and_cut()  # now it ends after an image's last row: nothing more to cut
    return partial, done_items(partial, cut_last=False)


class ScanRecord:
    """What a scan has written (``NAME.partial.csv.scan.json`` beside the partial CSV): the
    folder scanned, and the length and SHA-256 of the partial CSV before and after the rows
    being written (recorded before they are written). A resume continues a partial CSV only
    when the record is there, names the same folder, and the file is exactly what the scan
    wrote: another folder's CSV, a sorted one, one with a row added or changed is refused,
    never cut. Rows a kill left half-written (between the two recorded lengths) are cut
    back to the last whole image and done again."""

    def __init__(self, partial: Path, folder: Path | None) -> None:
        self.partial = partial
        self.path = partial.with_name(partial.name + ".scan.json")
        self.folder = str(Path(folder).resolve()) if folder is not None else None
        self.length, self._hash = 0, None

    @staticmethod
    def is_record(path: Path) -> bool:

        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(d, dict) and d.get("kind") == "fervid scan"

    def check_and_cut(self) -> None:
        """Refuse (one line) a partial CSV this scan did not write as it is; cut rows a kill
        left half-written."""
        try:
            d = json.loads(self.path.read_text(encoding="utf-8"))
            before, after = int(d["before"][0]), int(d["after"][0])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self._refuse("no record of the scan that wrote it")
        if d.get("folder") != self.folder:
            self._refuse(f"it is the scan of another folder ({d.get('folder')})")
        size = self.partial.stat().st_size
        if not before <= size <= after:
            self._refuse("it was changed since the scan wrote it (rows added or removed?)")
        with open(self.partial, "rb") as fh:
            data = fh.read(size)
        if hashlib.sha256(data[:before]).hexdigest() != d["before"][1]:
            self._refuse("it was changed since the scan wrote it (sorted, edited?)")
        if size == after and hashlib.sha256(data).hexdigest() != d["after"][1]:
            self._refuse("it was changed since the scan wrote it (sorted, edited?)")
        keep = after if size == after else before
        with open(self.partial, "r+b") as fh:
            fh.truncate(keep)

    def _refuse(self, why: str):
        raise OutputError(f"{self.partial}: cannot resume: {why}; --overwrite to start again")

    def start(self) -> None:
        """Record the partial CSV as it is now (after a resume's cut, or its header)."""
        data = self.partial.read_bytes()
        self.length, self._hash = len(data), hashlib.sha256(data)
        self._write((self.length, self._hash.hexdigest()), (self.length, self._hash.hexdigest()))

    def will_write(self, data: bytes) -> None:
        """Record ``data`` about to be appended (call just before writing it)."""
        before = (self.length, self._hash.hexdigest())
        self._hash.update(data)
        self.length += len(data)
        self._write(before, (self.length, self._hash.hexdigest()))

    def _write(self, before, after) -> None:

        record = {"kind": "fervid scan", "folder": self.folder, "before": before, "after": after}
        write_text_atomic(self.path, json.dumps(record))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def done_items(partial: Path, *, cut_last: bool = True) -> set[str]:
    """Items (first column) whose rows are in a partial CSV, read as CSV records (a name
    may hold a comma, a quote or a line break). ``cut_last``: the last item's rows may be
    incomplete (a kill between two of its faces, no record to tell): they are cut, and it
    is done again."""
    if cut_last:
        repair_partial_csv(partial)
        drop_last_item(partial)
    with open(partial, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return {cell_text(row[0]) for row in reader if row}
