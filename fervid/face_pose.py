"""What a face is doing besides its emotion, from 68 landmarks: where the head points (yaw,
pitch, roll in degrees), whether the eyes are open and the mouth is open (0-1)
(:func:`measure`); the landmarks come from dlib's 68-point shape predictor
(:class:`Landmarker`, its model in the ``face-recognition-models`` package: trained on iBUG
300-W, whose terms allow research use only). Whether a face is speaking is read over time
from its mouth (:class:`SpeakingMeter`, per track).

Signs, as a viewer of the picture sees them: ``yaw`` > 0 when the face turns toward the
picture's right, ``pitch`` > 0 when it looks up, ``roll`` > 0 when the head tilts
counter-clockwise on the picture. A mirrored picture gives the opposite yaw and roll; a
picture turned counter-clockwise by 20 degrees gives a roll 20 degrees higher.
"""

from __future__ import annotations

import functools
import math
import os
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from .faces import Faces

#: The measures, in the order of the rows' columns.
MEASURES = ("yaw", "pitch", "roll", "eyes_open", "mouth_open")
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

#: A generic face in 3D, in millimetres and in the camera's axes for a face looking into it
#: (x to the picture's right, y down, z away from the camera), at six of the 68 landmarks:
#: the nose tip, the chin, the eyes' outer corners, the mouth's corners (the model of
#: Mallick's "Head pose estimation using OpenCV and Dlib", scaled to a face about 90 mm
#: between the eyes' outer corners).
MODEL_POINTS = np.array(
    [
        (0.0, 0.0, 0.0),  # 30 nose tip
        (0.0, 63.6, 12.5),  # 8 chin
        (-43.3, -32.7, 26.0),  # 36 the outer corner of the eye on the picture's left
        (43.3, -32.7, 26.0),  # 45 the outer corner of the eye on the picture's right
        (-28.9, 28.9, 24.1),  # 48 the mouth's corner on the picture's left
        (28.9, 28.9, 24.1),  # 54 the mouth's corner on the picture's right
    ]
)
MODEL_INDEX = [30, 8, 36, 45, 48, 54]
#: Eye aspect ratio (Soukupova and Cech 2016) mapped to 0-1: at or under CLOSED_EAR a shut
#: eye, at or over OPEN_EAR a wide-open one.
CLOSED_EAR, OPEN_EAR = 0.12, 0.28
#: The inner lips' gap over the mouth's width mapped to 0-1: at WIDE_MOUTH wide open.
WIDE_MOUTH = 0.5


#: A face is looking away when turned more than this many degrees of yaw, or of pitch.
AWAY_YAW, AWAY_PITCH = 30.0, 25.0


def looking_away(yaw, pitch) -> np.ndarray:
    """Whether faces look away (beyond :data:`AWAY_YAW` or :data:`AWAY_PITCH`); False where
    not measured."""
    yaw, pitch = np.abs(np.asarray(yaw, np.float64)), np.abs(np.asarray(pitch, np.float64))
    return (np.nan_to_num(yaw, nan=0.0) > AWAY_YAW) | (np.nan_to_num(pitch, nan=0.0) > AWAY_PITCH)


@functools.lru_cache(maxsize=1)
def _predictor(folder: str):
    import dlib  # the prebuilt dlib-bin wheel, as for re-identification

    return dlib, dlib.shape_predictor(os.path.join(folder, PREDICTOR_FILE))


class Landmarker:
    """dlib's 68 landmarks of faces in their detector boxes: ``landmarks(image, boxes)`` ->
    (N, 68, 2) pixels. The model is read once per process (about 0.8 s)."""

    def __init__(self) -> None:
        from ._dlib_resnet import INSTALL_HINT, model_dir

        try:
            self._dlib, self._shape = _predictor(model_dir())
        except (ImportError, FileNotFoundError, RuntimeError) as exc:
            raise RuntimeError(f"{INSTALL_HINT} ({exc})") from None

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The 68 points of each face in ``boxes`` (x1, y1, x2, y2) of an RGB image."""
        dlib = self._dlib
        image = np.ascontiguousarray(image, dtype=np.uint8)
        out = np.zeros((len(boxes), 68, 2), np.float32)
        for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
            rect = dlib.rectangle(int(x1), int(y1), int(math.ceil(x2)), int(math.ceil(y2)))
            shape = self._shape(image, rect)
            out[k] = [(p.x, p.y) for p in shape.parts()]
        return out

    def read(self, image: np.ndarray, faces: Faces) -> tuple[np.ndarray, np.ndarray]:
        """The landmarks (N, 68, 2) and :func:`measure` s (N, 5) of the faces of an RGB
        image."""
        points = self.landmarks(image, faces.boxes)
        return points, measure(points, image.shape[:2])


def measure(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, 5) float32: yaw, pitch, roll (degrees), eyes_open, mouth_open (0-1) of faces with
    68 ``points`` each (N, 68, 2), in a picture of ``size`` (height, width)."""
    pts = np.asarray(points, np.float64).reshape(-1, 68, 2)
    out = np.zeros((len(pts), len(MEASURES)), np.float32)
    for k, p in enumerate(pts):
        out[k, :3] = head_pose(p, size)
        out[k, 3] = eyes_open(p)
        out[k, 4] = mouth_open(p)
    return out


def head_pose(p: np.ndarray, size: tuple[int, int]) -> tuple[float, float, float]:
    """Yaw and pitch from the generic 3D face fitted to six landmarks (``solvePnP``, a
    camera of focal length the picture's width), roll from the line between the eyes'
    centres; degrees, signs as the module says."""
    h, w = size
    camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
    points = p[MODEL_INDEX].astype(np.float64)
    ok, rvec, _ = cv2.solvePnP(MODEL_POINTS, points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    yaw = pitch = float("nan")
    if ok:
        front = cv2.Rodrigues(rvec)[0] @ np.array([0.0, 0.0, -1.0])  # toward the camera
        yaw = math.degrees(math.atan2(front[0], -front[2]))
        pitch = math.degrees(math.atan2(-front[1], math.hypot(front[0], front[2])))
    left, right = p[36:42].mean(0), p[42:48].mean(0)
    roll = math.degrees(math.atan2(-(right[1] - left[1]), right[0] - left[0]))
    return yaw, pitch, roll


def _ear(eye: np.ndarray) -> float:
    """Eye aspect ratio: the lids' two gaps over the eye's width."""
    gaps = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    return float(gaps / (2 * max(np.linalg.norm(eye[0] - eye[3]), 1e-6)))


def eyes_open(p: np.ndarray) -> float:
    """0 (both shut) to 1 (wide open): the two eyes' mean aspect ratio, mapped."""
    ear = (_ear(p[36:42]) + _ear(p[42:48])) / 2
    return float(np.clip((ear - CLOSED_EAR) / (OPEN_EAR - CLOSED_EAR), 0.0, 1.0))


def mouth_open(p: np.ndarray) -> float:
    """0 (lips together) to 1 (wide open): the inner lips' mean gap over the mouth's width."""
    gap = np.mean([np.linalg.norm(p[a] - p[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    width = max(float(np.linalg.norm(p[48] - p[54])), 1e-6)
    return float(np.clip(gap / width / WIDE_MOUTH, 0.0, 1.0))


@dataclass
class SpeakingMeter:
    """Whether each track's face is speaking: its mouth opening and closing over the last
    ``window`` seconds (the spread of ``mouth_open``, standard deviation, at least
    ``spread``, with the mouth open at least ``opened`` at some point). ``update(tracks,
    mouth, t)`` -> 0/1 per face (NaN until a track has ``min_seen`` seconds of it; by
    default a track's first frame already reads 0: nothing seen moving yet)."""

    window: float = 1.0
    spread: float = 0.06
    opened: float = 0.15
    min_seen: float = 0.0
    _seen: dict[int, deque] = field(default_factory=dict, repr=False)

    def update(self, tracks, mouth, t: float) -> np.ndarray:
        out = np.full(len(tracks), np.nan, np.float32)
        for k, (tid, m) in enumerate(zip(tracks, mouth)):
            seen = self._seen.setdefault(int(tid), deque())
            seen.append((t, float(m)))
            while seen and seen[0][0] < t - self.window - 1e-9:
                seen.popleft()
            if t - seen[0][0] + 1e-9 < self.min_seen:
                continue
            values = np.array([v for _, v in seen])
            out[k] = float(values.std() >= self.spread and values.max() >= self.opened)
        return out

    def state_dict(self) -> dict:
        return {str(t): list(map(list, seen)) for t, seen in self._seen.items()}

    def load_state_dict(self, d: dict) -> None:
        self._seen = {int(t): deque(tuple(x) for x in seen) for t, seen in d.items()}

    def forget(self, live: set[int]) -> None:
        """Drop the tracks no longer followed."""
        for tid in [t for t in self._seen if t not in live]:
            del self._seen[tid]
