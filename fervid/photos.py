"""Photos: finding them, reading them in order with decoding ahead of use, their faces and
rows (:func:`iter_images`), and a resumable scan of a folder into a table file
(:func:`scan_folder`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classify import EmotionModel, load_model
from .detect import FaceDetector
from .face_pictures import FaceThumbs, is_fervid_folder
from .face_pose import Landmarker
from .faces import Faces
from .images import (
    IMAGE_EXTS,
    MAX_FILE_PIXELS,
    MAX_FRAMES,
    ImageError,
    inside,
    load_frames,
    walk_entries,
)
from .options import ImageOptions, make_options
from .outputs import (
    OutputError,
    OutputLock,
    check_output,
    check_writable,
    may_replace,
    same_file,
)
from .pages import is_fervid_page, write_photos_page
from .pipeline import chunked
from .rows import RowSchema, file_of, frame_name
from .scan_table import ScanRecord, prepare_table
from .writers import WRITERS, CsvRowWriter, clean_text, format_of, working_table, write_format

log = logging.getLogger(__name__)

#: MTCNN's pyramid step for photos: 20% faster than facenet-pytorch's 0.709, the same faces
#: found (bench/run.py --only small_images)
PHOTO_PYRAMID_FACTOR = 0.6


def as_model(model: EmotionModel | str | os.PathLike | None, device: str) -> EmotionModel:
    """A loaded model, a checkpoint's path, or None for the bundled model, as a model."""
    if isinstance(model, EmotionModel):
        return model
    return load_model(model, device=device)


@dataclass
class ImageResult:
    """The faces of one image file (or of one frame of a multi-page or animated file: then
    ``relpath`` is ``name#k`` and ``last`` says whether it is the file's last), or why it
    could not be read."""

    path: Path
    relpath: str
    faces: Faces
    error: str = ""
    last: bool = True
    image: np.ndarray | None = field(default=None, repr=False)  # the pixels the faces are in
    landmarks: bool = False  # the table has the 68 landmarks' columns

    def rows(self) -> list[list]:
        schema = RowSchema("image", self.faces.classes, landmarks=self.landmarks)
        return schema.image_rows(self.relpath, self.faces, self.error)


def resolve_inputs(inputs) -> tuple[list[Path], Path | None]:
    """Image paths and the folder they are relative to: a folder is walked recursively (every
    name with an image extension, folders that cannot be listed and links that lead out of
    the folder, so that each gets a row), a file is itself, a list is taken as it is (no
    common folder)."""
    if isinstance(inputs, (str, os.PathLike)):
        root = Path(inputs)
        if root.is_dir():
            return [p for p, _ in walk_entries(root, IMAGE_EXTS)], root
        return [root], root.parent
    paths = [Path(p) for p in inputs]
    return paths, None


def relpath(p: Path, root: Path | None) -> str:
    """``p`` relative to ``root`` in POSIX form, or as given when outside it (bytes that
    are not UTF-8 written as backslash escapes, so that every name fits a CSV row)."""
    if root is not None:
        try:
            return clean_text(p.relative_to(root).as_posix())
        except ValueError:
            pass
    return clean_text(str(p))


def iter_images(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    options: ImageOptions | None = None,
    skip: Callable[[str], bool] | None = None,
    prefetch: int = 8,
    relative_to: str | os.PathLike | None = None,
    **settings,
) -> Iterator[ImageResult]:
    """Yield an :class:`ImageResult` per image, in order, as each is done.

    ``inputs``: a folder (walked recursively), one file, or a list of files. ``options`` (an
    :class:`~fervid.options.ImageOptions`) or its fields as keywords (``crops=True`` takes
    every image as an already-cropped face: no detection). ``skip(relpath)`` leaves out
    images already processed (resuming). ``relative_to`` names the folder that ``relpath``
    is relative to when ``inputs`` is a list.
    """
    opts = make_options(ImageOptions, options, **settings)
    emo = as_model(model, device)
    paths, root = resolve_inputs(inputs)
    if relative_to is not None:
        root = Path(relative_to)
    todo = [(p, relpath(p, root)) for p in paths]
    if skip is not None:
        todo = [(p, r) for p, r in todo if not skip(r)]
    outside = set()
    if root is not None and root.is_dir():
        real_root = os.path.realpath(root)
        outside = {p for p, _ in todo if _is_dir(p) and not inside(p, real_root)}
    detector = None
    if not opts.crops:
        detector = FaceDetector(
            device=emo.device,
            min_face_size=opts.min_face_size,
            detect_size=opts.detect_size,
            pyramid_factor=PHOTO_PYRAMID_FACTOR,
        )
    chunk = 64 if opts.crops else 4  # crops: one forward pass per 64; photos: MTCNN batches
    frames = _each_frame(_decode_ahead(todo, max(prefetch, chunk), outside))
    landmarker = Landmarker() if opts.pose else None
    for batch in chunked(frames, chunk):
        images = [item[2] for item in batch if item[2] is not None]
        found = _faces_of(images, emo, detector) if images else []
        if landmarker is not None:
            found = [_measured(landmarker, img, fs) for img, fs in zip(images, found)]
        found = iter(found)
        for p, r, image, err, last in batch:
            faces = Faces.empty(emo.classes) if image is None else next(found)
            yield ImageResult(p, r, faces, err, last, image, opts.landmarks)


def _measured(landmarker: Landmarker, image: np.ndarray, faces: Faces) -> Faces:
    points, measures = landmarker.read(image, faces)
    return faces.with_measures(measures, points=points)


def _each_frame(decoded):
    """(path, relpath, image or None, error, last of its file) per frame: a still image as it
    is, each frame of a multi-page or animated file as ``relpath#k``, and a last row for the
    frames past :data:`~fervid.images.MAX_FRAMES` (not read)."""
    for p, r, frames, err, total in decoded:
        if frames is None:
            yield p, r, None, err, True
        elif total == 1:
            yield p, r, frames[0], "", True
        else:
            n = len(frames)
            for k, image in enumerate(frames, 1):
                yield p, frame_name(r, k), image, "", k == n == total
            if total > n:
                left = f"{n + 1}-{total}" if total > n + 1 else str(total)
                why = (
                    f"frame(s) {left} of {total} not read (a file gives at most {MAX_FRAMES} "
                    f"frames and {MAX_FILE_PIXELS // 1_000_000} megapixels)"
                )
                yield p, frame_name(r, n + 1), None, why, True


def rows_per_file(results: Iterable[ImageResult]) -> Iterator[list[list]]:
    """The rows of each file (all its frames together), in order, each file's as soon as its
    last frame is done."""
    rows = []
    for res in results:
        rows += res.rows()
        if res.last:
            yield rows
            rows = []


def _faces_of(images: list[np.ndarray], emo: EmotionModel, detector) -> list[Faces]:
    """The classified faces of each image (each image one face when ``detector`` is None)."""
    if detector is not None:
        return emo.classify(images, detector.detect(images))
    probs = emo.predict(np.stack([emo.prepare(img) for img in images]))
    return [
        Faces([[0, 0, img.shape[1], img.shape[0]]], [1.0], probs[k : k + 1], classes=emo.classes)
        for k, img in enumerate(images)
    ]


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # a name too long for the OS, say: it is read (and refused) as a file
        return False


def _decode(p: Path) -> tuple[list[np.ndarray] | None, str, int]:
    """(frames or None, why not, how many frames the file holds)."""
    try:
        if p.is_dir():
            os.listdir(p)
    except OSError as exc:
        return None, f"cannot list folder: {exc.strerror or exc}", 0
    try:
        frames, total = load_frames(p, max_frames=MAX_FRAMES)
        return frames, "", total
    except ImageError as exc:
        return None, str(exc), 0
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}", 0


def _decode_ahead(todo: list[tuple[Path, str]], prefetch: int, outside=frozenset()):
    """(path, relpath, frames or None, error, frames in the file) in order, decoded by two
    threads ahead of use; the read-ahead is bounded so memory does not grow with the folder.
    Paths in ``outside`` (links to folders out of the scanned folder) are not read."""

    def decode(p: Path):
        if p in outside:
            return None, "a link to a folder outside the scanned folder: not followed", 0
        return _decode(p)

    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(decode, p) for p, _ in todo[:prefetch]]
        nxt = len(pending)
        for i, (p, r) in enumerate(todo):
            frames, err, total = pending[i].result()
            pending[i] = None
            if nxt < len(todo):
                pending.append(pool.submit(decode, todo[nxt][0]))
                nxt += 1
            yield p, r, frames, err, total


# -- a folder scanned into a table file ----------------------------------------------------


@dataclass
class ScanReport:
    """How a scan went: images written in this run, those done by an earlier run (resume),
    faces found, and the images that could not be read (relative path, why)."""

    out: Path
    images: int = 0
    already_done: int = 0
    faces: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan: the rows so far are kept in ``partial`` for ``resume``."""

    def __init__(self, report: ScanReport, partial: Path) -> None:
        super().__init__(f"{report.images} images written to {partial}")
        self.report, self.partial = report, partial


def scan_folder(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: EmotionModel | str | os.PathLike | None = None,
    device: str = "auto",
    options: ImageOptions | None = None,
    resume: bool = False,
    overwrite: bool = False,
    fmt: str | None = None,
    page: str | os.PathLike | None = None,
    read: Callable[[list[Path], Path | None], Iterator[list[list]]] | None = None,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ScanReport:
    """Scan ``folder`` (recursively) into the table ``out`` in the format ``fmt`` (``csv``,
    ``jsonl`` or ``parquet``; by default from the name, CSV unless it ends in ``.jsonl`` or
    ``.parquet``), rows streamed to a working CSV, resumable: ``resume=True`` continues an
    interrupted scan of the same folder. The output rules of :mod:`fervid.outputs` hold (a
    file fervid did not write is never replaced). ``read(paths, base)``, when given, yields
    each image's rows in order instead of reading them here (a Ray cluster:
    :func:`fervid.api.scan_folder`). ``on_total(n)`` is told how many images are to be
    read, ``progress(1)`` after each. ``page``: also write a page to review the faces there
    (:func:`fervid.pages.write_photos_page`)."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    opts = options or ImageOptions()
    root, final = Path(folder), Path(out)
    fmt = fmt or format_of(final)
    if fmt not in WRITERS:
        raise ValueError(f"format {fmt!r}: csv, jsonl or parquet")
    emo = as_model(model, device)
    check_output(final, inputs=[root] if root.is_file() else [], kind=fmt)
    check_writable(final.parent)
    thumbs = None
    if page is not None:
        check_output(page, inputs=[root, final], kind="csv")
        may_replace(Path(page), is_fervid_page)
        thumbs = thumbs_of(page)
        if (thumbs.folder.exists() and not thumbs.folder.is_dir()) or same_file(
            thumbs.folder, root
        ):
            raise OutputError(f"{thumbs.folder}: is not a folder fervid can write the faces to")
        may_replace(thumbs.folder, is_fervid_folder)
    with OutputLock(final):
        table = working_table(final, fmt)
        schema = RowSchema("image", emo.classes, landmarks=opts.landmarks)
        partial, done = prepare_table(
            final,
            table,
            schema.columns,
            resume=resume,
            overwrite=overwrite,
            fmt=fmt,
            folder=root,
        )
        paths, base = resolve_inputs(root)
        if thumbs is not None:  # the page's own pictures are not photos to scan (a resume)
            paths = [p for p in paths if p.parent != thumbs.folder]
        done = {file_of(name) for name in done}
        todo = [p for p in paths if relpath(p, base) not in done]
        if on_total is not None:
            on_total(len(todo))
        report = ScanReport(final, already_done=len(done))
        # read elsewhere (Ray), no pictures are cut: the page shows the whole photos
        here = read is None
        source = _rows_here(todo, base, emo, opts, thumbs) if here else read(todo, base)
        writer = CsvRowWriter(partial, schema.columns, append=resume)
        record = ScanRecord(partial, root)
        record.start()
        _write_rows(source, writer, schema, report, record, progress)
        _finish(partial, final, fmt, page, root, thumbs)
        record.remove()
    return report


def _finish(partial: Path, final: Path, fmt: str, page, root: Path, thumbs) -> None:
    """The page and the output in its format, from the whole partial CSV, which (with its
    record) is kept until both are written: a full disk here loses nothing, and a resume
    only writes them again."""
    try:
        if page is not None:
            folder = root if root.is_dir() else root.parent
            write_photos_page(page, partial, folder, thumbs=thumbs)
        if fmt == "csv":
            os.replace(partial, final)
        else:
            write_format(partial, final, fmt)
    except OSError as exc:
        raise OutputError(
            f"{final}: cannot write ({exc.strerror or exc}); every row is kept in {partial}: "
            "free space, then run again with --resume"
        ) from None


def _write_rows(source, writer: CsvRowWriter, schema: RowSchema, report, record, progress):
    """Each image's rows to the partial CSV, recorded just before they are written
    (:class:`fervid.outputs.ScanRecord`), so that a resume can tell it is this scan's
    output."""
    partial = record.partial
    try:
        for rows in source:
            _write(writer, rows, record)
            report.images += 1
            report.faces += sum(1 for r in rows if schema.has_face(r))
            for row in rows:
                if error := schema.get(row, "error"):
                    report.failed.append((schema.get(row, "path"), error))
            if progress is not None:
                progress(1)
        _write(writer, None, record)
    except KeyboardInterrupt:
        writer.close(quietly=True)
        raise ScanInterrupted(report, partial) from None
    except BaseException:
        writer.close(quietly=True)
        raise


def _write(writer: CsvRowWriter, rows, record) -> None:
    """Write (or, with ``rows`` None, close) the partial CSV; a full disk or a lost share is
    one line that says the rows so far are kept."""
    try:
        if rows is None:
            writer.close()
        else:
            writer.write(rows, before=record.will_write)
    except OSError as exc:
        raise OutputError(
            f"{record.partial}: cannot write ({exc.strerror or exc}); the rows written so far "
            "are kept: free space, then run again with --resume"
        ) from None


def _rows_here(paths, base, emo, opts, thumbs: FaceThumbs | None) -> Iterator[list[list]]:
    results = iter_images(paths, relative_to=base, model=emo, options=opts)
    if thumbs is not None:
        results = _with_thumbs(results, thumbs)
    yield from rows_per_file(results)


def _with_thumbs(results: Iterable[ImageResult], thumbs: FaceThumbs) -> Iterator[ImageResult]:
    """The results, each photo's faces cut into ``thumbs`` on the way (the photo is decoded
    once, for the scan). A picture that cannot be written (a full disk) stops the pictures,
    not the scan: the page shows those faces in their photos."""
    for res in results:
        if thumbs is not None and res.image is not None and len(res.faces):
            try:
                thumbs.add(res.relpath, res.image, res.faces)
            except OSError as exc:
                log.warning("%s: cannot write the faces' pictures (%s)", thumbs.folder, exc)
                thumbs = None
        yield res


def thumbs_of(page: str | os.PathLike) -> FaceThumbs:
    """Where the pictures of a scan's page are kept: ``photos.html`` -> ``photos.faces/``."""
    page = Path(page)
    return FaceThumbs(page.with_name(page.stem + ".faces"))
