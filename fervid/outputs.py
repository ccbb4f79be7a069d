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

:class:`OutputError` carries one line for the user.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

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
        import json

        try:
            with open(path, encoding="utf-8") as fh:
                first = json.loads(fh.readline() or "{}")
        except (OSError, ValueError):
            return False
        return isinstance(first, dict) and {"emotion", "confidence"} <= set(first)
    if ext == ".parquet":
        try:
            import pyarrow.parquet as pq

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
        import fcntl

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


def plan_outputs(
    videos: list[tuple[Path, Path | None]], out_dir: str | None
) -> dict[Path, dict[str, Path]]:
    """Each video's output paths, never the same for two videos of one run: with
    ``--out-dir``, videos found in a folder keep their sub-folders; two videos whose names
    would still meet (``clip.mp4`` and ``clip.mov``) keep their extension in the name
    (``clip.mov.fervid.csv``), and a number is added if even that is not enough."""
    bases = {}
    for video, root in videos:
        if out_dir is None:
            base = video.parent
        elif root is not None:
            base = Path(out_dir) / video.parent.relative_to(root)
        else:
            base = Path(out_dir)
        bases[video] = base
    key = {v: (os.path.realpath(bases[v]), v.stem) for v, _ in videos}
    count: dict = {}
    for k in key.values():
        count[k] = count.get(k, 0) + 1
    used: set = set()
    plan = {}
    for video, _ in videos:
        stem = video.stem if count[key[video]] == 1 else video.name
        name, n = stem, 2
        while (os.path.realpath(bases[video]), name) in used:
            name, n = f"{stem}-{n}", n + 1
        used.add((os.path.realpath(bases[video]), name))
        plan[video] = video_outputs(bases[video] / name)
    return plan


#: Where each output of a video goes, after ``VIDEO.fervid``.
VIDEO_OUTPUTS = {
    "csv": ".csv",
    "jsonl": ".jsonl",
    "parquet": ".parquet",
    "mp4": ".mp4",
    "png": ".png",
    "people": ".people.csv",
    "episodes": ".episodes.csv",
    "faces": ".people",
    "eaf": ".eaf",
    "tsv": ".episodes.tsv",
    "html": ".html",
    "identity": ".identity.json",
}


def video_outputs(base: Path) -> dict[str, Path]:
    """The outputs of the video whose outputs are named ``base`` (``folder/clip``)."""
    return {k: base.with_name(base.name + ".fervid" + ext) for k, ext in VIDEO_OUTPUTS.items()}


def is_ours(path: Path, kind: str) -> bool:
    """Whether an existing output of ``kind`` (a key of :data:`VIDEO_OUTPUTS`) is
    recognisably fervid's: its header, tag or contents say so."""
    try:
        if kind in ("people", "episodes"):
            with open(path, encoding="utf-8") as fh:
                first = fh.readline()
            return (
                first.startswith("person,first_s,")
                if kind == "people"
                else first.startswith("person,emotion,start_s,")
            )
        if kind == "tsv":
            with open(path, encoding="utf-8") as fh:
                return fh.readline().rstrip("\n") == "tier\tbegin\tend\tannotation"
        if kind in ("eaf", "html"):
            with open(path, encoding="utf-8") as fh:
                head = fh.read(2000)
            return ('AUTHOR="fervid"' in head) if kind == "eaf" else ('content="fervid"' in head)
        if kind == "faces":
            return path.is_dir() and all(_is_fervid_jpeg(p) for p in path.iterdir())
        if kind == "identity":
            from .regroup import is_identity_file

            return is_identity_file(path)
    except (OSError, UnicodeDecodeError):
        return False
    owned = {"mp4": "video", "png": "png"}
    if kind in owned:
        from .video import is_fervid_video

        return is_fervid_video(path) if kind == "mp4" else is_fervid_png(path)
    return is_fervid_output(path)


def _is_fervid_jpeg(path: Path) -> bool:
    if path.name.endswith(".partial.jpg"):
        return True
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.info.get("comment") == b"fervid"
    except OSError:
        return False


# -- resuming a table ----------------------------------------------------------------------


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
        import json

        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(d, dict) and d.get("kind") == "fervid scan"

    def check_and_cut(self) -> None:
        """Refuse (one line) a partial CSV this scan did not write as it is; cut rows a kill
        left half-written."""
        import hashlib
        import json

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
        import hashlib

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
        import json

        record = {"kind": "fervid scan", "folder": self.folder, "before": before, "after": after}
        write_text_atomic(self.path, json.dumps(record))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def done_items(partial: Path, *, cut_last: bool = True) -> set[str]:
    """Items (first column) whose rows are in a partial CSV, read as CSV records (a name
    may hold a comma, a quote or a line break). ``cut_last``: the last item's rows may be
    incomplete (a kill between two of its faces, no record to tell): they are cut, and it
    is done again."""
    from .rows import cell_text
    from .writers import drop_last_item, repair_partial_csv

    if cut_last:
        repair_partial_csv(partial)
        drop_last_item(partial)
    with open(partial, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return {cell_text(row[0]) for row in reader if row}


# -- a video's outputs ---------------------------------------------------------------------


class OutputSkip(Exception):
    """A video's outputs exist and may be kept: the video is skipped (not a failure)."""


def check_video_outputs(
    video: Path, outs: dict[str, Path], wanted: set[str], *, overwrite: bool, resume: bool
) -> None:
    """Refuse outputs that are the input, or files fervid did not write (OutputError); skip
    a video whose outputs exist unless asked to redo or resume it (OutputSkip). ``outs``
    maps each kind (:data:`VIDEO_OUTPUTS`, and ``table``, the working CSV) to its path;
    ``wanted`` says which are asked for."""
    for k in wanted - {"faces"}:
        check_output(outs[k], inputs=[video], kind=k if k in ("mp4", "png") else "csv")
    if "faces" in wanted and outs["faces"].exists() and not outs["faces"].is_dir():
        raise OutputError(f"{outs['faces']}: exists and is not a folder")
    existing = [k for k in sorted(wanted) if outs[k].exists()]
    if existing and not (overwrite or resume):
        names = ", ".join(str(outs[k]) for k in existing)
        raise OutputSkip(f"skipped, outputs exist ({names}); --overwrite to redo")
    # a video finished before runs kept their identity (fervid regroup) is finished too
    done = wanted - {"identity"} <= set(existing)
    if resume and done and not partial_path(outs["table"]).exists():
        raise OutputSkip("finished earlier; skipped")
    paths = {outs[k]: k for k in wanted} | {outs["table"]: "csv"}
    for path, k in paths.items():
        own = functools.partial(is_ours, kind=k)
        may_replace(path, own)
        if k != "faces":
            may_replace(partial_path(path), lambda p, own=own, k=k: own(p) or unfinished(p, k))
    check_writable(outs["table"].parent)


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
        from PIL import Image

        with Image.open(path) as im:
            return im.info.get("Software", "").startswith("fervid")
    except OSError:
        return False


# -- fervid-train's outputs ----------------------------------------------------------------

#: The key that marks a JSON report fervid wrote.
JSON_MARK = "written_by"


def is_fervid_json(path: Path) -> bool:
    """A JSON report fervid wrote (its ``written_by`` key)."""
    import json

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and str(d.get(JSON_MARK, "")).startswith("fervid")


def is_fervid_checkpoint(path: Path) -> bool:
    """A safetensors file carrying fervid's metadata (read from its header only)."""
    import json

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
    import json

    from . import __version__

    path = Path(path)
    may_replace(path, is_fervid_json)
    write_text_atomic(
        path, json.dumps({JSON_MARK: f"fervid {__version__}", **report}, indent=2) + "\n"
    )
