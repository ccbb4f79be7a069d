"""Each person's face picture (``VIDEO.fervid.people/person_<n>.jpg``): of the person's
best-looking rows (well scored, large: :func:`quality`), the sharpest face.

The crops are kept while the video is analysed (:class:`PictureKeeper`, the best few of each
track, as small JPEGs), so that the pictures cost no second pass over the video; what the
pass did not keep (a resumed run's earlier rows, ``fervid report`` and ``fervid regroup``
later) is fetched from the video (:func:`fervid.video.frames_at`: one forward decode where
seeking would cost more). A person's rows are taken from the tracks near the centre of its
embeddings (:func:`central_candidates`).

And the pictures of a photo scan's faces for its page (:class:`FaceThumbs`), cut while the
photos are scanned.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from .faces import Faces
from .identity.quality import sharpness
from .outputs import atomic_path
from .video import frames_at

#: How many of its best-looking rows a person (and, while a video is analysed, a track) keeps
#: as candidates for its picture.
CANDIDATES = 4
#: The pictures' side, pixels.
SIDE = 160


class Kept(NamedTuple):
    """One face crop kept during the pass: its quality, time, box, sharpness and JPEG."""

    quality: float
    time_s: float
    box: tuple[float, float, float, float]
    sharpness: float
    jpeg: bytes


class Candidate(NamedTuple):
    """A row that may give its person's picture (ordered by how well it shows the face)."""

    quality: float
    tie: int
    time_s: float
    box: list[float]
    track: int


def quality(score: float, box) -> float:
    """How well a row shows a face: the detector's score (to 0.01) times its size (whole
    pixels, up to 160): rows that differ only in the detector's last digits are equal."""
    size = min(round(float(max(box[2] - box[0], box[3] - box[1]))), SIDE)
    return round(float(score), 2) * size


def best_of(heaps, n: int = CANDIDATES) -> list:
    """The best ``n`` candidates of several heaps (a person's tracks)."""
    return heapq.nlargest(n, (c for heap in heaps for c in heap))


def central_candidates(found, identity: dict | None) -> dict[int, list]:
    """Each person's candidates for its picture, taken from the tracks nearest the centre of
    the person's embeddings (the mean of its tracks', weighted by their rows): the nearer
    half of its tracks with embeddings. A track joined on a weak match (another person's,
    mostly) lies far from the centre and gives no picture. ``found``: what
    :func:`fervid.persons.read_people` found; ``identity``: the tracks' embeddings (the
    identity file's, or a run's); without them, or with fewer than two tracks with
    embeddings, a person's best rows of all its tracks."""
    out = found.candidates
    tracks = (identity or {}).get("tracks", {})
    for pid, heaps in found.by_track.items():
        means = {
            tid: np.mean(np.asarray(tracks[str(tid)]["samples"], np.float32), 0)
            for tid in heaps
            if tracks.get(str(tid), {}).get("samples")
        }
        if len(means) < 2:
            continue
        ids = list(means)
        vecs = np.stack([means[t] for t in ids])
        weights = np.array([found.track_rows[pid][t] for t in ids], np.float64)
        centre = (vecs * weights[:, None]).sum(0) / weights.sum()
        far = np.linalg.norm(vecs - centre, axis=1)
        near = [ids[k] for k in np.argsort(far, kind="stable")[: (len(ids) + 1) // 2]]
        out[pid] = best_of(heaps[t] for t in near)
    return out


def time_key(t: float) -> int:
    """A row's time as a key (milliseconds), the same for the pass and the table it wrote."""
    return round(float(t) * 1000)


def tie(t: float) -> int:
    """Between rows of equal quality, a draw fixed by the time: the candidates kept are spread
    over the person's time (not the first few rows), and a track of n such rows replaces its
    kept crops about 4 ln(n) times, not n."""
    return zlib.crc32(time_key(t).to_bytes(8, "little", signed=True))


def candidate(score: float, box, t: float, track: int) -> Candidate:
    """A row as a candidate for its person's picture."""
    box = [float(v) for v in box]
    return Candidate(quality(score, box), tie(t), float(t), box, int(track))


def keep_best(heap: list, item: tuple, n: int = CANDIDATES) -> bool:
    """Keep ``item`` (ordered by its first two fields: quality, tie) in ``heap`` if it is among
    the best ``n``; True when it was kept."""
    if len(heap) < n:
        heapq.heappush(heap, item)
        return True
    if item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)
        return True
    return False


class PictureKeeper:
    """The best few crops of each track, kept as a video is analysed (``update`` with each
    analysed frame's faces, the ones written as rows). While its track is in view a crop is
    kept as cut (a copy of the frame's pixels, the cheapest step); once the track is out of
    view (or at :meth:`crops`) its crops are made pictures: resized, their sharpness
    measured, encoded as JPEG (about 7 kB each, 4 per track)."""

    def __init__(self) -> None:
        self.tracks: dict[int, list] = {}  # track -> heap of (quality, tie, time key, crop)
        self._raw: set[int] = set()  # the tracks with crops as cut

    def update(self, image: np.ndarray, faces: Faces, t: float) -> None:
        here = set()
        for k in range(len(faces)):
            tid = int(faces.track_ids[k])
            here.add(tid)
            box = tuple(float(v) for v in faces.boxes[k])
            key = (quality(faces.scores[k], box), tie(t))
            heap = self.tracks.setdefault(tid, [])
            if len(heap) >= CANDIDATES and key <= heap[0][:2]:
                continue
            keep_best(heap, (*key, time_key(t), (float(t), box, _cut(image, box))))
            self._raw.add(tid)
        for tid in self._raw - here:
            self._finish(tid)

    def _finish(self, tid: int) -> None:
        done = []
        for q, draw, key, crop in self.tracks[tid]:  # heap order: the keys do not change
            if not isinstance(crop, Kept):
                t, box, cut = crop
                small = _small(cut)
                crop = Kept(q, t, box, sharpness(small), _jpeg(small, quality=95))
            done.append((q, draw, key, crop))
        self.tracks[tid] = done
        self._raw.discard(tid)

    def crops(self) -> dict[tuple[int, int], Kept]:
        """(track, time key) -> the crop kept there."""
        for tid in list(self._raw):
            self._finish(tid)
        return {(tid, key): kept for tid, heap in self.tracks.items() for *_, key, kept in heap}


def write_faces(
    video: str | os.PathLike | None,
    candidates: dict[int, list],
    folder: str | os.PathLike,
    *,
    kept: dict[tuple[int, int], Kept] | None = None,
) -> dict[int, Path]:
    """One picture per person (``person_<n>.jpg``, 160 px) from ``candidates`` (person -> its
    best rows, :class:`Candidate`): the sharpest of them. Crops ``kept`` during
    the pass are used as they are; for a person with none, the frames are found by seeking in
    ``video`` (the analysed one, not the annotated copy). Returns person -> picture."""
    folder = Path(folder)
    kept = kept or {}
    chosen: dict[int, list] = {}
    wanted: list[float] = []
    for pid, heap in candidates.items():
        keys = [(c.track, time_key(c.time_s)) for c in heap]
        chosen[pid] = [kept[k] for k in keys if k in kept]
        if not chosen[pid]:
            wanted += [c.time_s for c in heap]
    frames = frames_at(video, wanted) if wanted and video is not None else {}
    out: dict[int, Path] = {}
    for pid, heap in sorted(candidates.items()):
        if chosen[pid]:
            best = max(chosen[pid], key=lambda c: c.sharpness)
            image = np.asarray(Image.open(io.BytesIO(best.jpeg)).convert("RGB"))
        else:
            crops = [_face_square(frames[c.time_s], c.box) for c in heap if c.time_s in frames]
            if not crops:
                continue
            image = max(crops, key=sharpness)
        out[pid] = _save_jpeg(image, folder / f"person_{pid}.jpg")
    _remove_others(folder, set(out.values()))
    return out


def _face_square(image: np.ndarray, box) -> np.ndarray:
    """The face in a square 1.4 times its long side, :data:`SIDE` pixels."""
    return _small(_cut(image, box))


def _small(cut: np.ndarray) -> np.ndarray:
    return cv2.resize(cut, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def _cut(image: np.ndarray, box) -> np.ndarray:
    """A copy of the square 1.4 times the face's long side (clipped to the image)."""
    x1, y1, x2, y2 = box
    side = 1.4 * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = image.shape[:2]
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    return (image[b:d, a:c] if d > b and c > a else image).copy()


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _save_jpeg(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=90, comment=b"fervid")
    return path


def _remove_others(folder: Path, kept: set[Path], names: str = "person_*.jpg") -> None:
    """The pictures (``names``) an earlier run wrote and this one has not (fewer people after
    a regroup, rows no longer in a scan's table), removed: fervid's own JPEGs only."""
    if not folder.is_dir():
        return
    for p in folder.glob(names):
        if p not in kept and is_fervid_jpeg(p):
            p.unlink()


def is_fervid_jpeg(path: Path) -> bool:
    """A JPEG fervid wrote (its comment)."""
    try:
        with Image.open(path) as im:
            return im.info.get("comment") == b"fervid"
    except OSError:
        return False


def is_fervid_folder(path: Path) -> bool:
    """A folder of pictures fervid wrote (every file a fervid JPEG, or one cut off while
    written)."""
    try:
        return path.is_dir() and all(
            p.name.endswith(".partial.jpg") or is_fervid_jpeg(p) for p in path.iterdir()
        )
    except OSError:
        return False


class FaceThumbs:
    """Small pictures of a photo scan's faces (``folder/<key>_<face>.jpg``, 160 px), cut while
    the photos are scanned, for the scan's page: it shows them instead of the whole photos
    (a folder of phone photos would make it load gigabytes)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    @staticmethod
    def name(relpath: str, face: int) -> str:
        """The file name of a row's picture (any relpath gives a plain, short name)."""
        key = hashlib.sha1(relpath.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        return f"{key}_{int(face)}.jpg"

    def add(self, relpath: str, image: np.ndarray, faces: Faces) -> None:
        """The pictures of one photo's faces (face k: the photo's k-th row)."""
        for k in range(len(faces)):
            _save_jpeg(_face_square(image, faces.boxes[k]), self.folder / self.name(relpath, k))

    def get(self, relpath: str, face: int) -> Path | None:
        """A row's picture, or None when the scan kept none (a Ray scan, an older one)."""
        path = self.folder / self.name(relpath, face)
        return path if path.is_file() else None

    def keep_only(self, kept: set[Path]) -> None:
        """The pictures of rows no longer in the table, removed (fervid's own only)."""
        _remove_others(self.folder, kept, "*.jpg")
