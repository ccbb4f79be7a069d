"""Result files: the CSV row writer, the table formats keyed by name (:data:`WRITERS`, written
from the CSV: the one list of formats), file names as text. Importing it costs no numpy, so
that the command line can list the formats."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path


def clean_text(text: str) -> str:
    """A file name as text that UTF-8 can hold: undecodable bytes (kept by Python as
    surrogates) become backslash escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def drop_last_item(path: Path) -> str | None:
    """Cut a CSV back before the rows of its last item (first column), which a kill may
    have left incomplete; returns that item (to be redone), or None."""
    start, last = None, None
    offset = 0
    with open(path, "rb") as fh:
        offset += len(fh.readline())
        for line in fh:
            key = line.split(b",", 1)[0]
            if key != last:
                start, last = offset, key
            offset += len(line)
    if start is None:
        return None
    with open(path, "r+b") as fh:
        fh.truncate(start)
    return last.decode("utf-8", "replace")


class CsvRowWriter:
    """Appends rows to a CSV file as they come, flushing each batch to disk; a context
    manager (closed on leaving, quietly after an error)."""

    suffix = ".csv"

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], *, append: bool = False):
        self.path = Path(path)
        new = not (append and self.path.exists() and self.path.stat().st_size > 0)
        self._fh = open(  # noqa: SIM115 (kept open across writes; closed by close())
            self.path, "a" if not new else "w", newline="", encoding="utf-8"
        )
        self._w = csv.writer(self._fh)
        if new:
            self._w.writerow(columns)
            self._fh.flush()

    def write(self, rows: Sequence[Sequence], before=None) -> None:
        """Append ``rows``; ``before(data)`` is told the exact bytes first (a record of what
        was written: :class:`fervid.outputs.ScanRecord`)."""
        if before is not None:
            buf = io.StringIO(newline="")
            csv.writer(buf).writerows(rows)
            text = buf.getvalue()
            before(text.encode("utf-8"))
            self._fh.write(text)
        else:
            self._w.writerows(rows)
        self._fh.flush()

    def __enter__(self) -> CsvRowWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(quietly=exc_type is not None)

    def close(self, *, quietly: bool = False) -> None:
        """Flush to disk and close; ``quietly``: after another error, say nothing more (a
        full disk fails the flush too)."""
        if self._fh.closed:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError:
            if not quietly:
                self._fh.close()
                raise
        finally:
            with contextlib.suppress(OSError):
                self._fh.close()


def _typed_chunks(csv_path: Path, chunk_rows: int = 100_000):
    """A fervid CSV as DataFrames of ``chunk_rows`` rows, each column with one type in every
    chunk (integers that may be missing as nullable integers, text as text)."""
    from .rows import INT_COLUMNS, TEXT_COLUMNS, read_csv, read_csv_chunks  # needs numpy

    header = read_csv(csv_path, nrows=0).columns
    types = {c: "Int64" if c in INT_COLUMNS else "float64" for c in header}
    types |= {c: "string" for c in TEXT_COLUMNS if c in header}
    yield from read_csv_chunks(csv_path, chunk_rows, dtype=types, keep_default_na=True)


def write_jsonl(csv_path: Path, out: Path) -> None:
    """One JSON object per row (missing values as null), streamed from the CSV."""
    from .outputs import atomic_path  # outputs needs numpy; the command line lists WRITERS

    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for chunk in _typed_chunks(csv_path):
            chunk.to_json(fh, orient="records", lines=True, force_ascii=False)


def write_parquet(csv_path: Path, out: Path) -> None:
    """Parquet (``pip install "fervid[parquet]"``), streamed from the CSV in row groups."""
    from .outputs import OutputError, atomic_path  # likewise

    try:
        import pyarrow as pa  # an extra (fervid[parquet])
        import pyarrow.parquet as pq  # an extra (fervid[parquet])
    except ImportError:
        raise OutputError('Parquet needs pyarrow: pip install "fervid[parquet]"') from None
    with atomic_path(out) as tmp:
        writer = None
        for chunk in _typed_chunks(csv_path):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(str(tmp), table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()


#: Output formats: the rows are always streamed to a CSV first (the working file that
#: ``--resume`` continues); a format other than CSV is written from it when the job is done.
WRITERS = {"csv": None, "jsonl": write_jsonl, "parquet": write_parquet}


def format_of(out: Path) -> str:
    """The format a table file's name asks for: ``jsonl`` or ``parquet`` by its extension,
    else CSV (whatever the extension: ``results``, ``faces.txt``)."""
    ext = Path(out).suffix.lower().lstrip(".")
    return ext if ext in WRITERS else "csv"


def working_table(out: Path, fmt: str | None = None) -> Path:
    """The CSV the rows of ``out`` are streamed to: ``out`` itself for CSV, else a name of
    its own beside it (``faces.parquet.csv``), never another run's CSV output."""
    fmt = fmt or format_of(out)
    return out if fmt == "csv" else out.with_name(out.name + ".csv")


def write_format(table: Path, out: Path, fmt: str | None = None) -> Path:
    """Turn the finished working ``table`` into ``out`` in ``fmt`` (by default the format
    its extension names; the table is then removed); for CSV, the table is the output."""
    if table == out:
        return out
    fmt = fmt or format_of(out)
    if fmt not in WRITERS or WRITERS[fmt] is None:
        raise ValueError(f"{out}: no writer for the format {fmt!r} (csv, jsonl or parquet)")
    WRITERS[fmt](table, out)
    table.unlink()
    return out


def repair_partial_csv(path: Path) -> None:
    """Cut a CSV killed mid-row back to its last complete line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n")
        with open(path, "r+b") as fh:
            fh.truncate(cut + 1 if cut >= 0 else 0)
