"""What the face is doing besides its emotion (issue #42): head pose, eyes, mouth and speaking
from dlib's 68 landmarks, on a real photo (the astronaut, mirrored and turned) and in real
encoded video; tables written before these columns still read."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fervid.cli import cli
from fervid.detect import FaceDetector
from fervid.face_pose import MEASURES, Landmarker, SpeakingMeter, eyes_open, mouth_open
from fervid.rows import MEASURE_COLUMNS

from conftest import ROOT, copy_run


@pytest.fixture(scope="module")
def astronaut_measures():
    from skimage import data

    detector, landmarker = FaceDetector(device="cpu"), Landmarker()

    def of(image):
        faces = detector.detect([np.ascontiguousarray(image)])[0]
        assert len(faces) >= 1
        k = int(np.argmax(faces.boxes[:, 2] - faces.boxes[:, 0]))
        return dict(zip(MEASURES, landmarker.read(image, faces[[k]])[1][0]))

    return of, data.astronaut()


def _turned(image, degrees):
    """The picture turned counter-clockwise by ``degrees`` about its centre."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def test_a_mirrored_photo_gives_the_opposite_yaw_and_roll(astronaut_measures):
    of, image = astronaut_measures
    a, b = of(image), of(image[:, ::-1])
    assert abs(a["yaw"] + b["yaw"]) < 5 and abs(a["roll"] + b["roll"]) < 5
    assert abs(a["yaw"]) > 5  # she is turned a little: the sign is there to flip


@pytest.mark.parametrize("degrees", [20, -20])
def test_a_photo_turned_by_20_degrees_turns_the_roll_by_20(astronaut_measures, degrees):
    of, image = astronaut_measures
    assert of(_turned(image, degrees))["roll"] - of(image)["roll"] == pytest.approx(degrees, abs=5)


def _face(eye_gap: float, mouth_gap: float) -> np.ndarray:
    """68 points of a frontal face 100 px wide, the eyelids ``eye_gap`` and the inner lips
    ``mouth_gap`` pixels apart."""
    p = np.zeros((68, 2))
    for first, cx in ((36, 30.0), (42, 70.0)):  # eye corners 20 px apart, lids above/below
        p[first : first + 6] = [(cx - 10, 40), (cx - 4, 40 - eye_gap / 2),
                                (cx + 4, 40 - eye_gap / 2), (cx + 10, 40),
                                (cx + 4, 40 + eye_gap / 2), (cx - 4, 40 + eye_gap / 2)]  # fmt: skip
    p[48], p[54] = (30, 80), (70, 80)
    for top, bottom, x in ((61, 67, 42), (62, 66, 50), (63, 65, 58)):
        p[top], p[bottom] = (x, 80 - mouth_gap / 2), (x, 80 + mouth_gap / 2)
    return p


def test_shut_eyes_and_a_closed_mouth_read_0_open_ones_high():
    assert eyes_open(_face(0.5, 0)) == 0 and eyes_open(_face(7, 0)) == 1
    assert mouth_open(_face(6, 0)) == 0 and mouth_open(_face(6, 15)) > 0.7
    assert mouth_open(_face(6, 4)) < mouth_open(_face(6, 8)) < mouth_open(_face(6, 12))


def test_a_mouth_opening_and_closing_is_speaking_a_still_one_is_not():
    meter, t = SpeakingMeter(), np.arange(0, 2, 0.04)
    talking = 0.25 + 0.2 * np.sin(2 * np.pi * 4 * t)  # 4 syllables a second
    smiling = np.full_like(t, 0.4)  # open, still
    out = [meter.update([1, 2, 3], [a, b, 0.0], s) for s, a, b in zip(t, talking, smiling)]
    out = np.array(out)
    assert (out[t > 1.0, 0] == 1).all() and (out[:, 1] == 0).all() and (out[:, 2] == 0).all()


@pytest.fixture(scope="module")
def sample(sample_annotated):
    return sample_annotated


def test_every_video_row_with_a_face_has_its_pose_eyes_mouth_and_speaking(sample):
    rows = pd.read_csv(sample / "two.fervid.csv")
    header = list(rows.columns)
    assert header[header.index("y2") + 1 : header.index("score")] == [*MEASURE_COLUMNS, "speaking"]
    faces = rows.dropna(subset=["face"])
    assert len(faces) and faces[[*MEASURE_COLUMNS, "speaking"]].notna().all().all()
    assert faces.yaw.abs().max() < 90 and faces.roll.abs().max() < 45  # two portraits
    assert faces.eyes_open.between(0, 1).all() and faces.mouth_open.between(0, 1).all()
    assert set(faces.speaking.unique()) <= {0, 1}


def test_a_table_written_before_the_measures_still_reports_and_regroups(sample, tmp_path):
    copy_run(sample, tmp_path)
    table = tmp_path / "two.fervid.csv"
    old = pd.read_csv(table, keep_default_na=False, dtype=str)
    old.drop(columns=[*MEASURE_COLUMNS, "speaking"]).to_csv(table, index=False)
    r = CliRunner().invoke(cli, ["-q", "report", str(table), "--overwrite"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["-q", "regroup", str(table), "--people", "2"])
    assert r.exit_code == 0, r.output
    after = pd.read_csv(table)
    assert "yaw" not in after.columns and after.person.nunique() == 2
    assert len(pd.read_csv(tmp_path / "two.fervid.people.csv")) == 2


def test_photo_rows_have_the_measures_and_no_pose_leaves_them_empty(tmp_path):
    from skimage import data

    cv2.imwrite(str(tmp_path / "a.jpg"), data.astronaut()[..., ::-1])
    for flag, filled in (("--pose", True), ("--no-pose", False)):
        out = tmp_path / f"{flag}.csv"
        r = CliRunner().invoke(cli, ["-q", "scan", str(tmp_path), "--csv", str(out), flag])
        assert r.exit_code == 0, r.output
        rows = pd.read_csv(out).dropna(subset=["face"])
        assert len(rows) >= 1 and "speaking" not in rows.columns
        assert rows[list(MEASURE_COLUMNS)].notna().all().all() == filled
        assert rows[list(MEASURE_COLUMNS)].isna().all().all() != filled


def _posed_table(yaw: list[float], talk: list[int], happy: float = 0.9, step: float = 0.04):
    """A video table of one person, one row per analysed frame: happiness ``happy``, the
    given yaw (pitch 0) and speaking."""
    from fervid.rows import RowSchema

    classes = ("happiness", "neutral")
    schema = RowSchema("video", classes)
    rows = []
    for k, (y, s) in enumerate(zip(yaw, talk)):
        values = {"frame": k, "time_s": round(k * step, 3), "face": 0, "person": 0,
                  "person_confidence": 1.0, "x1": 10, "y1": 10, "x2": 60, "y2": 70, "yaw": y,
                  "pitch": 0.0, "roll": 0.0, "eyes_open": 1.0, "mouth_open": 0.2,
                  "speaking": s, "score": 0.99, "happiness": happy, "neutral": 1 - happy,
                  "emotion": "happiness", "confidence": happy}  # fmt: skip
        rows.append([values[c] for c in schema.columns])
    return pd.DataFrame(rows, columns=schema.columns)


def test_the_people_table_gives_the_share_looking_away_and_speaking():
    from fervid.persons import people

    table = _posed_table([0.0] * 30 + [45.0] * 10, [1] * 10 + [0] * 30)
    row = people(table, step=0.04).iloc[0]
    assert row.share_looking_away == pytest.approx(0.25) and row.share_speaking == 0.25


def test_episodes_can_leave_out_the_frames_turned_away():
    from fervid.options import EpisodeOptions
    from fervid.persons import episodes

    table = _posed_table([0.0] * 25 + [60.0] * 25 + [0.0] * 25, [0] * 75)
    whole = episodes(table, step=0.04)
    assert len(whole) == 1 and whole.iloc[0].duration_s == pytest.approx(3.0)
    parted = episodes(table, step=0.04, options=EpisodeOptions(max_turn=40))
    assert len(parted) == 2  # the turned second is a gap longer than the 0.5 s bridged
    assert parted.duration_s.tolist() == pytest.approx([1.0, 1.0])


def test_the_page_marks_looking_away_and_speaking_under_the_timelines(sample, tmp_path):
    from test_people import ARGS, _browser

    sync, chromium = _browser()
    copy_run(sample, tmp_path)
    table = tmp_path / "two.fervid.csv"
    df = pd.read_csv(table, keep_default_na=False, dtype=str)
    t = df["time_s"].astype(float)
    df.loc[(df.person == "0") & (t >= 1) & (t < 2), "yaw"] = "50.0"  # P0 looks aside 1-2 s
    df.loc[(df.person == "1") & (t >= 3) & (t < 5), "speaking"] = "1"  # P1 speaks 3-5 s
    df.to_csv(table, index=False)
    r = CliRunner().invoke(cli, ["-q", "report", str(table), "--overwrite"])
    assert r.exit_code == 0, r.output
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto((tmp_path / "two.fervid.html").as_uri())
        tab.wait_for_selector(".timeline .mk", state="attached", timeout=20000)
        away = tab.locator('.timeline[data-person="0"] .mk.away')
        talk = tab.locator('.timeline[data-person="1"] .mk.speaking')
        assert away.count() >= 1 and talk.count() >= 1
        assert "1.00-2.00 s" in away.first.get_attribute("title")
        assert "3.00-5.00 s" in talk.first.get_attribute("title")
        legend = tab.inner_text(".legend")
        assert "looking away" in legend and "speaking" in legend
        tab.screenshot(path=str(tmp_path / "marks.png"), full_page=True)
        browser.close()


def test_the_pose_arrow_points_where_the_face_turns():
    from fervid.draw import annotate_pose
    from fervid.faces import Faces

    scene = np.full((200, 200, 3), 128, np.uint8)
    box = [[70, 70, 130, 130]]
    for yaw, pitch, side in ((40, 0, "right"), (-40, 0, "left"), (0, 40, "up")):
        faces = Faces(box, [0.9], measures=[[yaw, pitch, 0, 1, 0]])
        drawn = np.abs(annotate_pose(scene, faces).astype(int) - 128).sum(2) > 0
        ys, xs = np.nonzero(drawn)
        if side == "right":
            assert xs.max() > 120 and xs.min() >= 95
        elif side == "left":
            assert xs.min() < 80 and xs.max() <= 105
        else:
            assert ys.min() < 80 and ys.max() <= 105
    unmeasured = Faces(box, [0.9])  # no pose: nothing drawn
    assert (annotate_pose(scene, unmeasured) == scene).all()


def test_draw_pose_puts_the_arrows_on_the_annotated_video(tmp_path):
    from fervid.video import FrameReader

    out = {}
    for draw in ("boxes", "pose"):
        video = shutil.copy(ROOT / "samples" / "two_people.mp4", tmp_path / f"{draw}.mp4")
        r = CliRunner().invoke(cli, ["-q", "annotate", str(video), "--draw", draw, "--end", "0.5"])
        assert r.exit_code == 0, r.output
        out[draw] = next(iter(FrameReader(tmp_path / f"{draw}.fervid.mp4"))).image.astype(int)
    rows = pd.read_csv(tmp_path / "pose.fervid.csv").dropna(subset=["face"])
    x1, y1, x2, y2 = rows.iloc[0][["x1", "y1", "x2", "y2"]]
    cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
    near = np.abs(out["pose"] - out["boxes"])[cy - 8 : cy + 8, cx - 8 : cx + 8].sum(2)
    assert (near > 60).sum() >= 10  # the arrow starts at the face's centre


def test_landmarks_as_columns_in_video_and_photo_tables(tmp_path):
    import fervid
    from fervid.rows import LANDMARK_COLUMNS

    video = shutil.copy(ROOT / "samples" / "two_people.mp4", tmp_path / "two.mp4")
    r = CliRunner().invoke(cli, ["-q", "annotate", str(video), "--landmarks", "--end", "1"])
    assert r.exit_code == 0, r.output
    table = tmp_path / "two.fervid.csv"
    rows = pd.read_csv(table).dropna(subset=["face"])
    header = list(rows.columns)
    first = header.index("speaking") + 1
    assert header[first : first + 136] == list(LANDMARK_COLUMNS)
    assert rows[list(LANDMARK_COLUMNS)].notna().all().all()
    inside = rows.lx30.between(rows.x1, rows.x2) & rows.ly30.between(rows.y1, rows.y2)
    assert inside.all()  # the nose tip (point 30) in every face's box
    for args in (["report", str(table), "--overwrite"], ["regroup", str(table), "--people", "2"]):
        r = CliRunner().invoke(cli, ["-q", *args])
        assert r.exit_code == 0, r.output
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), data.astronaut()[..., ::-1])
    df = fervid.analyze_images(photos, landmarks=True).dropna(subset=["face"])
    assert len(df) >= 1 and df[list(LANDMARK_COLUMNS)].notna().all().all()
    r = CliRunner().invoke(cli, ["-q", "annotate", str(video), "--landmarks", "--no-pose"])
    assert r.exit_code == 2 and "the landmarks come with the pose" in r.output
