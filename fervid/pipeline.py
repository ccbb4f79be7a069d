"""The video pipeline, part by part: frames (:class:`~fervid.video.FrameReader`) ->
keyframe policy -> detector -> tracker -> classifier -> probability smoother -> rows (a row
sink) and pictures (a :class:`~fervid.video.VideoSink`).

Frames are handled in chunks of ``batch_size``: each analysed frame is searched for faces
(whole frame on keyframes, near each tracked face's predicted place otherwise) and tracked in
order, the chunk's faces are classified in one batch, and the chunk's rows go to the row sink.
After each chunk the pipeline's whole state fits in a small JSON document
(:meth:`VideoPipeline.state_dict`), so a run killed at any moment resumes from its last
complete chunk and produces the same rows as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from ._mtcnn import nms
from .classify import EmotionModel
from .detect import FaceDetector
from .draw import annotate, annotate_pose
from .face_pictures import PictureKeeper
from .face_pose import Landmarker, SpeakingMeter
from .faces import Faces
from .identity.embedder import FaceEmbedder
from .identity.grouping import cluster_tracks
from .identity.tracker import PersonTracker
from .keyframes import KeyframePolicy
from .options import VideoOptions
from .reclassify import ClassifyByNeed
from .rows import RowSchema
from .shots import ShotCuts, mark_cuts
from .track import FaceTracker, ProbSmoother
from .video import Frame, FrameReader, VideoInfo, VideoSink

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_VERSION = 4


@dataclass
class VideoRun:
    """How a video run went: frames read and analysed, keyframes, time, the error a damaged
    file stopped at, the tracks' identities (plain data). (Called ``VideoReport`` before
    December 2026; that name still works.)"""

    path: str
    frames: int = 0
    analysed: int = 0
    keyframes: int = 0
    regions: int = 0
    seconds: float = 0.0
    error: str | None = None
    annotated: str | None = None
    width: int = 0
    height: int = 0
    fps: float = 0.0
    resumed_from: int | None = None
    bad_packets: int = 0
    people: int = 0
    identity: dict | None = None  # the tracks' identities (PersonTracker.summary), plain data
    splits: int = 0  # tracks split where their face became someone else's (this run)
    #: the face crops kept for the people's pictures ((track, time key) -> Kept), when asked
    pictures: dict | None = field(default=None, repr=False)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> bool:
        """Nothing could be analysed (``error`` says why); a file that ends early has
        ``error`` set too, with the frames before it analysed."""
        return self.error is not None and self.frames == 0

    @classmethod
    def combine(cls, path: str, parts: list[VideoRun]) -> VideoRun:
        """The report of a video analysed in consecutive parts (in parallel: the time is
        the longest part's)."""
        return cls(
            path,
            frames=sum(r.frames for r in parts),
            analysed=sum(r.analysed for r in parts),
            keyframes=sum(r.keyframes for r in parts),
            regions=sum(r.regions for r in parts),
            seconds=max((r.seconds for r in parts), default=0.0),
            error=next((r.error for r in parts if r.error), None),
            bad_packets=sum(r.bad_packets for r in parts),
            splits=sum(r.splits for r in parts),
        )


class VideoPipeline:
    """Detect, track and classify the faces of one video, chunk by chunk."""

    def __init__(
        self,
        path: str | os.PathLike,
        model: EmotionModel,
        options: VideoOptions,
        *,
        pictures: bool = False,
    ):
        self.path, self.model, self.options = str(path), model, options
        self.pictures = PictureKeeper() if pictures else None
        self.info = VideoInfo.from_path(path)
        o = options
        self.detector = FaceDetector(
            device=model.device, min_face_size=o.min_face_size, detect_size=o.detect_size
        )
        self.tracker = FaceTracker(
            max_age=o.max_age, smooth_cutoff=o.box_cutoff, smooth_beta=o.box_beta
        )
        self.policy = KeyframePolicy(
            interval=o.detect_interval, min_interval=min(0.2, o.detect_interval)
        )
        self.cuts = ShotCuts()
        self.cut_pending = False  # a new shot began after the last analysed frame
        self.smoother = ProbSmoother(tau=o.smooth)
        self.people = PersonTracker(
            embedder=FaceEmbedder(device=model.device) if o.reid else None,
            split=self.tracker.split,
        )
        self.by_need = ClassifyByNeed(interval=o.classify_interval)
        self.landmarker = Landmarker() if o.pose else None
        self.speaking = SpeakingMeter()
        self.report = VideoRun(
            self.path, width=self.info.width, height=self.info.height, fps=self.info.fps
        )
        self.first_index: int | None = None
        self.last_frame = -1  # the last frame whose rows were written
        self.carried = Faces.empty(model.classes)
        self.schema = RowSchema("video", model.classes, landmarks=o.landmarks)

    # -- one analysed frame ----------------------------------------------------------------
    def find_faces(self, image: np.ndarray, t: float, *, cut: bool = False) -> Faces:
        """Search (the whole frame on keyframes; else near each track's prediction, and
        where something new moved) and track; ``cut``: a new shot began since the last
        analysed frame (every track ends)."""
        ids, predicted, gaps = self.tracker.predict(t)
        kind, region = self.policy.decide(t, image, predicted, cut=cut)
        if self.policy.last_cut == t and len(ids):
            # another shot: whoever is there now is not where the tracks predict
            self.tracker.end_all()
            ids, predicted, gaps = self.tracker.predict(t)
        h, w = image.shape[:2]
        cx, cy = (predicted[:, 0] + predicted[:, 2]) / 2, (predicted[:, 1] + predicted[:, 3]) / 2
        inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        step = self.options.every / max(self.info.fps, 1.0)
        if kind != "full" and (inside & (gaps > 1.5 * step)).any() and self.policy.due(t):
            kind = "full"  # someone is missing (hidden, or turned away): look often
            self.policy.mark_key(t)
        if kind == "full":
            self.report.keyframes += 1
            return self.tracker.update(self.detector.detect([image])[0], t)
        found = Faces.empty()
        if inside.any():
            scales = np.minimum(self.detector.region_scale + 4.0 * gaps[inside], 4.0)
            found = self.detector.detect_near([image], [predicted[inside]], [scales])[0]
        for box in region or ():
            self.report.regions += 1
            found = _merge(found, self._search_region(image, box))
        if len(ids) and self.tracker.missing(found, t, image.shape[:2]):
            # a tracked face is not where it should be: search the whole frame before
            # giving up on it
            self.report.keyframes += 1
            self.policy.mark_key(t)
            found = self.detector.detect([image])[0]
            self.tracker.searched(self.tracker.missing(found, t, image.shape[:2]))
        return self.tracker.update(found, t)

    def identify(self, faces: Faces, frame: Frame) -> Faces:
        """Each tracked face's person (re-identification by embedding; without it, each
        track its own person, confidence NaN: no embeddings)."""
        persons, conf = self.people.update(faces, frame.image, frame.time_s)
        return faces.with_persons(persons, conf)

    def classify(self, frames: list[Frame], found: list[Faces]) -> list[Faces]:
        """The faces of the analysed frames with probabilities: those that need it classified
        in one batch (:class:`~fervid.reclassify.ClassifyByNeed`), the others carried."""
        masks = [self.by_need.need(fs, f.image, f.time_s) for f, fs in zip(frames, found)]
        some = [fs[np.flatnonzero(m)] for fs, m in zip(found, masks)]
        done = self.model.classify([f.image for f in frames], some, batch_size=256)
        out = []
        for fs, m, d in zip(found, masks, done):
            probs = self.by_need.fill(m, d.probs)
            out.append(fs.with_probs(probs, self.model.classes) if len(fs) else d)
        self.by_need.forget({int(i) for fs in found for i in fs.track_ids} | self._live())
        return out

    def measure(self, faces: Faces, frame: Frame) -> Faces:
        """The faces with their pose, eyes and mouth (:mod:`fervid.face_pose`) and whether
        each track is speaking; unchanged without ``pose``."""
        if self.landmarker is None or len(faces) == 0:
            return faces
        points, measures = self.landmarker.read(frame.image, faces)
        talking = self.speaking.update(faces.track_ids, measures[:, 4], frame.time_s)
        self.speaking.forget(self._live() | {int(i) for i in faces.track_ids})
        return faces.with_measures(measures, talking, points)

    def draw(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """A frame of the annotated video (drawn on ``image``): the boxes, and with
        ``draw="pose"`` where each face points."""
        image = annotate(image, faces, copy=False)
        return annotate_pose(image, faces, copy=False) if self.options.draw == "pose" else image

    def _live(self) -> set[int]:
        return {tr.id for tr in self.tracker.tracks}

    def _search_region(self, image: np.ndarray, region: tuple[int, int, int, int]) -> Faces:
        """Faces in a part of the frame (made at least 3 smallest faces wide)."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = region
        grow = 1.5 * self.options.min_face_size
        x0, y0 = (
            int(max(0, min(x0, (x0 + x1) / 2 - grow))),
            int(max(0, min(y0, (y0 + y1) / 2 - grow))),
        )
        x1, y1 = (
            int(min(w, max(x1, (x0 + x1) / 2 + grow))),
            int(min(h, max(y1, (y0 + y1) / 2 + grow))),
        )
        faces = self.detector.detect([np.ascontiguousarray(image[y0:y1, x0:x1])])[0]
        if len(faces) == 0:
            return faces
        return Faces(faces.boxes + np.array([x0, y0, x0, y0], np.float32), faces.scores)

    # -- a chunk of frames ---------------------------------------------------------------
    def process(self, chunk: list[Frame]) -> tuple[list[list], list[Faces]]:
        """Rows for the chunk's analysed frames, and the faces to draw on every frame."""
        if self.first_index is None:
            self.first_index = chunk[0].index
        every = self.options.every
        chosen, cuts = [], []
        for f in chunk:
            self.cut_pending |= f.cut
            if (f.index - self.first_index) % every == 0:
                chosen.append(f)
                cuts.append(self.cut_pending)
                self.cut_pending = False
        found = [
            self.identify(self.find_faces(f.image, f.time_s, cut=c), f)
            for f, c in zip(chosen, cuts)
        ]
        classified = iter(self.classify(chosen, found))
        rows, drawn = [], []
        for f in chunk:
            if (f.index - self.first_index) % every == 0:
                faces = self.measure(self.smoother.update(next(classified), f.time_s), f)
                rows.extend(self.schema.video_rows(f.index, f.time_s, faces))
                if self.pictures is not None:
                    self.pictures.update(f.image, faces, f.time_s)
                self.report.analysed += 1
                self.carried = faces
            drawn.append(self.carried)
            self.report.frames += 1
        self.last_frame = chunk[-1].index
        return rows, drawn

    def run(
        self,
        rows_out: Callable[[list[list]], None],
        *,
        sink: VideoSink | None = None,
        progress: Callable[[int], None] | None = None,
        checkpoint: Callable[[dict], None] | None = None,
    ) -> VideoRun:
        """Run over the whole range: rows to ``rows_out`` chunk by chunk, every frame drawn
        to ``sink``; ``checkpoint(state)`` after each chunk's rows are out."""
        o = self.options
        reader = FrameReader(self.path, start=o.start, end=o.end, skip_until=self.last_frame)
        t0 = time.perf_counter()
        for chunk in chunked(mark_cuts(reader, self.cuts), o.batch_size):
            rows, drawn = self.process(chunk)
            rows_out(rows)
            if sink is not None:
                for f, faces in zip(chunk, drawn):
                    sink.write(self.draw(f.image, faces), f.time_s)
            if checkpoint is not None:
                checkpoint(self.state_dict())
            if progress is not None:
                progress(len(chunk))
        self.report.seconds += time.perf_counter() - t0
        self.report.splits = len(self.people.splits)
        if self.pictures is not None:
            self.report.pictures = self.pictures.crops()
        self.report.error = reader.error
        self.report.bad_packets = reader.bad_packets
        return self.report

    def final_persons(self) -> dict[int, tuple[int, float]]:
        """Track id -> (person, confidence) for the whole video: the tracks grouped into
        people once everything is seen (:func:`fervid.identity.grouping.cluster_tracks`)."""
        summary = self.people.summary()
        self.report.identity = summary
        persons = cluster_tracks(summary, people=self.options.people)
        self.report.people = len({p for p, _ in persons.values()})
        return persons

    # -- resuming ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs, as plain JSON-safe data."""
        r = self.report
        return {
            "version": STATE_VERSION,
            "video": self.path,
            "options": dataclasses.asdict(self.options),
            "model": self.model.fingerprint,
            "first_index": self.first_index,
            "last_frame": self.last_frame,
            "report": {
                "frames": r.frames,
                "analysed": r.analysed,
                "keyframes": r.keyframes,
                "regions": r.regions,
                "seconds": r.seconds,
            },
            "tracker": self.tracker.state_dict(),
            "policy": self.policy.state_dict(),
            "cuts": self.cuts.state_dict(self.last_frame),
            "cut_pending": self.cut_pending,
            "smoother": self.smoother.state_dict(),
            "people": self.people.state_dict(),
            "by_need": self.by_need.state_dict(),
            "speaking": self.speaking.state_dict(),
        }

    def load_state_dict(self, d: dict) -> None:
        """Continue from a state saved by :meth:`state_dict` (same video, options, model)."""
        if d.get("version") != STATE_VERSION:
            raise ValueError("saved state from another fervid version")
        if d.get("options") != dataclasses.asdict(self.options):
            changed = [
                k for k, v in dataclasses.asdict(self.options).items() if d["options"].get(k) != v
            ]
            raise ValueError(f"the interrupted run used other settings ({', '.join(changed)})")
        if d.get("model") != self.model.fingerprint:
            raise ValueError("the interrupted run used another model")
        self.first_index, self.last_frame = d["first_index"], int(d["last_frame"])
        for k, v in d["report"].items():
            setattr(self.report, k, v)
        self.report.resumed_from = self.last_frame
        self.tracker.load_state_dict(d["tracker"])
        self.policy.load_state_dict(d["policy"])
        self.cuts.load_state_dict(d["cuts"])
        self.cut_pending = bool(d["cut_pending"])
        self.smoother.load_state_dict(d["smoother"])
        self.people.load_state_dict(d["people"])
        self.by_need.load_state_dict(d["by_need"])
        self.speaking.load_state_dict(d["speaking"])


def _merge(a: Faces, b: Faces) -> Faces:
    """Faces found by two searches, duplicates (IoU > 0.4) kept once (the higher score)."""
    if len(a) == 0 or len(b) == 0:
        return b if len(a) == 0 else a

    boxes = np.concatenate([a.boxes, b.boxes])
    scores = np.concatenate([a.scores, b.scores])
    keep = np.sort(nms(boxes, scores, 0.4))
    return Faces(boxes[keep], scores[keep]).sorted_left_to_right()


def chunked(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """``items`` in lists of ``n`` (the last one shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- the rows on disk ---------------------------------------------------------------------


def truncate_rows_after(csv_path: Path, last_frame: int) -> None:
    """Cut a fervid video CSV after the rows of ``last_frame`` (and any half-written line)."""
    col = RowSchema.of_file(csv_path).index("frame")
    keep = 0
    with open(csv_path, "rb") as fh:
        header = fh.readline()
        keep = len(header)
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                idx = int(line.split(b",")[col])
            except (ValueError, IndexError):
                break
            if idx > last_frame:
                break
            keep += len(line)
    with open(csv_path, "r+b") as fh:
        fh.truncate(keep)


#: The name :class:`VideoRun` had before December 2026.
VideoReport = VideoRun
