"""Settings defined once: each field of a settings dataclass carries its default, its help and
its command-line type; the command-line options are made from the fields and the values are
checked against the same types, so the API, the command line, the pipeline and the Ray jobs
share one definition (:class:`VideoOptions`, :class:`ImageOptions`; ``fervid-train``'s
``TrainConfig`` is built the same way).

This module imports no numpy or torch: the command line starts with it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click


def setting(
    default, help: str, *, flags: tuple[str, ...] | None = None, unit: str = "", **click_kwargs
):
    """A setting: ``default`` (``list`` for a repeatable option), the help text, the option
    ``flags`` (default ``--field-name``), its ``unit`` (for messages) and any other
    ``click.option`` argument (``type``, ``multiple``, ``is_flag``, ``metavar``)."""
    meta = {"help": help, "flags": flags, "unit": unit, "click": click_kwargs}
    if default is list:
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


def option_flag(f: dataclasses.Field) -> str:
    """The command-line name of a setting (``--detect-size`` for ``detect_size``)."""
    flags = f.metadata.get("flags")
    return flags[0].split("/")[0] if flags else "--" + f.name.replace("_", "-")


def check_fields(obj: Any, *, name_of=option_flag) -> None:
    """Check every value of a settings dataclass against its option's type: a ValueError whose
    message names the option (``name_of(field)``). Floats must be finite numbers (a range
    check lets NaN through)."""
    for f in dataclasses.fields(obj):
        kind = f.metadata.get("click", {}).get("type")
        value = getattr(obj, f.name)
        if kind is None or value is None or isinstance(kind, click.Path):
            continue  # paths are checked where they are opened, with their own message
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                unit = f" of {f.metadata['unit']}" if f.metadata.get("unit") else ""
                raise ValueError(f"{name_of(f)}: must be a finite number{unit}")
            if isinstance(kind, click.ParamType):
                try:
                    kind.convert(v, None, None)
                except click.BadParameter as exc:
                    raise ValueError(f"{name_of(f)}: {exc.message}") from None
            elif kind in (int, float):
                try:
                    if kind(v) != v or isinstance(v, bool):
                        raise ValueError
                except (TypeError, ValueError, OverflowError):
                    msg = f"{name_of(f)}: {v!r} is not a valid {kind.__name__}"
                    raise ValueError(msg) from None


def click_options(cls, names: Sequence[str] | None = None, *, exclude: Sequence[str] = ()):
    """A decorator adding an option to a click command for every documented setting of the
    dataclass ``cls`` (or those in ``names``), in the order of the fields."""

    def decorate(command):
        for f in reversed(dataclasses.fields(cls)):
            if "help" not in f.metadata or f.name in exclude:
                continue
            if names is not None and f.name not in names:
                continue
            meta = f.metadata
            flags = meta["flags"] or (option_flag(f),)
            kwargs = dict(meta["click"])
            if f.default is not dataclasses.MISSING:
                kwargs.setdefault("default", f.default)
            command = click.option(*flags, f.name, help=meta["help"], **kwargs)(command)
        return command

    return decorate


def api_name(f: dataclasses.Field) -> str:
    """A setting as the API spells it (``detect_size``), for messages to library users."""
    return f.name


POSE_HELP = (
    "Measure each face's head pose (yaw, pitch, roll), eyes and mouth{} from dlib's 68 "
    "landmarks (about 1.2 ms a face; docs/face.md)."
)
POSE_FLAGS = ("--pose/--no-pose",)
LANDMARKS_HELP = (
    "Write dlib's 68 landmarks too, as columns lx0..lx67 and ly0..ly67 (pixels) after the "
    "pose (needs --pose)."
)


@dataclass(frozen=True)
class VideoOptions:
    """How a video is analysed: every setting a resumed run must share. Built from keyword
    arguments (the API), from the command line (the same fields), or for the Ray jobs; the
    values are checked when the object is made (ValueError naming the setting)."""

    batch_size: int = setting(
        16, "Frames detected and classified together.", type=click.IntRange(1, 1024)
    )
    every: int = setting(
        1, "Analyse every Nth frame (the video still gets every frame).", type=click.IntRange(1)
    )
    detect_interval: float = setting(
        1.0,
        "Search the whole frame for faces at least this often (seconds), and also on scene "
        "cuts, when something moves outside the tracked faces (at most every 0.2 s) and when a "
        "tracked face is lost; in between, only near where each face is expected. A face that "
        "appears is found within this delay at worst. 0: every analysed frame.",
        type=click.FloatRange(0),
        unit="seconds",
    )
    start: float | None = setting(None, "Start time (s).", type=click.FloatRange(0), unit="seconds")
    end: float | None = setting(
        None, "End time (s).", type=click.FloatRange(0, min_open=True), unit="seconds"
    )
    min_face_size: int = setting(
        32,
        "Smallest face to find, in pixels of the original frame (smaller faces read poorly: "
        "docs/video.md; smaller values make whole-frame searches slower).",
        type=click.IntRange(4),
    )
    detect_size: int = setting(
        960,
        "Long side (px) the detector sees on keyframes; boxes map back to full resolution; "
        "faces under 12 px at that size are not sought. 0 (full resolution) or >= 64.",
        type=click.IntRange(0),
    )
    smooth: float = setting(
        0.2,
        "Per-track smoothing of probabilities, time constant in seconds (0: each frame's own "
        "probabilities).",
        type=click.FloatRange(0),
        unit="seconds",
    )
    classify_interval: float = setting(
        0.0,
        "Classify a tracked face again only when its look or size changed, or this many "
        "seconds passed; otherwise carry its last probabilities (0: every face of every "
        "analysed frame).",
        type=click.FloatRange(0),
        unit="seconds",
    )
    reid: bool = setting(
        True,
        "Re-identify people: a face that comes back after being hidden, leaving the picture or "
        "a cut keeps its person number (the person column), by face embedding (docs/identity.md).",
        flags=("--reid/--no-reid",),
    )
    pose: bool = setting(True, POSE_HELP.format(", and speaking"), flags=POSE_FLAGS)
    landmarks: bool = setting(False, LANDMARKS_HELP, flags=("--landmarks",), is_flag=True)
    draw: str = setting(
        "boxes",
        "What the annotated video shows: boxes (with person and emotion), or pose (the boxes "
        "and an arrow from each face's centre where it points).",
        type=click.Choice(["boxes", "pose"]),
    )
    people: int | None = setting(
        None,
        "How many people appear, when known: the whole-video pass groups the tracks into at "
        "most this many people (never two seen at once). Default: as many as the faces say.",
        type=click.IntRange(1),
        metavar="N",
    )
    box_cutoff: float = 0.0
    box_beta: float = 2.0
    max_age: float = 2.0

    def __post_init__(self) -> None:
        check_fields(self, name_of=api_name)
        if self.detect_size and self.detect_size < 64:
            raise ValueError("detect_size: must be 0 or >= 64")
        _check_landmarks(self)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end: must be after start")
        if not self.max_age > 0:
            raise ValueError("max_age: must be > 0 seconds")

    def replace(self, **changes) -> VideoOptions:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ImageOptions:
    """How photos are analysed (``fervid scan``, :func:`fervid.analyze_images`)."""

    crops: bool = setting(
        False,
        "Every image is already a face crop: classify it whole, no detection.",
        is_flag=True,
    )
    min_face_size: int = setting(20, "Smallest face to find, in pixels.", type=click.IntRange(4))
    pose: bool = setting(True, POSE_HELP.format(""), flags=POSE_FLAGS)
    landmarks: bool = setting(False, LANDMARKS_HELP, flags=("--landmarks",), is_flag=True)
    detect_size: int = setting(
        1024,
        "Larger images are downscaled to this long side for detection. 0 (never) or >= 64.",
        type=click.IntRange(0),
    )

    def __post_init__(self) -> None:
        check_fields(self, name_of=api_name)
        if self.detect_size and self.detect_size < 64:
            raise ValueError("detect_size: must be 0 or >= 64")
        _check_landmarks(self)


@dataclass(frozen=True)
class EpisodeOptions:
    """How emotion episodes are found (:mod:`fervid.persons`); the defaults and why:
    docs/people.md."""

    enter: float = setting(
        0.5,
        "Episodes: an emotion's (smoothed) probability that starts one (and is the highest).",
        flags=("--episode-enter",),
        type=click.FloatRange(0, 1, min_open=True),
    )
    exit: float = setting(
        0.35,
        "Episodes: the probability under which one ends (after --max-gap).",
        flags=("--episode-exit",),
        type=click.FloatRange(0, 1, min_open=True),
    )
    min_duration: float = setting(
        0.5,
        "Episodes: the shortest kept (s).",
        flags=("--min-episode",),
        type=click.FloatRange(0),
        unit="seconds",
    )
    max_gap: float = setting(
        0.5,
        "Episodes: the longest dip under --episode-exit, or time out of sight, bridged (s).",
        type=click.FloatRange(0),
        unit="seconds",
    )
    neutral: bool = setting(
        False, "Episodes: neutral stretches too.", flags=("--neutral-episodes",), is_flag=True
    )
    max_turn: float = setting(
        0.0,
        "Episodes: leave out the frames where the face is turned more than this many degrees "
        "of yaw or pitch (as if not seen; 0: off). Needs the pose columns.",
        flags=("--episode-max-turn",),
        type=click.FloatRange(0),
    )

    def __post_init__(self) -> None:
        check_fields(self, name_of=api_name)
        if self.exit > self.enter:
            raise ValueError("exit: must not be above enter")


def _check_landmarks(options) -> None:
    if options.landmarks and not options.pose:
        raise ValueError("landmarks: the landmarks come with the pose (--no-pose leaves out both)")


def make_options(cls, options=None, **changes):
    """``options`` (an instance of ``cls``, or None for the defaults) with ``changes`` applied;
    a TypeError names a keyword that is not a setting (or options of another type), a
    ValueError a value out of its range."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unexpected option(s) for {cls.__name__}: {', '.join(unknown)}")
    if options is None:
        return cls(**changes)
    if not isinstance(options, cls):
        raise TypeError(f"options must be a {cls.__name__}, not {type(options).__name__}")
    return dataclasses.replace(options, **changes) if changes else options


def cli_message(exc: ValueError, *classes) -> str:
    """A settings error as the command line spells its options (``--detect-size: ...``)."""
    msg = str(exc)
    for cls in classes or (VideoOptions,):
        for f in dataclasses.fields(cls):
            if msg.startswith(f.name + ":"):
                return option_flag(f) + msg[len(f.name) :]
    return msg
