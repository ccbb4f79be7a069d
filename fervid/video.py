"""Video I/O with PyAV: :class:`VideoInfo`, a threaded frame reader, and :class:`VideoSink`,
an H.264 writer that keeps the input's timestamps and audio and appears complete or not at all.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .errors import first_line
from .images import ImageError, check_regular
from .outputs import same_file

log = logging.getLogger(__name__)

#: The tag in every annotated video's metadata ("comment"): how fervid knows its own files.
FERVID_TAG = "annotated by fervid"

#: Audio codecs an MP4 can carry as they are; others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
_END = object()


class VideoError(ValueError):
    """A video file that cannot be read as a video (no stream, not a media file...)."""


def local(path: str | os.PathLike) -> str:
    """A path as FFmpeg must be given it to read or write that file and nothing else: with
    the ``file:`` protocol, absolute (a name such as ``http:host.mp4`` or ``talk:part2.mp4``
    is otherwise taken as a protocol and a place)."""
    return "file:" + os.path.abspath(os.fsdecode(path))


def _open(path: str | os.PathLike):

    try:
        check_regular(path)
    except ImageError as exc:
        raise VideoError(f"{path}: {str(exc).replace('cannot read file: ', '')}") from None
    try:
        return av.open(local(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc)
        raise VideoError(f"{path}: not a readable video ({reason})") from None


def is_fervid_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video fervid wrote (its metadata carries :data:`FERVID_TAG`)."""
    try:
        with av.open(local(path), metadata_errors="ignore") as c:
            return c.metadata.get("comment") == FERVID_TAG
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return False


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: display size (after rotation), rate, length, rotation, audio."""

    path: str
    width: int
    height: int
    fps: float
    frames: int  # from the container; 0 when it does not say
    duration_s: float
    rotation: int  # degrees counter-clockwise the frames are turned for display
    codec: str
    has_audio: bool
    time_base: Fraction

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> VideoInfo:
        with _open(path) as c:
            if not c.streams.video:
                raise VideoError(f"{path}: no video stream")
            s = main_video_stream(c)
            rate = s.average_rate or s.guessed_rate or s.base_rate or Fraction(25)
            tb = s.time_base or Fraction(1, 90000)
            if s.duration is not None:
                duration = float(s.duration * tb)
            elif c.duration is not None:
                duration = c.duration / av.time_base
            else:
                duration = 0.0
            rotation = _stream_rotation(c, s)
            w, h = s.codec_context.width, s.codec_context.height
            if rotation % 180:
                w, h = h, w
            return cls(
                str(path),
                int(w),
                int(h),
                float(rate),
                int(s.frames or 0),
                duration,
                rotation,
                s.codec_context.name,
                bool(c.streams.audio),
                Fraction(tb),
            )


def main_video_stream(container):
    """The video stream a file means to show: the largest (a file whose first stream is a
    160x120 thumbnail track is read at its real size), the one marked default among equals;
    never cover art."""
    streams = list(container.streams.video)
    flags = av.stream.Disposition

    def rank(s):
        d = int(getattr(s, "disposition", 0) or 0)
        cc = s.codec_context
        picture = bool(d & int(flags.attached_pic))
        return (
            not picture,
            (cc.width or 0) * (cc.height or 0),
            bool(d & int(flags.default)),
            -s.index,
        )

    try:
        return max(streams, key=rank)
    except (AttributeError, TypeError, ValueError):
        return streams[0]


def _stream_rotation(container, stream) -> int:
    # PyAV exposes the display matrix on decoded frames; peek at the first one.
    try:
        for frame in container.decode(stream):
            return int(round(getattr(frame, "rotation", 0) or 0))
    except av.error.FFmpegError:
        return 0
    return 0


@dataclass
class Frame:
    """One decoded frame: decode index (0-based), presentation time, RGB pixels; ``cut``:
    the first frame of a new shot (marked by :func:`fervid.shots.mark_cuts`)."""

    index: int
    time_s: float
    pts: int | None
    image: np.ndarray
    cut: bool = False


class FrameReader:
    """Iterate a video's frames (RGB, rotation applied), decoded in a background thread.

    ``start``/``end`` (seconds) select a range; frames before it are decoded but not
    converted, so that ``index`` stays the decode index from the start of the video; so are
    frames up to index ``skip_until`` (a resumed run). After iteration, ``error`` holds why
    decoding stopped early (a truncated file), or None.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        start: float | None = None,
        end: float | None = None,
        queue_size: int = 16,
        threads: int = 0,
        skip_until: int = -1,
    ) -> None:
        self.path = str(path)
        self.skip_until = skip_until
        self.info = VideoInfo.from_path(path)
        self.start, self.end = start, end
        self.queue_size = queue_size
        self.threads = threads
        self.error: str | None = None
        self.bad_packets = 0
        self._stop = threading.Event()

    def _decode(self, q: queue.Queue) -> None:
        try:
            with _open(self.path) as c:
                s = main_video_stream(c)
                s.thread_type = "AUTO"
                if self.threads:
                    s.codec_context.thread_count = self.threads
                tb = s.time_base
                k = round(self.info.rotation / 90) % 4
                index = -1
                last_t = None
                try:
                    for f in self._frames(c, s):
                        index += 1
                        if f is None:
                            continue
                        t = float(f.pts * tb) if f.pts is not None else index / self.info.fps
                        last_t = t
                        if self.start is not None and t < self.start - 1e-6:
                            continue
                        if self.end is not None and t >= self.end - 1e-6:
                            break
                        if index <= self.skip_until:
                            continue
                        img = f.to_ndarray(format="rgb24")
                        if k:
                            img = np.ascontiguousarray(np.rot90(img, k))
                        while not self._stop.is_set():
                            try:
                                q.put(Frame(index, t, f.pts, img), timeout=0.2)
                                break
                            except queue.Full:
                                continue
                        if self._stop.is_set():
                            return
                except av.error.FFmpegError as exc:
                    self.error = f"decoding stopped after frame {index}: {first_line(exc)}"
                else:
                    self._check_complete(last_t)
        except VideoError as exc:
            self.error = str(exc)
        except Exception as exc:  # reported to the consumer, never lost in the thread
            self.error = f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            while True:
                try:
                    q.put(_END, timeout=0.2)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break

    def _frames(self, container, stream):
        """Decoded frames, and None in place of a packet that cannot be decoded (counted in
        ``bad_packets``; the frames after it still come, their indices unshifted)."""
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                self.bad_packets += 1
                yield None
                continue
            yield from frames

    def _check_complete(self, last_t: float | None) -> None:
        """Decoding reached the end of the data: does that match the declared duration?
        (A truncated file often just ends, without a decoding error.)"""
        if self.end is not None or self.info.duration_s <= 0:
            return
        frame = 1 / self.info.fps if self.info.fps > 0 else 0.04
        reached = (last_t if last_t is not None else 0.0) + frame
        if self.info.duration_s - reached > max(0.5, 2 * frame):
            self.error = (
                f"truncated: frames end at {reached:.2f} s of the "
                f"{self.info.duration_s:.2f} s the file declares"
            )

    def __iter__(self) -> Iterator[Frame]:
        q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        self._stop.clear()
        t = threading.Thread(target=self._decode, args=(q,), daemon=True, name="fervid-decode")
        t.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    break
                yield item
        finally:
            self._stop.set()
            while t.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(timeout=0.05)


def frames_at(path: str | os.PathLike, times: list[float]) -> dict[float, np.ndarray]:
    """The frames shown at each of ``times`` (seconds; RGB, rotation applied), in one pass in
    time order: from one time to the next the decoder goes on forward, unless the way ahead is
    longer than the stretch it has decoded since its last key frame; then it seeks to the key
    frame before the next time. A few frames of a long video cost a few short decodes; many
    frames of a file with one key frame cost at most one decode of it. A time that cannot be
    reached is left out."""
    info = VideoInfo.from_path(path)
    k = round(info.rotation / 90) % 4
    out: dict[float, np.ndarray] = {}
    with _open(path) as c:
        s = main_video_stream(c)
        tb = s.time_base or info.time_base
        frames = None  # the decoder, after the frame at ``pos`` (the last key frame: ``key``)
        pos = key = 0.0
        for t in sorted(set(times)):
            try:
                if frames is None or t - pos > pos - key:
                    c.seek(max(0, int(t / tb)), stream=s, backward=True, any_frame=False)
                    frames, pos, key = c.decode(s), -math.inf, -math.inf
                for f in frames:
                    pos = float(f.pts * tb) if f.pts is not None else pos
                    if f.key_frame:
                        key = pos
                    if pos >= t - 1e-3:
                        img = f.to_ndarray(format="rgb24")
                        out[t] = np.ascontiguousarray(np.rot90(img, k)) if k else img
                        break
                else:  # the end of the file: nothing after it
                    frames = None
            except av.error.FFmpegError:
                frames = None
    return out


class VideoSink:
    """Write RGB frames as H.264 (yuv420p) MP4 with the input's timestamps and audio.

    Use as a context manager. Frames go to a background encoder thread through a bounded
    queue. The file is written under a temporary name and renamed into place only when the
    block exits without an exception, so the output is complete or absent.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        info: VideoInfo,
        *,
        audio_from: str | os.PathLike | None = None,
        time_offset: float = 0.0,
        end: float | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        queue_size: int = 16,
    ) -> None:
        self.path = Path(path)
        for source in (info.path, audio_from):
            if source is not None and same_file(self.path, source):
                raise VideoError(f"{self.path}: is the input video; choose another output name")
        self.info = info
        self.audio_from = audio_from
        self.time_offset = time_offset
        self.end = end
        self.crf, self.preset = crf, preset
        self.tmp = self.path.with_name(self.path.stem + ".partial" + self.path.suffix)
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> VideoSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, daemon=True, name="fervid-encode")
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._put(_END)
        if self._thread is not None:
            self._thread.join()
        if exc_type is None and self._error is None:
            os.replace(self.tmp, self.path)
            return
        self.tmp.unlink(missing_ok=True)
        if exc_type is None and self._error is not None:
            raise VideoError(f"{self.path}: encoding failed ({first_line(self._error)})")

    def write(self, image: np.ndarray, time_s: float) -> None:
        """Queue one RGB frame shown at ``time_s`` (seconds, the input's clock)."""
        if self._error is not None:
            raise VideoError(f"{self.path}: encoding failed ({first_line(self._error)})")
        self._put((image, time_s))

    def _put(self, item) -> None:
        while True:
            if self._thread is None or not self._thread.is_alive():
                return
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # -- the encoder thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._encode()
        except BaseException as exc:  # handed to the writer; the file is then discarded
            self._error = exc
            while True:  # drain so the producer never blocks
                try:
                    if self._q.get(timeout=0.5) is _END:
                        break
                except queue.Empty:
                    break

    def _encode(self) -> None:
        info = self.info
        w, h = info.width + info.width % 2, info.height + info.height % 2
        tb = (
            info.time_base
            if info.time_base and info.time_base.denominator <= 10**6
            else Fraction(1, 90000)
        )
        with av.open(local(self.tmp), mode="w", format="mp4") as out:
            out.metadata["comment"] = FERVID_TAG
            v = out.add_stream("libx264", rate=Fraction(info.fps).limit_denominator(100000))
            v.width, v.height, v.pix_fmt = w, h, "yuv420p"
            v.time_base = tb
            v.codec_context.time_base = tb
            v.options = {"crf": str(self.crf), "preset": self.preset}
            audio = (
                _AudioCopier(self.audio_from, out, self.time_offset, self.end)
                if self.audio_from and info.has_audio
                else None
            )
            last_pts = None
            while True:
                item = self._q.get()
                if item is _END:
                    break
                image, t = item
                if image.shape[0] != h or image.shape[1] != w:
                    image = np.pad(
                        image,
                        ((0, h - image.shape[0]), (0, w - image.shape[1]), (0, 0)),
                        mode="edge",
                    )
                # BT.601 limited-range 4:2:0, what swscale would make, at a seventh of its cost
                yuv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420)
                frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                pts = int(round((t - self.time_offset) / tb))
                if last_pts is not None and pts <= last_pts:
                    pts = last_pts + 1
                frame.pts, frame.time_base = pts, tb
                last_pts = pts
                for packet in v.encode(frame):
                    out.mux(packet)
                if audio is not None:
                    audio.copy_until(t - self.time_offset)
            for packet in v.encode(None):
                out.mux(packet)
            if audio is not None:
                audio.copy_until(float("inf"))
                audio.close()


class _AudioCopier:
    """Carries the input's first audio stream into the output, interleaved with the video:
    packets copied as they are when MP4 can hold the codec, otherwise re-encoded to AAC."""

    def __init__(self, src, out, offset: float, end: float | None) -> None:
        self.inp = av.open(local(src))
        self.ins = self.inp.streams.audio[0]
        self.offset, self.end = offset, end
        self.copy = self.ins.codec_context.name in MP4_AUDIO
        if self.copy:
            self.outs = out.add_stream_from_template(self.ins)
        else:
            rate = self.ins.codec_context.sample_rate or 48000
            self.outs = out.add_stream("aac", rate=rate)
            self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        self.out = out
        self.packets = self.inp.demux(self.ins)
        self.done = False

    def copy_until(self, t: float) -> None:
        while not self.done:
            try:
                packet = next(self.packets)
            except (StopIteration, av.error.FFmpegError):
                self.done = True
                break
            if packet.dts is None:
                continue
            pt = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            if pt < self.offset - 1e-6:
                continue
            if self.end is not None and pt >= self.end:
                self.done = True
                break
            self._write(packet)
            if pt - self.offset > t:
                break

    def _write(self, packet) -> None:
        shift = int(round(self.offset / packet.time_base))
        if self.copy:
            packet.stream = self.outs
            if packet.pts is not None:
                packet.pts -= shift
            packet.dts -= shift
            self.out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for rf in self.resampler.resample(frame):
                for p in self.outs.encode(rf):
                    self.out.mux(p)

    def close(self) -> None:
        if not self.copy:
            for rf in self.resampler.resample(None):
                for p in self.outs.encode(rf):
                    self.out.mux(p)
            for p in self.outs.encode(None):
                self.out.mux(p)
        self.inp.close()
