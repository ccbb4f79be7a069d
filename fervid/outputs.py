"""The rules every file fervid writes follows, in one place.

- An output is never one of the inputs, and never has an image or video extension unless it
  is that kind of output (:func:`check_output`).
- A file that fervid did not write is never replaced, renamed, truncated or deleted: an
  existing output is replaced only when it is recognisably fervid's (:func:`is_fervid_csv`).
- Outputs are written under a temporary name beside the target and renamed into place when
  complete (:func:`atomic_path`, :func:`write_text_atomic`, :func:`replace_into`): a reader
  sees the old file or the whole new one, never half of one.
- One run at a time per output (:class:`OutputLock`): a second run asked for the same target
  is refused with a clear message; a lock left by a killed run is free again.

:class:`OutputError` carries one line for the user; :class:`OutputSkip` says an output
exists and may be kept. What a video's outputs are, and how each kind is told to be fervid's,
is :mod:`fervid.video_outputs`'; a photo scan's resumable table is :mod:`fervid.scan_table`'s.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from PIL import Image

from . import __version__
from .images import IMAGE_EXTS, VIDEO_EXTS


class OutputError(ValueError):
    """An output that cannot be written safely; the message is one line."""


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (resolved; by inode when both exist)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    kind: str = "csv",
) -> Path:
    """Refuse an output that is an input, or whose extension says it is a picture or a video
    when it is not one (``kind``: "csv", "json", "mp4", "png")."""
    path = Path(path)
    for inp in inputs:
        if same_file(path, inp):
            raise OutputError(f"{path}: is an input; choose another output name")
    ext = path.suffix.lower()
    media = (IMAGE_EXTS | VIDEO_EXTS) - {f".{kind}"}
    if ext in media:
        raise OutputError(
            f"{path}: a {kind} output with a {ext} name would look like a picture or video; "
            f"choose a .{kind} name"
        )
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: exists and is not a regular file")
    return path


def is_fervid_csv(path: str | os.PathLike, columns: list[str] | None = None) -> bool:
    """Whether ``path`` starts with the header of a fervid CSV (``columns`` exactly, or any
    fervid table: its header ends with ``emotion,confidence[,error]``)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    if header is None:
        return False
    if columns is not None:
        return header == list(columns)
    return header[-2:] == ["emotion", "confidence"] or header[-3:-1] == ["emotion", "confidence"]


def is_fervid_output(path: str | os.PathLike) -> bool:
    """Whether a table fervid writes (CSV, JSON lines, Parquet) is recognisably fervid's."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".jsonl":
        try:
            with open(path, encoding="utf-8") as fh:
                first = json.loads(fh.readline() or "{}")
        except (OSError, ValueError):
            return False
        return isinstance(first, dict) and {"emotion", "confidence"} <= set(first)
    if ext == ".parquet":
        try:
            import pyarrow.parquet as pq  # an extra (fervid[parquet])

            names = pq.read_schema(str(path)).names
        except Exception:  # noqa: BLE001 - unreadable or no pyarrow: not known to be ours
            return False
        return {"emotion", "confidence"} <= set(names)
    return is_fervid_csv(path)


def may_replace(path: Path, is_ours: Callable[[Path], bool] | None = None) -> None:
    """Refuse to replace ``path`` unless it is missing or recognisably fervid's
    (``is_ours``, by default :func:`is_fervid_output`)."""
    if path.exists() and not (is_ours or is_fervid_output)(path):
        raise OutputError(
            f"{path}: exists and was not written by fervid; it is left alone: choose another "
            "output name"
        )


def partial_path(path: str | os.PathLike) -> Path:
    """Where ``path`` is written until complete: ``NAME.partial.EXT`` beside it."""
    path = Path(path)
    return path.with_name(path.stem + ".partial" + path.suffix)


def replace_into(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Flush ``tmp`` to disk and rename it over ``final`` (atomic on POSIX)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        if tmp.exists():
            replace_into(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file under a temporary name and rename it into place."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class OutputLock:
    """An exclusive lock on an output for the length of a run (``NAME.lock`` beside it,
    held with ``flock``: released when the process ends, even by ``kill -9``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.target = Path(path)
        self.path = self.target.with_name(self.target.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot write here ({_reason(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"{self.target}: another fervid run is writing it; wait for it to finish"
                ) from None
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def check_writable(folder: str | os.PathLike) -> None:
    """Refuse early (before any work) a folder where nothing can be written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({_reason(exc)})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: the output folder is not writable")


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class OutputSkip(Exception):
    """A video's outputs exist and may be kept: the video is skipped (not a failure)."""


def unfinished(path: Path, kind: str) -> bool:
    """A file of this kind cut off mid-write (by a kill), as fervid's partial files can be:
    an empty file (created, nothing written yet), an MP4 that starts with its file-type box,
    or a PNG with its signature."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    if not head:
        return True
    if kind == "mp4":
        return head[4:8] == b"ftyp"
    if kind == "png":
        return head.startswith(b"\x89PNG")
    return False


def is_fervid_png(path: Path) -> bool:
    """Whether a PNG says it was written by fervid (its Software field)."""
    try:
        with Image.open(path) as im:
            return im.info.get("Software", "").startswith("fervid")
    except OSError:
        return False


# -- fervid-train's outputs ----------------------------------------------------------------

#: The key that marks a JSON report fervid wrote.
JSON_MARK = "written_by"


def is_fervid_json(path: Path) -> bool:
    """A JSON report fervid wrote (its ``written_by`` key)."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and str(d.get(JSON_MARK, "")).startswith("fervid")


def is_fervid_checkpoint(path: Path) -> bool:
    """A safetensors file carrying fervid's metadata (read from its header only)."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 2 <= n <= 100 * 2**20:
                return False
            header = json.loads(fh.read(n))
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and "fervid" in (header.get("__metadata__") or {})


def is_fervid_text(first_line: str) -> Callable[[Path], bool]:
    """A text file fervid wrote, told by its first line."""

    def check(path: Path) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.readline().rstrip("\n") == first_line
        except (OSError, UnicodeDecodeError):
            return False

    return check


def write_json_report(path: str | os.PathLike, report: dict) -> None:
    """A JSON report, marked as fervid's, replacing only a report fervid wrote."""
    path = Path(path)
    may_replace(path, is_fervid_json)
    write_text_atomic(
        path, json.dumps({JSON_MARK: f"fervid {__version__}", **report}, indent=2) + "\n"
    )
