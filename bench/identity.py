"""Re-identification, measured: verification on pairs of real photos, and clips in which
people leave and return, hide behind each other and are cut away from.

    python bench/identity.py --data ../shared/data [--out bench/out/identity] [--only verify]

``verify``: every face of ``lfw-identities`` (200 people, 3-4 news photos each) is found by
fervid's detector and embedded by :class:`fervid.identity.embedder.FaceEmbedder`; all pairs
of photos of the same person and 40,000 pairs of different people give the true-accept rate
at 1% and 0.1% false accepts. The people are split in two halves by name: the threshold and the
confidence curve are chosen on the first half and reported on the second, so the figures are
not chosen on what they report. Milliseconds per face (alignment and descriptor) are timed.

``whole-video``: the whole-video pass (:func:`fervid.identity.grouping.cluster_tracks`) on
5,000 simulated videos per half of the people (4-6 people, 2-3 photos each as separate tracks, half
the pairs of different people seen together): people split over several ids and wrong merges
per video, with the threshold alone and with the join of mutual nearest groups; once with
the photos' descriptors, once with the same faces as a 720p H.264 video shows them.

``confidence``: whether ``person_confidence`` tells the tracks given a wrong person from the
right ones on those simulated videos (AUROC, means, shares flagged as weak joins).

``scale``: seconds the whole-video pass takes for 100 to 3,000 tracks.

``clips``: synthetic videos made of real photos (a person leaves and returns as another photo
of the same person, two people cross and swap places while hidden, a cut to another shot and
back; 4-6 people, 30 s or more), from the second half of the people. Per clip: ids per
person, id switches, false merges (two people under one id), the share of each person's rows
under its majority id, frames per second without and with re-identification.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the fervid command sets it
sys.path.insert(0, str(HERE.parent / "samples"))


#: the threshold on raw distances (before the cohort): 0.1% of different people's pairs of
#: the chosen-on half under it
RAW_THRESHOLD = 0.53
SHARPNESS: list[float] = []  # of every photo's face chip
CHIPS: list[np.ndarray] = []  # the first aligned faces, to time the networks on


def network_timings(n: int = 64) -> dict:
    """ms per face of the descriptor network alone: fervid's (PyTorch) one face at a time and
    in batches of 8, and dlib's own C++ network, on the same aligned faces, in this run."""
    import dlib

    from fervid._dlib_resnet import DESCRIPTOR_FILE
    from fervid._dlib_resnet import model_dir as _model_dir
    from fervid.identity.embedder import FaceEmbedder

    chips = CHIPS[:n]
    emb = FaceEmbedder()
    dlib_net = dlib.face_recognition_model_v1(os.path.join(_model_dir(), DESCRIPTOR_FILE))
    emb.embed_chips(chips[:8])  # warm-up
    runs = {
        "fervid_one_at_a_time": lambda: [emb.embed_chips([c]) for c in chips],
        "fervid_batches_of_8": lambda: [emb.embed_chips(chips[i : i + 8]) for i in range(0, n, 8)],
        "dlib_cpp": lambda: [dlib_net.compute_face_descriptor([c]) for c in chips],
    }
    out = {}
    for name, run in runs.items():
        t = time.perf_counter()
        run()
        out[name] = round(1000 * (time.perf_counter() - t) / len(chips), 2)
    return out


def people_photos(root: Path) -> dict[str, list[Path]]:
    return {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}


def embed_all(people: dict[str, list[Path]]) -> tuple[dict, float, int]:
    """name -> list of descriptors (one per photo where a face was found); ms per face."""
    from identity_clips import largest_face

    from fervid.detect import FaceDetector
    from fervid.identity.embedder import FaceEmbedder
    from fervid.images import load_image

    det = FaceDetector(device="cpu", min_face_size=40)
    emb = FaceEmbedder()
    out, spent, n, missed = {}, 0.0, 0, 0
    for name, paths in people.items():
        vecs = []
        for p in paths:
            img = load_image(p)
            box = largest_face(det, img)
            if box is None:
                missed += 1
                continue
            box = box[None]
            t = time.perf_counter()
            chips = emb.chips(img, box)
            v = emb.embed_chips(chips)
            spent += time.perf_counter() - t
            n += 1
            vecs.append(v[0])
            SHARPNESS.append(emb.sharpness(chips[0]))
            if len(CHIPS) < 64:
                CHIPS.append(chips[0])
        out[name] = vecs
    return out, 1000 * spent / max(n, 1), missed


def pairs(vecs: dict[str, list], rng: random.Random, impostors: int = 40_000, cohort=False):
    """Distances of all pairs of photos of one person and of ``impostors`` pairs of two
    people; ``cohort``: read against the cohort, as fervid does (else raw Euclidean)."""
    from fervid.identity.distance import cohort_scale

    root = {
        n: np.sqrt(cohort_scale(np.asarray(v))) if cohort else np.ones(len(v))
        for n, v in vecs.items()
        if v
    }

    def dist(a: str, i: int, b: str, j: int) -> float:
        return float(np.linalg.norm(vecs[a][i] - vecs[b][j]) * root[a][i] * root[b][j])

    same = [
        dist(n, i, n, j) for n in root for i, j in itertools.combinations(range(len(vecs[n])), 2)
    ]
    names = list(root)
    diff = []
    for _ in range(impostors):
        a, b = rng.sample(names, 2)
        diff.append(dist(a, rng.randrange(len(vecs[a])), b, rng.randrange(len(vecs[b]))))
    return np.asarray(same), np.asarray(diff)


def at_far(same: np.ndarray, diff: np.ndarray, far: float) -> tuple[float, float]:
    """(threshold, true-accept rate) where ``far`` of different people's pairs are accepted."""
    thr = float(np.quantile(diff, far))
    return thr, float((same < thr).mean())


def fit_logistic(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """P(same | d) = 1 / (1 + exp((d - mid) / scale)), by maximum likelihood on a grid
    (the classes weighted equally)."""
    d = np.concatenate([same, diff])
    y = np.concatenate([np.ones(len(same)), np.zeros(len(diff))])
    w = np.where(y == 1, 0.5 / len(same), 0.5 / len(diff))
    best = (np.inf, 0.0, 0.0)
    for mid in np.arange(0.35, 0.75, 0.005):
        for scale in np.arange(0.01, 0.1, 0.0025):
            p = 1 / (1 + np.exp(np.clip((d - mid) / scale, -50, 50)))
            nll = -(w * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))).sum()
            if nll < best[0]:
                best = (nll, mid, scale)
    return round(best[1], 3), round(best[2], 4)


def cached_embeddings(data: Path, out: Path) -> tuple[dict, float, int]:
    """:func:`embed_all` of ``lfw-identities``, kept in ``out`` (embeddings.npz) once made."""
    cache = out / "embeddings.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        vecs = {n: list(z[f"v_{n}"]) for n in meta["names"]}
        SHARPNESS[:] = meta["sharpness"]
        return vecs, meta["ms"], meta["missed"]
    vecs, ms, missed = embed_all(people_photos(data / "lfw-identities"))
    meta = {"names": list(vecs), "ms": ms, "missed": missed, "sharpness": SHARPNESS}
    arrays = {f"v_{n}": np.asarray(v, np.float32).reshape(-1, 128) for n, v in vecs.items()}
    np.savez(cache, meta=json.dumps(meta), **arrays)
    return vecs, ms, missed


def video_embeddings(data: Path, out: Path, px: int = 130, hold: int = 10) -> dict:
    """Every face of ``lfw-identities`` as the clips show it: the photo pasted on the clips'
    background with its face ``px`` long, held for ``hold`` frames of a 720p H.264 video
    (crf 23, as ``bench/identity_clips.py`` writes), found again by fervid's detector in the
    last of them and embedded: name -> descriptors (kept in ``out``, video_embeddings.npz).
    A video's faces are smaller and encoded, so their descriptors lie farther apart than the
    photos' (docs/identity.md)."""
    cache = out / "video_embeddings.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return {n: list(z[f"v_{n}"]) for n in json.loads(str(z["names"]))}
    from identity_clips import FPS, H, W, _paste, largest_face

    from fervid.detect import FaceDetector
    from fervid.identity.embedder import FaceEmbedder
    from fervid.images import load_image
    from fervid.video import frames_at

    from make_samples import background, encode_clip

    det, emb = FaceDetector(device="cpu", min_face_size=40), FaceEmbedder()
    shown = []  # (name, photo, face box in the photo)
    for name, paths in people_photos(data / "lfw-identities").items():
        for path in paths:
            img = load_image(path)
            box = largest_face(det, img)
            if box is not None:
                shown.append((name, img, box))
    bg = background(W, H)

    def pictures():
        for _, img, face in shown:
            frame = bg.copy()
            _paste(frame, img, face, W // 2, H // 2, px)
            yield from (frame for _ in range(hold))

    video = out / "faces_as_in_video.mp4"
    encode_clip(video, pictures(), width=W, height=H, fps=FPS, crf=23)
    times = [((k + 1) * hold - 1) / FPS for k in range(len(shown))]
    frames = frames_at(video, times)
    vecs: dict[str, list] = {}
    for (name, _, _), t in zip(shown, times):
        faces = det.detect([frames[t]])[0] if t in frames else []
        if len(faces):
            centre = np.abs((faces.boxes[:, 0] + faces.boxes[:, 2]) / 2 - W / 2)
            box = faces.boxes[int(centre.argmin())][None]
            vecs.setdefault(name, []).append(emb.embed(frames[t], box)[0])
    arrays = {f"v_{n}": np.asarray(v, np.float32).reshape(-1, 128) for n, v in vecs.items()}
    np.savez(cache, names=json.dumps(list(vecs)), **arrays)
    return vecs


def halves_of(names: list[str]) -> dict[str, list[str]]:
    names = sorted(names)
    return {"choose": names[::2], "report": names[1::2]}


def verify(data: Path, out: Path) -> dict:
    from fervid.identity.distance import THRESHOLD

    vecs, ms, missed = cached_embeddings(data, out)
    halves = halves_of(list(vecs))
    res = {"ms_per_face": round(ms, 2), "photos_without_face": missed, "threshold": THRESHOLD}
    if CHIPS:  # embedded in this run, not read from the cache
        res["network_ms_per_face"] = network_timings()
    q = np.percentile(SHARPNESS, [1, 5, 50])
    res["chip_sharpness_p1_p5_p50"] = [round(float(v), 1) for v in q]
    for half, members in halves.items():
        for reading in ("raw", "cohort"):
            same, diff = pairs(
                {n: vecs[n] for n in members}, random.Random(0), cohort=reading == "cohort"
            )
            r = {"same_pairs": len(same), "different_pairs": len(diff)}
            for far in (0.01, 0.001):
                thr, tar = at_far(same, diff, far)
                r[f"far_{far}"] = {"threshold": round(thr, 4), "tar": round(tar, 4)}
            thr = THRESHOLD if reading == "cohort" else RAW_THRESHOLD
            r["at_threshold"] = {
                "threshold": thr,
                "tar": round(float((same < thr).mean()), 4),
                "far": round(float((diff < thr).mean()), 5),
            }
            if half == "choose":
                r["logistic_mid_scale"] = fit_logistic(same, diff)
            res[f"{half}, {reading}"] = r
    (out / "verify.json").write_text(json.dumps(res, indent=1))
    return res


def open_set_trials(vecs: dict, members: list[str], rng: random.Random, n: int = 40_000):
    """Trials of the question a new track asks: a video has shown 2-6 people (one photo each);
    some could be this face (not seen with it), the others were seen with it. Half the trials
    are another photo of one of them (always a candidate), half a person never shown. Returns
    distances (n, 6; inf where no person), which are candidates, and the true index (-1: none)."""
    members = [m for m in members if vecs[m]]
    multi = [m for m in members if len(vecs[m]) >= 2]
    dist = np.full((n, 6), np.inf)
    cand = np.zeros((n, 6), bool)
    truth = np.full(n, -1)
    for k in range(n):
        g = rng.randint(2, 6)
        if k % 2 == 0:
            who = rng.choice(multi)
            a, b = rng.sample(range(len(vecs[who])), 2)
            probe, shown = vecs[who][a], [vecs[who][b]]
            shown += [
                rng.choice(vecs[o]) for o in rng.sample([m for m in members if m != who], g - 1)
            ]
            truth[k] = 0
        else:
            ppl = rng.sample(members, g + 1)
            probe, shown = rng.choice(vecs[ppl[0]]), [rng.choice(vecs[o]) for o in ppl[1:]]
        dist[k, :g] = np.linalg.norm(np.stack(shown) - probe, axis=1)
        cand[k, :g] = [rng.random() < 0.5 for _ in range(g)]
        cand[k, 0] |= truth[k] == 0 or not cand[k, :g].any()
    return dist, cand, truth


def is_same(nearest: float, next_other: float, *, threshold, loose, ratio) -> bool:
    """The candidate rule: the nearest candidate person is this face's person when under
    ``threshold`` (fervid's rule), or under ``loose`` when the next nearest other person of
    the video (any, even one seen with it: a known stranger is a reference) is clearly
    farther: ``nearest <= ratio * next_other`` (the ratio test)."""
    if nearest < threshold:
        return True
    return nearest < loose and math.isfinite(next_other) and nearest <= ratio * next_other


def decide(dist, cand, *, threshold, loose, ratio) -> np.ndarray:
    """The index each trial matches by :func:`is_same` (-1: a new person)."""
    out = np.full(len(dist), -1)
    for k in range(len(dist)):
        d = np.where(cand[k], dist[k], np.inf)
        j = int(np.argmin(d))
        rest = np.delete(dist[k], j)
        if is_same(float(d[j]), float(rest.min()), threshold=threshold, loose=loose, ratio=ratio):
            out[k] = j
    return out


def outcome(match: np.ndarray, truth: np.ndarray) -> dict:
    genuine, impostor = truth >= 0, truth < 0
    return {
        "same_found": round(float((match[genuine] == truth[genuine]).mean()), 4),
        "wrong_person": round(float(((match != truth) & (match >= 0))[genuine].mean()), 4),
        "stranger_matched": round(float((match[impostor] >= 0).mean()), 4),
    }


def open_set(data: Path, out: Path) -> dict:
    """Choose LOOSE and RATIO on the first half's trials (no more false matches, wrong person
    or stranger, than the raw threshold alone), report both rules on the second half (raw
    distances: the experiment of docs/identity.md, made before the cohort)."""
    THRESHOLD = RAW_THRESHOLD

    vecs, _, _ = cached_embeddings(data, out)
    halves = halves_of(list(vecs))
    trials = {h: open_set_trials(vecs, m, random.Random(1)) for h, m in halves.items()}
    strict = {"threshold": THRESHOLD, "loose": THRESHOLD, "ratio": 0.0}

    def false(o):
        return o["wrong_person"] + o["stranger_matched"]

    base = outcome(decide(*trials["choose"][:2], **strict), trials["choose"][2])
    best = (base["same_found"], strict)
    for loose in np.arange(0.54, 0.70, 0.01):
        for ratio in np.arange(0.5, 0.96, 0.05):
            rule = {"threshold": THRESHOLD, "loose": round(loose, 3), "ratio": round(ratio, 3)}
            o = outcome(decide(*trials["choose"][:2], **rule), trials["choose"][2])
            if false(o) <= false(base) and o["same_found"] > best[0]:
                best = (o["same_found"], rule)
    res = {"chosen": best[1]}
    for half, (dist, cand, truth) in trials.items():
        res[half] = {
            "strict": outcome(decide(dist, cand, **strict), truth),
            "chosen": outcome(decide(dist, cand, **best[1]), truth),
        }
    (out / "open_set.json").write_text(json.dumps(res, indent=1))
    return res


def simulated_video(vecs: dict, members: list[str], rng: random.Random):
    """A video's summary as :func:`fervid.identity.grouping.cluster_tracks` reads it: 4-6 people,
    each shown in 2-3 of their photos (one track per photo, at a random time); each pair
    of tracks of two different people seen together with probability 1/2. Returns the
    summary, each track's true person and the number of people."""
    people = rng.sample([n for n in members if len(vecs[n]) >= 2], rng.randint(4, 6))
    tracks, truth = {}, {}
    for k, name in enumerate(people):
        for v in rng.sample(vecs[name], min(len(vecs[name]), rng.choice([2, 3]))):
            t = len(tracks)
            tracks[str(t)] = {"samples": [list(map(float, v))], "first_t": 30 * rng.random()}
            truth[t] = k
    cooccur = [
        [a, b]
        for a, b in itertools.combinations(truth, 2)
        if truth[a] != truth[b] and rng.random() < 0.5
    ]
    return {"tracks": tracks, "cooccur": cooccur}, truth, len(people)


#: the whole-video pass's rules compared: raw distances or read against the cohort, the
#: threshold alone or with the join of mutual nearest groups
RULES = {
    "raw, threshold alone": {"loose": 0, "cohort": False, "threshold": RAW_THRESHOLD},
    "raw, with mutual nearest": {"cohort": False, "threshold": RAW_THRESHOLD},
    "cohort, threshold alone": {"loose": 0},
    "cohort, with mutual nearest (fervid's default)": {},
}


def whole_video(data: Path, out: Path, videos: int = 5000) -> dict:
    """The whole-video pass on simulated videos, per half of the people, with the photos'
    descriptors and with the same faces as a video shows them (:func:`video_embeddings`):
    the share of people split over two or more ids and the wrong merges (ids with two
    people) per video, with the threshold alone (``loose=0``) and with the join of mutual
    nearest groups (fervid's defaults)."""
    from fervid.identity.distance import LOOSE
    from fervid.identity.grouping import cluster_tracks

    photos, _, _ = cached_embeddings(data, out)
    res = {"videos": videos, "loose": LOOSE}
    for kind, vecs in (("photos", photos), ("as in video", video_embeddings(data, out))):
        for half, members in halves_of(list(photos)).items():
            members = [m for m in members if m in vecs]
            for rule, kw in RULES.items():
                rng, split, merges, people = random.Random(1), 0, 0, 0
                for _ in range(videos):
                    summary, truth, n = simulated_video(vecs, members, rng)
                    persons = cluster_tracks(summary, **kw)
                    ids = {k: {persons[t][0] for t in truth if truth[t] == k} for k in range(n)}
                    split += sum(len(v) > 1 for v in ids.values())
                    owners: dict[int, set] = {}
                    for t, k in truth.items():
                        owners.setdefault(persons[t][0], set()).add(k)
                    merges += sum(len(v) > 1 for v in owners.values())
                    people += n
                key = f"{kind}, {half}: {rule}"
                res[key] = {
                    "people_split": round(split / people, 4),
                    "wrong_merges_per_video": round(merges / videos, 4),
                }
                print(key, res[key], flush=True)
    (out / "whole_video.json").write_text(json.dumps(res, indent=1))
    return res


def _right(persons: dict, truth: dict, t: int) -> bool:
    """Whether a track's person is right: with others, most of them are its own person;
    alone, no other id holds its person."""
    mine = persons[t][0]
    mates = [truth[u] for u in truth if u != t and persons[u][0] == mine]
    if mates:
        return max(set(mates), key=mates.count) == truth[t]
    return not any(truth[u] == truth[t] for u in truth if u != t)


def _auroc(score: np.ndarray, good: np.ndarray) -> float:
    """The chance that a right track reads higher than a wrong one (ties count half)."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for v in np.unique(score):  # ties: their mean rank
        same = score == v
        ranks[same] = ranks[same].mean()
    n_good, n_bad = good.sum(), (~good).sum()
    return float((ranks[good].sum() - n_good * (n_good + 1) / 2) / (n_good * n_bad))


def confidence(data: Path, out: Path, videos: int = 5000) -> dict:
    """``person_confidence`` as a warning, on the whole-video pass's simulated videos (faces as
    a video shows them): whether it tells the tracks given a wrong person (:func:`_right`)
    from the right ones, per half of the people, for the tracks grouped with others (a join)
    and those left alone (each simulated person has two or three tracks, so alone is a
    split): AUROC, the mean and the shares under :data:`fervid.persons.WEAK_JOIN` of each."""
    from fervid.identity.grouping import cluster_tracks
    from fervid.persons import WEAK_JOIN

    vecs = video_embeddings(data, out)
    res: dict = {"weak_join": WEAK_JOIN}
    for half, members in halves_of(list(vecs)).items():
        rng, rows = random.Random(2), []
        for _ in range(videos):
            summary, truth, _ = simulated_video(vecs, members, rng)
            persons = cluster_tracks(summary)
            for t in truth:
                alone = sum(persons[u][0] == persons[t][0] for u in truth) == 1
                rows.append((persons[t][1], _right(persons, truth, t), alone))
        c, g, a = (np.asarray([r[k] for r in rows]) for k in range(3))
        for kind, m in (("joined", ~a), ("alone", a)):
            right, wrong = c[m & g], c[m & ~g]
            key = f"{half}, {kind}"
            share = lambda v: round(float((v < WEAK_JOIN).mean()), 4) if len(v) else None  # noqa: E731
            res[key] = {
                "tracks": int(m.sum()), "wrong": len(wrong),
                "auroc": round(_auroc(c[m], g[m]), 4) if len(wrong) and len(right) else None,
                "mean_right": round(float(right.mean()), 3) if len(right) else None,
                "mean_wrong": round(float(wrong.mean()), 3) if len(wrong) else None,
                "wrong_flagged": share(wrong), "right_flagged": share(right),
            }  # fmt: skip
            print(key, res[key], flush=True)
    (out / "confidence.json").write_text(json.dumps(res, indent=1))
    return res


def scale(tracks_counts=(100, 300, 1000, 3000)) -> dict:
    """Seconds the whole-video pass takes on long videos: N tracks of N/10 people (random
    descriptors 0.6 from each person's centre), each track seen with the next five."""
    from fervid.identity.grouping import cluster_tracks

    out = {}
    for n in tracks_counts:
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(n // 10, 128))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        who = rng.integers(0, n // 10, n)
        tracks = {
            str(t): {
                "samples": [list(centres[who[t]] + rng.normal(0, 0.6 / 16, 128))],
                "first_t": float(t),
            }
            for t in range(n)
        }
        cooccur = [
            [a, b] for a in range(n) for b in range(a + 1, min(n, a + 6)) if who[a] != who[b]
        ]
        t0 = time.perf_counter()
        persons = cluster_tracks({"tracks": tracks, "cooccur": cooccur})
        out[n] = {
            "seconds": round(time.perf_counter() - t0, 3),
            "people": len({p for p, _ in persons.values()}),
            "true_people": len(set(who.tolist())),
        }
        print(n, "tracks:", out[n], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "identity")
    ap.add_argument("--only", default="verify,open-set,whole-video,clips")
    ap.add_argument(
        "--draws", type=int, default=0, help="also the clips with N other draws of people"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )  # noqa: E501
    only = args.only.split(",")
    if "verify" in only:
        print(json.dumps(verify(args.data, args.out), indent=1))
    if "open-set" in only:
        print(json.dumps(open_set(args.data, args.out), indent=1))
    if "whole-video" in only:
        print(json.dumps(whole_video(args.data, args.out), indent=1))
    if "confidence" in only:
        print(json.dumps(confidence(args.data, args.out)))
    if "scale" in only:
        print(json.dumps(scale()))
    results = []
    if "clips" in only or args.draws:
        from identity_clips import run_clips
    if "clips" in only:
        for r in run_clips(args.data, args.out):
            print(json.dumps(r), flush=True)
            results.append(r)
    for draw in range(1, args.draws + 1):  # the same clips, other people of the report half
        for r in run_clips(args.data, args.out / f"draw{draw}", draw=draw, without=False):
            print(json.dumps(r), flush=True)
            print(f"# draw {draw} {r['clip']}: {bars(r)}", flush=True)
            results.append(r)
    if results:
        met = sum(bars(r).endswith(": met") for r in results)
        print(
            f"# the bars (95% of each person's rows under one id, no false merge) met on "
            f"{met} of {len(results)} clips"
        )


def bars(r: dict) -> str:
    """One clip's re-identification against the bars, in words."""
    shares = [p["majority_share"] for p in r["with_reid"]["people"].values()]
    under, merges = sum(v < 0.95 for v in shares), r["with_reid"]["false_merges"]
    return (
        f"people under 95% {under} of {len(shares)} (lowest {min(shares):.2f}), false merges "
        f"{merges}: {'met' if not under and not merges else 'not met'}"
    )


if __name__ == "__main__":
    main()
