from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from fervid.checkpoint import CheckpointError, CropPolicy, load_checkpoint
from fervid.classify import DEFAULT_MODEL, crop_box
from fervid.detect import FaceDetector
from fervid.draw import annotate
from fervid.emotions import COLORS
from fervid.faces import Faces
from fervid.images import IMAGE_EXTS, ImageError, load_image, walk_entries
from fervid.track import FaceTracker, OneEuro, ProbSmoother, iou_matrix

from conftest import samples


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(device="cpu")


def test_detects_the_astronaut_face(detector, portraits):
    faces = detector.detect([portraits[0]])[0]
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.boxes[0]
    # Eileen Collins' face sits around x 160-260, y 60-190 in the 512x512 photo
    assert 140 < (x1 + x2) / 2 < 260 and 70 < (y1 + y2) / 2 < 170, faces.boxes
    assert faces.scores[0] > 0.95


def test_no_face_is_an_empty_result(detector):
    blank = np.full((240, 320, 3), 128, np.uint8)
    faces = detector.detect([blank, blank])
    assert [len(f) for f in faces] == [0, 0]
    assert faces[0].boxes.shape == (0, 4) and faces[0].scores.shape == (0,)


def test_detect_size_maps_boxes_back(portraits):
    big = np.ascontiguousarray(np.kron(portraits[0], np.ones((3, 3, 1), np.uint8)))  # 1536 px
    small = FaceDetector(device="cpu", detect_size=512).detect([big])[0]
    full = FaceDetector(device="cpu", detect_size=0).detect([big])[0]
    assert len(small) == len(full) == 1
    assert iou_matrix(small.boxes, full.boxes)[0, 0] > 0.8


def test_faces_validates_shapes():
    with pytest.raises(ValueError):
        Faces(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError):
        Faces(np.zeros((1, 4)), np.zeros(1), np.zeros((1, 3)), classes=("a", "b"))
    e = Faces.empty(("a", "b"))
    assert len(e) == 0 and e.probs.shape == (0, 2) and e.emotions == []


def test_crop_box_replicates_edges_and_follows_policy():
    img = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    c = crop_box(img, [-10, -10, 30, 30], CropPolicy(scale=1.0))
    assert c.shape == (40, 40, 3)
    assert (c[0, 0] == img[0, 0]).all()  # replicated corner
    wide = crop_box(img, [40, 40, 60, 60], CropPolicy(scale=1.5))
    assert wide.shape == (30, 30, 3)
    down = crop_box(img, [40, 40, 60, 60], CropPolicy(scale=1.0, shift_y=0.5))
    assert (down == img[50:70, 40:60]).all()


def test_bundled_model_is_a_valid_checkpoint():
    assert DEFAULT_MODEL.stat().st_size < 25 * 2**20
    _, meta = load_checkpoint(DEFAULT_MODEL)
    assert len(meta.classes) == 7 and meta.dataset.startswith("fer2013")


def test_model_probabilities(model, portraits):
    faces = model.classify(portraits, [Faces([[150, 50, 270, 200]], [1.0]), Faces.empty()])
    assert faces[0].probs.shape == (1, 7) and abs(faces[0].probs.sum() - 1) < 1e-4
    assert len(faces[1]) == 0 and faces[1].classes == model.classes


@pytest.mark.parametrize("bad", [b"", b"garbage" * 10, b"PK\x03\x04" + b"0" * 60])
def test_corrupt_checkpoints_are_refused(tmp_path, bad):
    p = tmp_path / "m.safetensors"
    p.write_bytes(bad)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_foreign_files_are_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    p = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="not a fervid checkpoint"):
        load_checkpoint(p)
    q = tmp_path / "evil.pt"
    torch.save({"model": {}, "meta": {}, "obj": ImageError("x")}, q)
    with pytest.raises(CheckpointError):  # weights_only refuses arbitrary objects
        load_checkpoint(q)


def test_walk_entries_any_case_and_symlink_loops(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.JPG")
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "b" / "y.Png")
    (tmp_path / "a" / "notes.txt").write_text("hi")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")
    found = [(p.relative_to(tmp_path).as_posix(), r) for p, r in walk_entries(tmp_path, IMAGE_EXTS)]
    assert found == [("a/x.JPG", ""), ("a/b/y.Png", "")]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_load_image_modes(tmp_path, mode, portraits):
    src = Image.fromarray(portraits[0][:64, :48])
    if mode == "I;16":
        arr = np.asarray(src.convert("L"), np.uint16) * 257
        im = Image.fromarray(arr)
        path = tmp_path / "x.png"
    else:
        im = src.convert(mode)
        path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(path)
    out = load_image(path)
    assert out.shape == (64, 48, 3) and out.dtype == np.uint8
    if mode == "I;16":
        assert (
            abs(int(out[..., 0].astype(int).mean()) - int(np.asarray(src.convert("L")).mean())) <= 1
        )


def test_exif_orientation_applied(tmp_path, portraits):
    im = Image.fromarray(portraits[0][:, :300])  # 512 high, 300 wide
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").shape == (300, 512, 3)


@pytest.mark.parametrize("content", [b"", b"not an image", b"\xff\xd8\xff\xe0" + b"\0" * 20])
def test_unreadable_images_raise_one_line(tmp_path, content):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert "\n" not in str(e.value)


def test_tracker_keeps_ids_for_moving_faces():
    t = FaceTracker(max_age=0.15)
    ids = []
    for step in range(6):
        boxes = [[10 + 8 * step, 10, 60 + 8 * step, 60], [200 - 8 * step, 20, 250 - 8 * step, 70]]
        ids.append(t.update(Faces(boxes, [1, 1]), step * 0.04).track_ids.tolist())
    assert all(i == ids[0] for i in ids) and len(set(ids[0])) == 2
    # a face that vanished longer than max_age comes back with a new id
    for k in range(6, 11):
        t.update(Faces.empty(), k * 0.04)
    assert t.update(Faces([[10, 10, 60, 60]], [1]), 0.44).track_ids[0] not in ids[0]


def test_tracker_follows_a_fast_face_by_its_velocity():
    # 30 px faces moving 20 px per frame (IoU 0.2 frame to frame): matched by prediction
    t = FaceTracker()
    ids = set()
    for k in range(10):
        x = 20 + 20 * k
        out = t.update(Faces([[x, 40, x + 30, 70], [400, 40, 430, 70]], [1, 1]), k * 0.04)
        ids.add(tuple(out.track_ids))
        _, pred, _ = t.predict((k + 1) * 0.04)
    assert ids == {(0, 1)}
    assert abs(pred[0, 0] - (20 + 20 * 10)) < 3  # the next box is where the face will be


def test_tracker_state_round_trips_as_json():
    import json

    t = FaceTracker(smooth_cutoff=1.0)
    for k in range(3):
        t.update(Faces([[10 + 5 * k, 10, 50 + 5 * k, 50]], [1]), k * 0.04)
    u = FaceTracker(smooth_cutoff=1.0)
    u.load_state_dict(json.loads(json.dumps(t.state_dict())))
    a = t.update(Faces([[26, 10, 66, 50]], [1]), 0.12)
    b = u.update(Faces([[26, 10, 66, 50]], [1]), 0.12)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.track_ids, b.track_ids)


def test_one_euro_filter_holds_a_still_box_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    f = OneEuro(min_cutoff=1.0, beta=2.0)
    still = [f(np.array([100, 100, 50, 50]) + rng.normal(0, 2, 4), k * 0.04) for k in range(50)]
    assert np.std([s[0] for s in still[10:]]) < 1.0  # input jitter: 2 px
    g = OneEuro(min_cutoff=1.0, beta=2.0)
    moving = [g(np.array([100 + 10 * k, 100, 50, 50]), k * 0.04) for k in range(30)]
    assert abs(moving[-1][0] - (100 + 290)) < 15  # lags under a third of a face


def test_smoother_averages_over_time():
    s = ProbSmoother(tau=1.0)
    f = Faces([[0, 0, 10, 10]], [1], [[1.0, 0.0]], [0], ("a", "b"))
    s.update(f, 0.0)
    g = s.update(Faces([[0, 0, 10, 10]], [1], [[0.0, 1.0]], [0], ("a", "b")), 0.1)
    assert 0.85 < g.probs[0, 0] < 0.95 and abs(g.probs.sum() - 1) < 1e-6


def test_annotate_draws_and_keeps_input():
    scene = np.zeros((100, 100, 3), np.uint8)
    faces = Faces([[20, 30, 60, 80]], [0.99], [[0.1, 0.9]], [3], ("anger", "happiness"))
    out = annotate(scene, faces)
    assert scene.sum() == 0 and out.sum() > 0
    assert tuple(out[55, 20]) == COLORS["happiness"]  # the box edge in happiness's colour


def test_detect_near_follows_known_faces(detector, portraits):
    frame = samples.scene(0.0, 960, 540, portraits)
    moved = samples.scene(0.2, 960, 540, portraits)
    full = detector.detect([frame, moved])
    near = detector.detect_near([moved, moved], [full[0].boxes, np.zeros((0, 4))])
    assert len(near[0]) == 2 and len(near[1]) == 0
    assert (iou_matrix(near[0].boxes, full[1].boxes).max(1) > 0.7).all()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux only")
def test_release_free_memory_returns_freed_heap():
    from fervid._malloc import _libc, release_free_memory

    if _libc is None:
        pytest.skip("no glibc")

    def rss_mb():
        with open("/proc/self/status") as fh:
            return next(int(x.split()[1]) for x in fh if x.startswith("VmRSS")) / 1024

    # many small blocks live on the heap (not mmap); keep the last one so the heap's top
    # cannot shrink by itself, free the rest
    blocks = [np.ones(64 * 1024, np.uint8) for _ in range(4000)]
    keep = blocks[-1]
    del blocks
    before = rss_mb()
    release_free_memory()
    assert rss_mb() < before - 100, (before, rss_mb())
    assert keep[0] == 1


@pytest.mark.slow
def test_inference_never_imports_training():
    code = (
        "import sys, fervid, fervid.api, fervid.cli, fervid.pipeline\n"
        "m = fervid.load_model(device='cpu')\n"
        "assert not [k for k in sys.modules if k.startswith('fervid.train')], sys.modules"
    )
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", code], check=True)
