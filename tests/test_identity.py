"""Re-identification: the embedding on real faces, the whole-video grouping, and persons in
real encoded videos (people leaving and coming back as another photo of themselves)."""

from __future__ import annotations

import functools
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

import fervid
from fervid.faces import Faces
from fervid.identity.distance import LOOSE, THRESHOLD, cohort_scale, same_probability
from fervid.identity.embedder import FaceEmbedder
from fervid.identity.grouping import cluster_tracks
from fervid.identity.tracker import PersonTracker

from conftest import SHARED, samples


@pytest.fixture(scope="module")
def embedder():
    return FaceEmbedder()


def _embed(embedder, img, box):
    return embedder.embed(img, np.array([box], np.float32))[0]


def test_the_same_person_in_another_photo_is_near_another_person_far(embedder):
    a = _embed(embedder, samples.astronaut(), samples.PORTRAIT_FACES[0])
    a2 = _embed(embedder, samples.astronaut_again(), samples.PORTRAIT_FACES[2])
    g = _embed(embedder, samples.grace_hopper(), samples.PORTRAIT_FACES[1])
    assert a.shape == (128,) and np.isfinite(a).all()
    assert np.linalg.norm(a - a2) < THRESHOLD < np.linalg.norm(a - g)


def test_the_pytorch_network_gives_dlibs_own_descriptors(embedder):
    """The port (fervid._dlib_resnet) against dlib's C++ network on the same aligned faces:
    real faces, a face in shadow, a grey one, batched together."""
    import os

    import dlib

    from fervid._dlib_resnet import DESCRIPTOR_FILE
    from fervid._dlib_resnet import model_dir as _model_dir

    boxes = np.array([samples.PORTRAIT_FACES[0]], np.float32)
    chips = embedder.chips(samples.astronaut(), boxes)
    chips += embedder.chips(samples.grace_hopper(), np.array([samples.PORTRAIT_FACES[1]]))
    chips += [(chips[0] * 0.3).astype(np.uint8), np.repeat(chips[1].mean(2, keepdims=True), 3, 2)]
    chips = [np.ascontiguousarray(c, np.uint8) for c in chips]
    ours = embedder.embed_chips(chips)
    net = dlib.face_recognition_model_v1(os.path.join(_model_dir(), DESCRIPTOR_FILE))
    theirs = np.array([np.asarray(v) for v in net.compute_face_descriptor(chips)], np.float32)
    assert ours.shape == (4, 128)
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.linalg.norm(ours[0] - ours[1]) > 0.5  # two people, far apart


def test_a_file_that_is_not_the_network_is_refused(tmp_path):
    from fervid._dlib_resnet import DlibFaceNet

    bad = tmp_path / "net.dat"
    bad.write_bytes(b"\x01\x02not a network" * 10)
    with pytest.raises(ValueError, match="net.dat: not dlib's face-recognition network"):
        DlibFaceNet.from_file(bad)


@pytest.mark.skipif(not (SHARED / "lfw-identities").is_dir(), reason="no shared LFW photos")
def test_real_photos_of_one_person_match_and_of_others_do_not(embedder):
    from fervid.detect import FaceDetector
    from fervid.images import load_image

    det = FaceDetector(device="cpu", min_face_size=40)
    people = sorted(p for p in (SHARED / "lfw-identities").iterdir() if p.is_dir())[:12]
    vecs = {}
    for person in people:
        for photo in sorted(person.glob("*.jpg"))[:2]:
            img = load_image(photo)
            faces = det.detect([img])[0]
            if len(faces):
                vecs.setdefault(person.name, []).append(_embed(embedder, img, faces.boxes[0]))
    same = [np.linalg.norm(v[0] - v[1]) for v in vecs.values() if len(v) == 2]
    firsts = [v[0] for v in vecs.values()]
    diff = [np.linalg.norm(a - b) for i, a in enumerate(firsts) for b in firsts[i + 1 :]]
    assert np.mean(np.array(same) < THRESHOLD) >= 0.8
    assert np.mean(np.array(diff) < THRESHOLD) <= 0.02


def _summary(tracks: dict, cooccur=()) -> dict:
    return {
        "tracks": {
            str(t): {"first_t": f, "last_t": f + 1, "person": t, "samples": s, "next_t": 0}
            for t, (f, s) in tracks.items()
        },
        "cooccur": [list(p) for p in cooccur],
        "next_person": len(tracks),
    }


def _vec(seed: int, noise: float = 0.0, rng_seed: int = 0) -> list[float]:
    base = np.random.default_rng(seed).normal(0, 0.09, 128)
    return list(base + np.random.default_rng(rng_seed).normal(0, noise, 128))


def test_tracks_of_one_person_become_one_person_numbered_by_first_appearance():
    summary = _summary(
        {
            0: (5.0, [_vec(1)]),  # person B, seen first at 5 s
            1: (0.0, [_vec(2)]),  # person A
            2: (9.0, [_vec(2, 0.01, 3)]),  # A again
            3: (12.0, [_vec(1, 0.01, 4)]),  # B again
        }
    )
    persons = cluster_tracks(summary)
    assert persons[1][0] == persons[2][0] == 0 and persons[0][0] == persons[3][0] == 1
    assert all(c > 0.5 for _, c in persons.values())


def test_a_track_joined_on_a_weak_match_reads_low():
    """Average linkage joins a track near one of a person's tracks and far from the other;
    its confidence (P(same) at the upper quartile of its distances) says so, the two close
    tracks' does not fall as far."""
    a = np.asarray(_vec(21))
    b, c = _at(a, 0.25, 1), _at(a, 0.58, 2)  # c: 0.58 from a, about 0.6 from b
    other = _vec(99)  # someone else, far from all three
    tracks = {0: (0.0, [list(a)]), 1: (3.0, [b]), 2: (6.0, [c]), 3: (7.0, [other])}
    persons = cluster_tracks(_summary(tracks), cohort=False)
    assert persons[0][0] == persons[1][0] == persons[2][0] != persons[3][0]
    assert persons[2][1] < 0.8 < persons[1][1]
    from fervid.identity.distance import same_probability

    d = np.linalg.norm(np.asarray(c) - [a, b], axis=1)  # c's two distances
    assert persons[2][1] == pytest.approx(same_probability(np.quantile(d, 0.75)), abs=1e-6)


def test_tracks_seen_in_the_same_frame_are_never_one_person():
    same = [_vec(7)]
    summary = _summary({0: (0.0, same), 1: (0.0, same)}, cooccur=[(0, 1)])
    assert cluster_tracks(summary)[0][0] != cluster_tracks(summary)[1][0]
    # not even when told there is one person
    persons = cluster_tracks(summary, people=1)
    assert persons[0][0] != persons[1][0]


def _at(base: np.ndarray, d: float, seed: int) -> list[float]:
    """A vector at distance ``d`` from ``base``, in a random direction."""
    u = np.random.default_rng(seed).normal(size=base.shape)
    return list(base + d * u / np.linalg.norm(u))


def test_a_return_beyond_the_threshold_joins_only_when_nobody_else_is_nearer():
    # the rule on raw distances (the cohort's reading has its own test)
    raw = functools.partial(cluster_tracks, cohort=False)
    a, b, c = (np.asarray(_vec(s)) for s in (11, 12, 13))  # about 1.3 apart from each other
    first, back = [list(a)], [_at(a, 0.58, 1)]  # the return: over THRESHOLD, under LOOSE
    assert THRESHOLD < 0.58 < LOOSE
    clear = {0: (0.0, first), 1: (1.0, [list(b)]), 2: (2.0, [list(c)]), 3: (9.0, back)}
    persons = raw(_summary(clear, cooccur=[(0, 1), (1, 3), (2, 3)]))
    assert persons[3][0] == persons[0][0] and len({p for p, _ in persons.values()}) == 3
    # someone else, even one seen with the return, nearer to it: kept apart (not a guess)
    crowded = dict(clear)
    crowded[2] = (2.0, [_at(np.asarray(back[0]), 0.56, 2)])
    persons = raw(_summary(crowded, cooccur=[(0, 1), (1, 3), (2, 3)]))
    assert persons[3][0] != persons[0][0] and persons[3][0] != persons[2][0]
    # someone seen with the person nearer to it than the return: not its nearest any more
    far = dict(clear)
    far[2] = (2.0, [_at(np.asarray(first[0]), 0.57, 3)])
    persons = raw(_summary(far, cooccur=[(0, 1), (0, 2), (1, 3), (2, 3)]))
    assert persons[3][0] != persons[0][0]
    # too far (over LOOSE) even when nobody else is near
    lone = dict(clear)
    lone[3] = (9.0, [_at(a, LOOSE + 0.02, 4)])
    persons = raw(_summary(lone, cooccur=[(0, 1), (1, 3), (2, 3)]))
    assert persons[3][0] != persons[0][0]
    # seen together: never one person; and the rule can be turned off
    persons = raw(_summary(clear, cooccur=[(0, 3), (1, 3)]))
    assert persons[3][0] != persons[0][0]
    assert raw(_summary(clear), loose=0)[3][0] != raw(_summary(clear), loose=0)[0][0]


def test_distances_are_read_against_the_cohort_of_faces(embedder):
    """Where faces crowd (look-alikes to the descriptor) distances grow; a vector far from
    every face (not a face) cannot pull others near it."""
    from fervid.identity.distance import SCALE_BOUNDS, _cohort

    cohort = _cohort()
    assert cohort.shape[1] == 128 and len(cohort) > 10_000
    crowded = cohort[int(np.argmax(cohort_scale(cohort[:2000])))]
    astronaut = embedder.embed(samples.astronaut(), np.asarray([samples.PORTRAIT_FACES[0]]))
    scales = cohort_scale(np.stack([crowded, astronaut[0], np.full(128, 0.5)]))
    assert scales[0] > 1.1 and SCALE_BOUNDS[0] < scales[1] < SCALE_BOUNDS[1]
    assert scales[2] == SCALE_BOUNDS[0]
    # two faces of the cohort a little nearer than the threshold, where faces crowd: one
    # person by raw distance, two when read against the cohort
    faces = cohort[:2000].astype(np.float64)
    d = np.linalg.norm(faces[:, None] - faces[None], axis=2)
    roots = np.sqrt(cohort_scale(faces))
    pair = (d > THRESHOLD - 0.03) & (d < THRESHOLD) & (d * roots[:, None] * roots[None] > 0.6)
    a, b = np.argwhere(pair)[0]
    summary = _summary({0: (0.0, [list(faces[a])]), 1: (5.0, [list(faces[b])])})
    assert cluster_tracks(summary, cohort=False)[1][0] == 0
    assert cluster_tracks(summary)[1][0] == 1


def test_told_the_number_of_people_merges_down_to_it():
    tracks = {t: (float(t), [_vec(t)]) for t in range(4)}
    assert len({p for p, _ in cluster_tracks(_summary(tracks)).values()}) == 4
    assert len({p for p, _ in cluster_tracks(_summary(tracks), people=2).values()}) == 2


def test_a_face_too_small_for_an_embedding_stays_its_own_person(embedder):
    people = PersonTracker(embedder=embedder)
    img = samples.astronaut()
    big = Faces([samples.PORTRAIT_FACES[0]], [1.0], track_ids=[0])
    small_img = np.ascontiguousarray(img[::4, ::4])  # the face about 29 px
    x1, y1, x2, y2 = samples.PORTRAIT_FACES[0]
    small = Faces([[x1 / 4, y1 / 4, x2 / 4, y2 / 4]], [1.0], track_ids=[1])
    p0, c0 = people.update(big, img, 0.0)
    p1, c1 = people.update(small, small_img, 5.0)
    assert np.isfinite(c0[0]) and math.isnan(c1[0])
    persons = cluster_tracks(people.summary())
    assert persons[0][0] != persons[1][0] and math.isnan(persons[1][1])


def test_a_blurred_face_gives_no_embedding(embedder):
    import cv2

    img = cv2.GaussianBlur(samples.astronaut(), (0, 0), 6)
    people = PersonTracker(embedder=embedder)
    _, conf = people.update(Faces([samples.PORTRAIT_FACES[0]], [1.0], track_ids=[0]), img, 0.0)
    assert math.isnan(conf[0]) and not people.tracks[0].samples


def test_a_track_seen_again_after_a_gap_is_embedded_again(embedder):
    """Birth, then not again within the interval while the face stays in view, but at once
    when the tracker brings the track back after more than ``gap`` seconds unseen."""
    people = PersonTracker(embedder=embedder)
    img = samples.astronaut()
    face = Faces([samples.PORTRAIT_FACES[0]], [1.0], track_ids=[0])
    for t in (0.0, 0.2, 0.4):
        people.update(face, img, t)
    assert len(people.tracks[0].samples) == 1
    people.update(face, img, 0.4 + people.gap + 0.1)  # back after a gap, before 3 s
    assert len(people.tracks[0].samples) == 2
    for t in (1.7, 2.5, 3.3, 4.1):  # in view, no gap: waits for the interval (1.5 + 3 s)
        people.update(face, img, t)
    assert len(people.tracks[0].samples) == 2
    people.update(face, img, 4.6)
    assert len(people.tracks[0].samples) == 3


def _leave_and_return_clip(path):
    """The astronaut (left) for 2 s, gone for 1.5 s, back on the right as another photo of
    herself; Grace Hopper (middle) enters only while the astronaut is away, and stays. Where
    each face is says nothing of who it is."""
    return samples.write_clip(path, LEAVE_RETURN, width=640, height=360, fps=25, frames=125)


LEAVE_RETURN = [
    samples.Actor(0, lambda t: (110, 180), lambda t: 100, lambda t: t < 2.0),
    samples.Actor(1, lambda t: (320, 180), lambda t: 100, lambda t: t >= 2.4),
    samples.Actor(2, lambda t: (530, 180), lambda t: 100, lambda t: t >= 3.5),
]


@pytest.fixture(scope="module")
def leave_return(tmp_path_factory):
    path = tmp_path_factory.mktemp("reid") / "leave_return.mp4"
    return path, _leave_and_return_clip(path)


def _person_of(df: pd.DataFrame, frame: int, x: float) -> int:
    g = df[(df["frame"] == frame) & df["face"].notna()]
    k = int((((g["x1"] + g["x2"]) / 2 - x).abs()).idxmin())
    return int(df.loc[k, "person"])


def test_a_person_who_returns_as_another_photo_keeps_the_person(leave_return, model):
    path, _ = leave_return
    df = fervid.analyze_video(path, model=model)
    faces = df.dropna(subset=["face"])
    assert faces["face"].nunique() >= 3  # the tracker alone gives her a new track
    before, after = _person_of(df, 25, 110), _person_of(df, 110, 530)
    hopper = _person_of(df, 80, 320)
    assert before == after == 0 and hopper == 1  # numbered in order of first appearance
    assert faces["person"].nunique() == 2
    assert faces["person_confidence"].between(0, 1).all()
    assert df.attrs["fervid"].people == 2
    off = fervid.analyze_video(path, model=model, reid=False)
    assert off.dropna(subset=["face"])["person"].nunique() == faces["face"].nunique()
    # the people chosen again from the DataFrame: her return said to be someone else
    apart = fervid.regroup_frame(df, apart=[["0@1", "0@4.5"]])
    assert apart.dropna(subset=["face"])["person"].nunique() == 3
    assert (df["person"].dropna() == faces["person"]).all()  # the input is left as it was
    back = fervid.regroup_frame(apart, people=None)
    assert back["person"].equals(df["person"])
    # without re-identification each track is a person, and a user may still join two
    joined = fervid.regroup_frame(off, same=[[0, 2]])
    assert joined.dropna(subset=["face"])["person"].nunique() == faces["face"].nunique() - 1
    bare = off.copy()
    bare.attrs = {}
    with pytest.raises(ValueError, match="no identity"):
        fervid.regroup_frame(bare)


def test_the_annotated_video_and_the_csv_name_persons(leave_return, model, tmp_path):
    from fervid.video import FrameReader

    path, _ = leave_return
    report = fervid.annotate_video(
        path, tmp_path / "o.csv", model=model, annotated=tmp_path / "o.mp4"
    )
    df = pd.read_csv(tmp_path / "o.csv")
    assert report.people == 2 and df.dropna(subset=["face"])["person"].nunique() == 2
    frames = sum(1 for _ in FrameReader(tmp_path / "o.mp4"))
    assert frames == 125


def test_resume_gives_the_same_persons_as_an_uninterrupted_run(leave_return, model, tmp_path):
    path, _ = leave_return
    whole = tmp_path / "whole.csv"
    fervid.annotate_video(path, whole, model=model)
    cut = tmp_path / "cut.csv"
    seen = []

    def stop_after_she_left(n):
        seen.append(n)
        if sum(seen) >= 64:  # the astronaut has left, Grace Hopper is in; she is not back yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fervid.annotate_video(path, cut, model=model, progress=stop_after_she_left)
    state = json.loads((tmp_path / "cut.state.json").read_text())
    assert state["people"]["tracks"] and not cut.exists()
    report = fervid.annotate_video(path, cut, model=model, resume=True)
    assert report.resumed_from is not None and report.people == 2
    assert cut.read_text() == whole.read_text()


def _plain_cluster(summary: dict, people=None, loose=LOOSE) -> dict:
    """The whole-video pass written pair by pair (as it was first written): the reference
    the fast pass must agree with."""
    tracks = {int(k): v for k, v in summary["tracks"].items()}
    seen = {(min(a, b), max(a, b)) for a, b in summary["cooccur"]}
    known = sorted(t for t, v in tracks.items() if v["samples"])
    means = {t: np.mean(np.asarray(tracks[t]["samples"]), 0) for t in known}
    root = {t: math.sqrt(cohort_scale(means[t])[0]) for t in known}

    def dist(g, h):
        return float(
            np.mean([np.linalg.norm(means[a] - means[b]) * root[a] * root[b] for a in g for b in h])
        )

    def apart(g, h):
        return any((min(a, b), max(a, b)) in seen for a in g for b in h)

    groups = [[t] for t in known]
    while len(groups) > (people or 1):
        pairs = [(i, j) for i, j in itertools.combinations(range(len(groups)), 2)]
        pairs = [(dist(groups[i], groups[j]), i, j) for i, j in pairs]
        pairs = [p for p in pairs if not apart(groups[p[1]], groups[p[2]])]
        if not pairs or (people is None and min(pairs)[0] >= THRESHOLD):
            break
        _, i, j = min(pairs)
        groups[i] += groups.pop(j)
    while people is None and loose and len(groups) > 2:
        n = len(groups)
        d = np.array([[dist(g, h) if g is not h else np.inf for h in groups] for g in groups])
        near = d.min(1)
        ok = [
            (d[i, j], i, j)
            for i, j in itertools.combinations(range(n), 2)
            if d[i, j] < loose
            and d[i, j] <= min(near[i], near[j])
            and not apart(groups[i], groups[j])
        ]
        if not ok:
            break
        _, i, j = min(ok)
        groups[i] += groups.pop(j)
    conf = {}
    for g in groups:
        for t in g:
            mates = [dist([t], [o]) for o in g if o != t]
            rivals = [dist([t], h) for h in groups if h is not g]
            near = np.quantile(mates, 0.75) if mates else None  # the farther of its mates
            p = same_probability(near) if mates else 1 - same_probability(min(rivals))
            conf[t] = float(p) if mates or rivals else 1.0
    groups += [[t] for t in tracks if t not in means]
    groups.sort(key=lambda g: min(tracks[t]["first_t"] for t in g))
    return {t: (k, conf.get(t, math.nan)) for k, g in enumerate(groups) for t in g}


def test_the_whole_video_pass_agrees_with_the_plain_pair_by_pair_one():
    rng = np.random.default_rng(5)
    for _ in range(60):
        n = int(rng.integers(3, 8))
        centres = rng.normal(0, 0.06, (n, 128))  # people about 0.6-1.0 apart
        tracks, who = {}, {}
        for t in range(int(rng.integers(n, 3 * n))):
            who[t] = int(rng.integers(n))
            samples = (
                [list(centres[who[t]] + rng.normal(0, 0.03, 128))] if rng.random() > 0.1 else []
            )
            tracks[t] = (float(rng.random() * 30), samples)
        cooccur = [
            (a, b)
            for a, b in itertools.combinations(tracks, 2)
            if who[a] != who[b] and rng.random() < 0.3
        ]
        summary = _summary(tracks, cooccur)
        for people in (None, max(1, n - 1)):
            fast, plain = cluster_tracks(summary, people=people), _plain_cluster(summary, people)
            assert {t: p for t, (p, _) in fast.items()} == {t: p for t, (p, _) in plain.items()}
            np.testing.assert_allclose(
                [fast[t][1] for t in tracks], [plain[t][1] for t in tracks], atol=1e-6
            )


# -- a person's word, and a finished video's people chosen again ------------------------------


def test_tracks_said_to_be_one_person_are_one_and_said_apart_are_two():
    a, b = np.asarray(_vec(21)), np.asarray(_vec(22))
    tracks = {
        0: (0.0, [list(a)]),
        1: (1.0, [list(b)]),
        2: (2.0, [_at(a, 0.3, 1)]),  # a again: joined by itself
        3: (3.0, []),  # too small to tell
        4: (4.0, [_at(b, 0.3, 2)]),
    }
    persons = cluster_tracks(_summary(tracks))
    assert persons[0][0] == persons[2][0] and persons[1][0] == persons[4][0]
    assert persons[3][0] not in {persons[0][0], persons[1][0]}
    told = cluster_tracks(_summary(tracks), same=[[0, 1], [3, 4]], apart=[[0, 2]])
    assert told[0][0] == told[1][0] and told[3][0] == told[4][0]  # far apart, but said one
    assert told[2][0] != told[0][0]  # near, but said two
    assert math.isnan(told[3][1])  # no embedding: no confidence, only the user's word
    # apart from a track without an embedding: apart from everybody it is one with
    kept = cluster_tracks(_summary(tracks), same=[[3, 0]], apart=[[3, 2]])
    assert kept[3][0] == kept[0][0] and kept[2][0] != kept[0][0]


@pytest.mark.parametrize(
    "same, apart, message",
    [
        ([[0, 1]], [], "seen in the same frame"),
        ([[0, 2], [2, 1]], [], "seen in the same frame"),  # joined through a shared track
        ([[0, 2]], [[2, 0]], "asked to be apart"),
        ([[0, 9]], [], "track 9 is not in this video"),
        ([], [[1, 1]], "apart from itself"),
    ],
)
def test_words_that_contradict_the_video_or_each_other_are_refused(same, apart, message):
    tracks = {t: (float(t), [_vec(30 + t)]) for t in range(3)}
    with pytest.raises(ValueError, match=message):
        cluster_tracks(_summary(tracks, cooccur=[(0, 1)]), same=same, apart=apart)


def _cli(*args):
    from click.testing import CliRunner

    from fervid.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_finished_video_is_regrouped_without_analysing_it_again(leave_return, tmp_path):
    import shutil

    from fervid.video import FrameReader, is_fervid_video

    video = shutil.copy(leave_return[0], tmp_path / "talk.mp4")
    r = _cli("annotate", video, "--plot", "--report", "--elan")
    assert r.exit_code == 0, r.output
    table, ident = tmp_path / "talk.fervid.csv", tmp_path / "talk.fervid.identity.json"
    original = table.read_bytes()
    assert json.loads(ident.read_text())["tracks"]
    df = pd.read_csv(table)
    astronaut = df[df["person"] == 0]["face"].dropna().unique()
    assert len(astronaut) == 2  # she left and came back: two tracks, one person
    # the user says the returning face is someone else, by person and time in the video
    r = _cli("regroup", table, "--apart", "0@1,P0@4.5")  # as the page labels persons
    assert r.exit_code == 0, r.output
    assert "3 people (were 2)" in r.output
    after = pd.read_csv(table)
    assert after.dropna(subset=["face"])["person"].nunique() == 3
    assert (after["face"].fillna(-1) == df["face"].fillna(-1)).all()  # nothing else changes
    assert after.drop(columns=["person", "person_confidence"]).equals(
        df.drop(columns=["person", "person_confidence"])
    )
    people = pd.read_csv(tmp_path / "talk.fervid.people.csv")
    assert len(people) == 3 and len(list((tmp_path / "talk.fervid.people").glob("*.jpg"))) == 3
    assert 'TIER_ID="person 2"' in (tmp_path / "talk.fervid.eaf").read_text()
    mp4 = tmp_path / "talk.fervid.mp4"
    assert is_fervid_video(mp4) and sum(1 for _ in FrameReader(mp4)) == 125
    # the correction is kept: another run without it still holds it, --reset forgets it
    r = _cli("regroup", table, "--people", "0")
    assert r.exit_code == 0 and "3 people" in r.output, r.output
    r = _cli("regroup", table, "--reset")
    assert r.exit_code == 0 and "2 people (were 3)" in r.output, r.output
    assert table.read_bytes() == original


def test_regroup_never_makes_one_person_of_two_seen_together(tmp_path):
    import shutil

    from conftest import ROOT

    video = shutil.copy(ROOT / "samples" / "two_people.mp4", tmp_path / "two.mp4")
    assert _cli("annotate", video, "--no-video").exit_code == 0
    table = tmp_path / "two.fervid.csv"
    original = table.read_bytes()
    r = _cli("regroup", table, "--same", "P0,1")
    assert r.exit_code == 1 and "persons 0 and 1 are seen in the same frame" in r.output
    r = _cli("regroup", table, "--people", "1")  # told there is one: still two
    assert r.exit_code == 0 and "2 people (were 2)" in r.output, r.output
    r = _cli("regroup", table, "--same", "0,7")
    assert r.exit_code == 1 and "person 7 is not in" in r.output
    r = _cli("regroup", table, "--apart", "0@1,x")
    assert r.exit_code == 1 and "'x': not a track" in r.output
    assert table.read_bytes() == original


def test_regroup_needs_the_identity_a_run_kept(leave_return, tmp_path):
    import shutil

    video = shutil.copy(leave_return[0], tmp_path / "talk.mp4")
    assert _cli("annotate", video, "--no-reid", "--no-video").exit_code == 0
    assert not (tmp_path / "talk.fervid.identity.json").exists()
    # a video finished without an identity (or before runs kept one) is finished: not redone
    r = _cli("annotate", video, "--no-video", "--resume")
    assert r.exit_code == 0 and "finished earlier" in r.output, r.output
    r = _cli("regroup", tmp_path / "talk.fervid.csv", "--people", "1")
    assert r.exit_code == 1 and "identity.json: not found" in r.output
    assert "Traceback" not in r.output
    r = _cli("regroup", tmp_path / "talk.fervid.csv", "--same", "1")
    assert r.exit_code == 2 and "two or more" in r.output


def test_regroup_changes_nothing_when_an_output_is_not_fervids(tmp_path):
    import shutil

    from conftest import ROOT

    video = shutil.copy(ROOT / "samples" / "two_people.mp4", tmp_path / "two.mp4")
    assert _cli("annotate", video, "--no-video").exit_code == 0
    table = tmp_path / "two.fervid.csv"
    original = table.read_bytes()
    mine = tmp_path / "two.fervid.episodes.csv"
    mine.write_text("my own notes\n")
    r = _cli("regroup", table, "--apart", "0,0@5")  # one track all along, not two times
    assert r.exit_code == 1 and "0 and 0@5 are one track (0): to part a track" in r.output
    r = _cli("regroup", table, "--apart", "0@0.5,0@5")  # to part it, outputs are rewritten
    assert r.exit_code == 1 and "not written by fervid" in r.output
    r = _cli("regroup", table, "--people", "1")
    assert r.exit_code == 1 and "not written by fervid" in r.output
    assert table.read_bytes() == original and mine.read_text() == "my own notes\n"
    # an identity file of another run does not fit the table
    ident = tmp_path / "two.fervid.identity.json"
    d = json.loads(ident.read_text())
    d["tracks"], d["cooccur"] = {"7": d["tracks"]["0"]}, []
    ident.write_text(json.dumps(d))
    mine.unlink()
    r = _cli("regroup", table, "--people", "1")
    assert r.exit_code == 1 and "not from one run" in r.output
    assert table.read_bytes() == original


def _swap_clip(path, second: int):
    """The astronaut's face, replaced at 2.5 s in the same place and size by ``second``'s (1:
    another person; 2: another photo of the astronaut)."""
    first = samples.Actor(0, lambda t: (640, 360), lambda t: 90, lambda t: t < 2.5)
    then = samples.Actor(second, lambda t: (640, 360), lambda t: 90, lambda t: t >= 2.5)
    samples.write_clip(path, [first, then], width=1280, height=720, fps=10, frames=45)
    return path


@pytest.fixture
def no_cut_seen(monkeypatch):
    """The shot detector misses every cut (as in dark footage): the track check is alone."""
    monkeypatch.setattr("fervid.pipeline.mark_cuts", lambda frames, cuts: frames)


@pytest.mark.parametrize("second", [1, 2], ids=["another person", "the same person"])
def test_a_track_whose_face_becomes_someone_else_is_split_there(
    tmp_path, model, second, no_cut_seen
):
    df = fervid.analyze_video(_swap_clip(tmp_path / "swap.mp4", second), model=model)
    rows = df.dropna(subset=["face"])
    before, after = rows[rows.time_s < 2.45], rows[rows.time_s > 2.45]
    assert len(before) == 25 and len(after) == 20  # one face on every frame
    if second == 1:
        assert before.face.nunique() == after.face.nunique() == 1
        assert set(before.face).isdisjoint(after.face)  # no row of the second under the first
        assert set(before.person).isdisjoint(after.person)
        assert df.attrs["fervid"].splits == 1
    else:  # the same person in another photo: one track (no false split)
        assert rows.face.nunique() == 1 and df.attrs["fervid"].splits == 0


def test_the_face_tracker_goes_on_under_a_new_id():
    from fervid.track import FaceTracker

    tracker = FaceTracker()
    a = tracker.update(Faces([[10, 10, 60, 60]], [0.99]), 0.0)
    new = tracker.split(int(a.track_ids[0]))
    b = tracker.update(Faces([[11, 10, 61, 60]], [0.99]), 0.1)
    assert new != a.track_ids[0] and list(b.track_ids) == [new]
    with pytest.raises(KeyError):
        tracker.split(int(a.track_ids[0]))  # the old id has ended


def test_the_summary_says_how_many_tracks_were_split(tmp_path, no_cut_seen):
    video = _swap_clip(tmp_path / "swap.mp4", 1)
    r = _cli("annotate", str(video), "--no-video")
    assert r.exit_code == 0, r.output
    assert "faces in 2 tracks (1 split where the face became another), 2 people" in r.output
