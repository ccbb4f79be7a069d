"""Several datasets in one run, held-out validation, exclusions, soft labels, the new
regularisers and schedules, time budgets and resumable studies (tiny generated data)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fervid.checkpoint import load_checkpoint
from fervid.train.augment import BatchAugment, BatchMix, FootageAugment
from fervid.train.cli import cli
from fervid.train.data import DataError, EpochSampler, Split, logit_adjustment
from fervid.train.engine import AdjustedLoss, SourceAdjustedLoss
from fervid.train.schedule import LRSchedule
from fervid.train.sources import holdout_split, open_sources, sampling_weights

from train_fixtures import make_folder_dataset, make_rafdb

FAST = ["--archs", "resnet18", "--input-size", "32", "--batch-size", "32", "--seed", "0", "-q"]


def _train(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("sets")
    folders = make_folder_dataset(d / "toyfer", per_class=(40, 40, 40), val_per_class=10)
    raf = make_rafdb(d / "raf", counts_train=[12] * 7, counts_test=[3] * 7)
    return folders, raf


def _votes_csv(
    root,
    rows,
    header=(
        "path",
        "neutral",
        "happiness",
        "surprise",
        "sadness",
        "anger",
        "disgust",
        "fear",
        "contempt",
        "unknown",
        "NF",
    ),
):
    path = root / "votes.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_sources_map_classes_and_hold_out_validation(two_sets):
    folders, raf = two_sets
    classes, sources = open_sources([folders, raf])
    assert classes == ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
    toy, rafdb = sources
    assert (toy.name, toy.val_split, toy.test) == ("toyfer", "val", None)
    # folder names happy/sad land on the seven classes' indices
    assert sorted(set(toy.train.labels)) == [0, 3, 4]
    assert rafdb.val_split == "holdout" and len(rafdb.val) == 7 and len(rafdb.test) == 21
    assert len(rafdb.train) == 77
    train_paths = {str(p) for p in rafdb.train.paths}
    assert not train_paths & {str(p) for p in rafdb.val.paths}
    assert not train_paths & {str(p) for p in rafdb.test.paths}


def test_holdout_is_stratified_and_fixed():
    split = Split([f"{i}.jpg" for i in range(100)], [i % 4 for i in range(100)])
    rest, held = holdout_split(split, 0.2, 4)
    assert len(held) == 20 and np.bincount(held.labels).tolist() == [5, 5, 5, 5]
    rest2, held2 = holdout_split(split, 0.2, 4)
    assert held.paths == held2.paths and len(rest) == 80


def test_exclusion_file_leaves_training_images_out(two_sets, tmp_path):
    folders, raf = two_sets
    listed = sorted((folders / "train" / "happy").iterdir())[:5]
    ex = tmp_path / "dups.txt"
    ex.write_text("# copies\n" + "\n".join(os.path.relpath(p, tmp_path) for p in listed) + "\n")
    _, sources = open_sources([folders, raf], exclude=[ex])
    assert sources[0].info["excluded"] == 5 and len(sources[0].train) == 115
    assert not {str(p) for p in listed} & {str(p) for p in sources[0].train.paths}


def test_sampling_weights_balance_classes_and_sources():
    labels = [0] * 30 + [1] * 10 + [0] * 5 + [1] * 5
    ids = torch.tensor([0] * 40 + [1] * 10)
    w = sampling_weights(labels, ids, 2, power=1.0, source_power=0.0)
    share = lambda mask: float(w[mask].sum() / w.sum())  # noqa: E731
    lab = torch.tensor(labels)
    assert share(lab == 0) == pytest.approx(0.5)
    w = sampling_weights(labels, ids, 2, power=0.0, source_power=1.0)
    assert float(w[ids == 1].sum() / w.sum()) == pytest.approx(0.5)


def test_soft_labels_votes_become_targets(two_sets, tmp_path):
    folders, _ = two_sets
    files = sorted((folders / "train").rglob("*.png"))
    rel = [os.path.relpath(p, tmp_path) for p in files]
    rows = [[r, 1, 8, 1, 0, 0, 0, 0, 0, 0, 0] for r in rel[:50]]
    rows += [[r, 0, 0, 0, 0, 0, 0, 0, 1, 4, 5] for r in rel[50:53]]  # mostly unknown / NF
    rows += [[r, "", "", "", "", "", "", "", "", "", ""] for r in rel[53:55]]  # no votes
    votes = _votes_csv(tmp_path, rows)
    classes, (src,) = open_sources([folders], soft_labels=[votes])
    assert src.info["soft_labelled"] == 50 and src.info["soft_skipped"] == 5
    assert len(src.train) == 115 and src.train.soft.shape == (115, 3)
    row = src.train.soft[src.train.paths.index(files[0])]
    # classes here: surprise, happiness, sadness; neutral is not a class of this run: dropped
    assert row.tolist() == pytest.approx([0.1 / 0.9 * 1, 8 / 9, 0.0])
    assert src.train.labels[src.train.paths.index(files[0])] == 1  # the votes' majority
    assert np.allclose(src.train.soft.sum(1), 1)


def test_soft_label_errors_are_one_line(two_sets, tmp_path):
    folders, _ = two_sets
    first = os.path.relpath(next((folders / "train").rglob("*.png")), tmp_path)
    cases = {
        "missing": ([["nope/x.png", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]], "votes.csv:2: image not found"),
        "badnum": ([[first, "x", 0, 0, 0, 0, 0, 0, 0, 0, 0]], "votes.csv:2: not a number: 'x'"),
        "short": ([[first, 1, 2]], "votes.csv:2: 3 fields, expected 11"),
        "twice": ([[first] + [1] * 10, [first] + [1] * 10], "votes.csv:3: "),
    }
    for rows, msg in cases.values():
        path = _votes_csv(tmp_path, rows)
        with pytest.raises(DataError, match=msg.replace("(", r"\(")):
            open_sources([folders], soft_labels=[path])
    bad = _votes_csv(tmp_path, [[first, 1]], header=("file", "happy"))
    r = _train("--data", folders, "--soft-labels", bad, "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and "no 'path' column" in r.output


def test_batch_mix_mixes_targets():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for mix in (BatchMix(3, mixup=0.4), BatchMix(3, cutmix=1.0)):
        xm, t = mix(x, y, g)
        assert xm.shape == x.shape and t.shape == (8, 3)
        assert torch.allclose(t.sum(1), torch.ones(8))
        assert not torch.equal(xm, x)
    xm, t = BatchMix(3)(x, y, g)  # off: one-hot targets, images untouched
    assert torch.equal(xm, x) and torch.equal(t.argmax(1), y)


def test_random_gray_turns_colour_to_luma():
    aug = BatchAugment(scale=(1, 1), rotate=0, jitter=0, erase=0, gray=1.0, hflip=0)
    x = torch.rand(4, 3, 8, 8)
    out = aug(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


def test_footage_degrades_every_image_reproducibly():
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    face = (0.5 + 0.4 * torch.sin(xx / 3) * torch.cos(yy / 5)).expand(8, 3, 48, 48).clone()
    out = FootageAugment(1.0)(face, torch.Generator().manual_seed(0))
    again = FootageAugment(1.0)(face, torch.Generator().manual_seed(0))
    assert out.shape == face.shape and torch.equal(out, again)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    changed = (out - face).abs().flatten(1).mean(1)
    assert bool((changed > 0.01).all()), changed
    assert torch.equal(FootageAugment(0.0)(face, torch.Generator()), face)
    gray = FootageAugment(1.0)(face[:, :1], torch.Generator().manual_seed(1))
    assert gray.shape == (8, 1, 48, 48)
    # half of the images untouched by each degradation: some images keep more of the face
    half = FootageAugment(0.3)(face, torch.Generator().manual_seed(2))
    assert bool(((half - face).abs().flatten(1).amax(1) == 0).any())


def test_logit_adjustment_trains_the_natural_prior_under_balanced_draws():
    """A logistic regression on classes 9:1 drawn balanced: plain cross-entropy learns the
    drawn prior (over-predicts the rare class); the adjusted loss learns the natural one."""
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 900 + [1] * 100)
    x = (labels.float() * 1.0 + torch.randn(1000, generator=g)).unsqueeze(1)
    sampler = EpochSampler(labels, 2, mode="balanced", seed=0)
    adj = logit_adjustment(labels, 2, 0.0, sampler.weights)
    assert float(adj[1] - adj[0]) == pytest.approx(-np.log(1 / 9), abs=1e-4)
    assert torch.allclose(logit_adjustment(labels, 2, 1.0), torch.log(torch.tensor([0.9, 0.1])))

    def rare_share(criterion):
        torch.manual_seed(0)
        lin = torch.nn.Linear(1, 2)
        opt = torch.optim.SGD(lin.parameters(), lr=0.5)
        for epoch in range(60):
            idx = sampler.indices(epoch)
            loss = criterion(lin(x[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(lin(x).detach().softmax(1)[:, 1].mean())

    plain = rare_share(torch.nn.CrossEntropyLoss())
    adjusted = rare_share(AdjustedLoss(torch.nn.CrossEntropyLoss(), adj))
    assert plain > 0.3 and abs(adjusted - 0.1) < 0.03, (plain, adjusted)


def test_footage_and_logit_adjust_train_and_are_saved(two_sets, tmp_path):
    folders, _ = two_sets
    out = tmp_path / "o"
    r = _train("--data", folders, "--out", out, "--epochs", "1", "--footage", "0.5",
               "--logit-adjust", "0", *FAST)  # fmt: skip
    assert r.exit_code == 0, r.output
    config = json.loads((out / "resnet18" / "config.json").read_text())
    assert config["footage"] == 0.5 and config["logit_adjust"] == 0.0


def test_per_source_logit_adjustment_stops_the_source_from_telling_the_class():
    """Two sources with opposite class mixes (9:1 and 1:9) and a feature that says which
    source an image is from: plain cross-entropy leans on that feature to guess the class;
    with each source's prior taken out (``groups``) it learns next to nothing from it."""
    g = torch.Generator().manual_seed(0)
    source = torch.tensor([0] * 1000 + [1] * 1000)
    labels = torch.cat([torch.tensor([0] * 900 + [1] * 100), torch.tensor([0] * 100 + [1] * 900)])
    signal = labels.float() + torch.randn(2000, generator=g)
    x = torch.stack([signal, source.float() * 2 - 1], dim=1)
    rows = logit_adjustment(labels, 2, 0.0, groups=source)
    assert rows.shape == (2, 2)
    assert torch.allclose(rows[0], torch.log(torch.tensor([0.9, 0.1]) / 0.5), atol=1e-5)
    assert torch.allclose(rows[1], torch.log(torch.tensor([0.1, 0.9]) / 0.5), atol=1e-5)
    targets = torch.cat([torch.nn.functional.one_hot(labels, 2).float(), rows[source]], 1)
    mixed, t = BatchMix(2, mixup=0.4)(torch.zeros(2000, 1, 1, 1), targets, g)
    assert t.shape == (2000, 4) and torch.allclose(t[:, :2].sum(1), torch.ones(2000))

    def source_weight(criterion, y):
        torch.manual_seed(0)
        lin = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(lin.parameters(), lr=0.5)
        for _ in range(300):
            loss = criterion(lin(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        w = lin.weight.detach()
        return float(w[1, 1] - w[0, 1])

    plain = source_weight(torch.nn.CrossEntropyLoss(), labels)
    adjusted = source_weight(SourceAdjustedLoss(torch.nn.CrossEntropyLoss()), targets)
    assert plain > 1.0 and abs(adjusted) < 0.15, (plain, adjusted)
    # validation targets (plain class indices) pass through unadjusted
    logits = torch.randn(4, 2)
    plain_loss = torch.nn.functional.cross_entropy(logits, labels[:4])
    assert torch.isclose(
        SourceAdjustedLoss(torch.nn.CrossEntropyLoss())(logits, labels[:4]), plain_loss
    )


def test_logit_adjust_by_source_trains_streamed_and_needs_a_tau(two_sets, tmp_path):
    folders, raf = two_sets
    out = tmp_path / "o"
    r = _train("--data", folders, "--data", raf, "--out", out, "--epochs", "1",
               "--logit-adjust", "0.5", "--logit-adjust-by", "source",
               "--cache", "stream", "--workers", "0", *FAST)  # fmt: skip
    assert r.exit_code == 0, r.output
    config = json.loads((out / "resnet18" / "config.json").read_text())
    assert config["logit_adjust_by"] == "source" and config["logit_adjust"] == 0.5
    r = _train("--data", folders, "--out", tmp_path / "p", "--logit-adjust-by", "source", *FAST)
    assert r.exit_code != 0 and "needs --logit-adjust" in r.output, r.output


def test_plateau_schedule_cuts_the_rate_and_cosine_replans():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    s = LRSchedule(opt, kind="plateau", total_steps=100, warmup_steps=0, patience=1)
    for metric in (0.5, 0.6, 0.6, 0.6):
        s.epoch_end(metric)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    opt = torch.optim.SGD([p], lr=0.1)
    c = LRSchedule(opt, kind="cosine", total_steps=10, warmup_steps=0)
    for _ in range(5):
        c.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 * (1 + np.cos(np.pi * 0.5)))
    c.set_total(20)
    assert opt.param_groups[0]["lr"] > 0.08
    d = LRSchedule(opt, kind="cosine", total_steps=20)
    d.load_state_dict(c.state_dict())
    assert d.state_dict() == c.state_dict()


def test_multi_source_run_with_soft_labels_and_mixing(two_sets, tmp_path):
    folders, raf = two_sets
    files = sorted((folders / "train").rglob("*.png"))
    votes = _votes_csv(
        tmp_path, [[os.path.relpath(p, tmp_path), 0, 5, 5, 0, 0, 0, 0, 0, 0, 0] for p in files]
    )
    out = tmp_path / "o"
    r = _train(
        "--data",
        folders,
        "--data",
        raf,
        "--soft-labels",
        votes,
        "--eval-labels",
        "majority",
        "--epochs",
        2,
        "--mixup",
        0.2,
        "--cutmix",
        1.0,
        "--random-gray",
        0.2,
        "--source-power",
        0.5,
        "--schedule",
        "plateau",
        "--out",
        out,
        *FAST,
    )
    assert r.exit_code == 0, r.output
    run = out / "resnet18"
    cfg = json.loads((run / "config.json").read_text())
    assert [s["name"] for s in cfg["sources"]] == ["toyfer", "rafdb"]
    assert cfg["sources"][0]["soft_labelled"] == 120
    assert cfg["sources"][0]["val_labels"] == "soft-label majority"
    with open(run / "history.csv") as fh:
        head = next(csv.reader(fh))
    assert {"toyfer_acc", "rafdb_balanced_acc", "val_acc"} <= set(head)
    m = json.loads((run / "metrics.json").read_text())
    assert m["split"] == "val"  # toyfer has no test split: headline is validation
    assert "test" in m["sources"]["rafdb"] and "test" not in m["sources"]["toyfer"]
    _, meta = load_checkpoint(run / "best.safetensors")
    assert meta.dataset == "toyfer+rafdb" and len(meta.classes) == 7
    assert set(meta.metrics["sources"]) == {"toyfer", "rafdb"}


def test_time_budget_plans_epochs(two_sets, tmp_path):
    folders, _ = two_sets
    r = _train("--data", folders, "--epochs", 5, "--time-budget", 0.0001, "--out", tmp_path, *FAST)
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "resnet18" / "metrics.json").read_text())
    assert m["epochs"] == 1


def test_resume_refuses_changed_settings_before_touching_the_run(two_sets, tmp_path):
    folders, _ = two_sets
    r = _train("--data", folders, "--epochs", 1, "--out", tmp_path, *FAST)
    assert r.exit_code == 0, r.output
    before = (tmp_path / "resnet18" / "config.json").read_text()
    args = ["--data", folders, "--epochs", 2, "--out", tmp_path, "--resume", *FAST]
    args[args.index("32")] = "40"  # --input-size 40
    r = _train(*args)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "input_size = 32, not 40" in r.output
    assert (tmp_path / "resnet18" / "config.json").read_text() == before


def test_study_resume_skips_finished_architectures(two_sets, tmp_path):
    folders, _ = two_sets
    args = ["--data", folders, "--epochs", 1, "--out", tmp_path, *FAST]
    assert _train(*args).exit_code == 0
    last = tmp_path / "resnet18" / "last.pt"
    stamp = last.stat().st_mtime_ns
    r = _train(*args, "--resume")
    assert r.exit_code == 0, r.output
    assert last.stat().st_mtime_ns == stamp  # not trained again
    with open(tmp_path / "comparison.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["arch"] == "resnet18" and rows[0]["split"] == "val"


def test_resume_refuses_another_objective():
    """A run started with one loss is not continued under another (it would train a mixture),
    while a run saved before an option existed still resumes."""
    from fervid.train.checkpoints import RunState
    from fervid.train.data import DataError

    old = {"epochs": 4, "logit_adjust": 0.5, "logit_adjust_by": "source", "balance": "sampler"}
    state = RunState(planned=4, epoch=2, saved={"config": old})
    state.check_compatible({**old, "out": "runs"})
    for key, value in (("logit_adjust", 0.0), ("logit_adjust_by", "all"), ("balance", "none")):
        with pytest.raises(DataError, match=f"started with {key} = "):
            state.check_compatible({**old, key: value, "out": "runs"})
    older = RunState(planned=4, epoch=2, saved={"config": {"epochs": 4}})
    older.check_compatible({**old, "out": "runs"})
