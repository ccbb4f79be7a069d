"""Leave-one-dataset-out: how a training recipe generalises to a source it never saw.

For each recipe and each of the three shared datasets, train on the other two with
``fervid-train`` and read the held-out one's test split through fervid's inference path (the
images fed as face crops, as ``fervid scan --crops`` does): FER2013 PublicTest against the FER+
majority, RAF-DB test in colour and converted to grayscale (the posed-grayscale case), the
AffectNet subset's test split. Selection inside each run uses only the two training sources'
validation data; the held-out figures choose between recipes, and no test split is used to
choose an epoch. Each fold's figures are kept as JSON beside its run, so the script resumes
where it stopped (training runs resume with ``--resume``).

    python bench/lodo.py --data ../shared/data --out ../runs/lodo \\
        --recipe base --recipe footage --recipe prior [--input-size 64 --epochs 8 --cap 7000]
    python bench/lodo.py --recipe base --recipe ft-source-natural --wise 0.5   # a fine-tune of
        # base's model per fold, and that fine-tune's weights mixed half and half with base's

The scale options exist because the CPU cannot train the full recipe three times per change:
figures at a reduced scale compare recipes with each other, not with the bundled model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

import fervid
from fervid.checkpoint import save_checkpoint
from fervid.train.average import average_checkpoints
from fervid.train.data import read_rafdb
from fervid.train.study import scan_metrics

sys.path.insert(0, str(Path(__file__).parent))
from eval_default_model import views  # noqa: E402

SOURCES = {"fer2013": "fer2013", "rafdb": "rafdb/basic", "affectnet": "affectnet-subset"}
HELD_OUT = {
    "fer2013": ["fer2013 val (FER+ majority)"],
    "rafdb": ["rafdb test", "rafdb test, grayscale"],
    "affectnet": ["affectnet-subset test"],
}
BASE = [
    "--channels", "rgb", "--random-gray", "0.2",
    "--batch-size", "128", "--lr", "2e-3", "--warmup-epochs", "1",
    "--balance", "sampler", "--balance-power", "0.5", "--source-power", "0", "--select", "acc",
    "--aug-scale", "0.6", "--rotate", "15", "--erase", "0.25",
    "--mixup", "0.2", "--cutmix", "1.0", "--mix-prob", "0.5",
    "--ema", "--ema-decay", "0.995", "--tta", "hflip", "--seed", "1", "--no-test",
]  # fmt: skip
RECIPES = {
    "base": [],
    "footage": ["--footage", "0.25"],
    "prior": ["--footage", "0.25", "--logit-adjust", "0"],
    "prior-only": ["--logit-adjust", "0"],
    "gray": ["--random-gray", "0.5"],  # colour no longer tells the sources apart as often
    # each source's class prior taken out of the loss: telling the sources apart no longer
    # tells the class (0.5: the logits keep the prior base's sampler gives, count ** 0.5)
    "source-prior": ["--logit-adjust", "0.5", "--logit-adjust-by", "source"],
    # the same with the logits keeping the pooled sources' own class frequencies (count ** 1)
    "source-prior-natural": ["--logit-adjust", "0", "--logit-adjust-by", "source"],
    # halfway between the two: count ** 0.75
    "source-prior-quarter": ["--logit-adjust", "0.25", "--logit-adjust-by", "source"],
    # the same two with another seed: how much of a difference is the seed's
    "base-seed2": ["--seed", "2"],
    "source-prior-seed2": ["--logit-adjust", "0.5", "--logit-adjust-by", "source", "--seed", "2"],
    # base's model fine-tuned for 2 epochs with each source's prior taken out (as the bundled
    # model can be, on this CPU); --wise reads it interpolated with base's weights (WiSE-FT)
    "ft-source-natural": [
        "--logit-adjust",
        "0",
        "--logit-adjust-by",
        "source",
        "--epochs",
        "2",
        "--lr",
        "5e-4",
        "--warmup-epochs",
        "0",
    ],
}
#: fine-tune recipes: the recipe whose best checkpoint each starts from (--init)
FINE_TUNED_FROM = {"ft-source-natural": "base"}
#: dlib's face-recognition ResNet, started from its face-trained weights (issue #39), with
#: source-prior-natural's loss (the bundled model's recipe); at least 104 px
RECIPES["dlib-source-natural"] = [
    *RECIPES["source-prior-natural"],
    "--pretrained",
    "--lr",
    "1e-3",
]
#: the network of each recipe (resnet18 unless named here)
ARCHS = {"dlib-source-natural": "dlib_resnet"}


def train_paths(data: Path, source: str) -> list[Path]:
    """Every training image of a source (RAF-DB: its train lines)."""
    root = data / SOURCES[source]
    if source == "rafdb":
        return list(read_rafdb(root).split("train").paths)
    return sorted((root / "train").rglob("*.jpg"))


def cap_file(data: Path, out: Path, cap: int) -> Path:
    """An --exclude list that keeps at most ``cap`` random training images per source."""
    path = out / f"cap{cap}.txt"
    out.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        lines = []
        for source in SOURCES:
            paths = train_paths(data, source)
            random.Random(0).shuffle(paths)
            lines += [str(Path(p).resolve()) for p in paths[cap:]]
        path.write_text("\n".join(lines) + "\n")
    return path


def train(data: Path, run: Path, held_out: str, extra: list[str], args, arch: str) -> Path:
    """Train ``arch`` on the two sources other than ``held_out``; returns the best
    checkpoint. Options in ``extra`` come last, so they override the scale options."""
    cmd = ["fervid-train", "--archs", arch, "--out", str(run), "--resume", "-q"]
    for source, sub in SOURCES.items():
        if source != held_out:
            cmd += ["--data", str(data / sub)]
    if held_out != "fer2013":
        cmd += ["--labels", "ferplus", "--eval-labels", "majority"]
    cmd += ["--exclude", str(data / "test-duplicates.txt")]
    if args.cap > 0:
        cmd += ["--exclude", str(cap_file(data, run.parent.parent, args.cap))]
    cmd += ["--input-size", str(args.input_size), "--epochs", str(args.epochs)]
    cmd += BASE + extra
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return best(run, arch)


def best(run: Path, arch: str = "resnet18") -> Path:
    """A fold's run folder -> its best checkpoint."""
    return run / arch / "best.safetensors"


def gray_view(colour: Path, tmp: Path) -> Path:
    """The same class-folder view with every image converted to grayscale (in ``tmp``)."""
    for p in colour.rglob("*.jpg"):
        q = tmp / p.relative_to(colour)
        q.parent.mkdir(parents=True, exist_ok=True)
        Image.open(p).convert("L").save(q, quality=95)
    return tmp


def held_out_tables(model, data: Path, held_out: str):
    """(view name, ``fervid.analyze_images`` table of its faces as crops) for each held-out
    test view of a fold."""
    with tempfile.TemporaryDirectory() as tmp:
        found = views(data, Path(tmp))
        if held_out == "rafdb":
            found["rafdb test, grayscale"] = (gray_view(found["rafdb test"][0], Path(tmp) / "g"),)
        for name in HELD_OUT[held_out]:
            yield name, fervid.analyze_images(found[name][0], model=model, crops=True)


def wise(start: Path, tuned: Path, alpha: float, out: Path) -> Path:
    """``alpha`` of the fine-tune's weights, ``1 - alpha`` of its starting point's."""
    state, meta = average_checkpoints([tuned, start], weights=[alpha, 1 - alpha])
    return save_checkpoint(out, state, meta)


def kept_figures(figures: Path, label: str, checkpoint, data: Path, held_out: str) -> dict:
    """The held-out figures kept in ``figures``; made once, from ``checkpoint()`` (a callable:
    the training or averaging runs only when the figures are not there yet)."""
    if not figures.exists():
        ckpt = checkpoint()
        print(f"{label}, without {held_out}:", flush=True)
        figures.write_text(json.dumps(held_out_figures(ckpt, data, held_out), indent=2))
    return json.loads(figures.read_text())


def held_out_figures(checkpoint: Path, data: Path, held_out: str) -> dict:
    """Accuracy, balanced accuracy and the disgust share ratio on the held-out test views."""
    model = fervid.load_model(checkpoint, device="cpu")
    out = {}
    for name, df in held_out_tables(model, data, held_out):
        m = scan_metrics(df, model.classes)
        cm = np.array(m["confusion"])
        d = list(model.classes).index("disgust")
        ratio = cm[:, d].sum() / max(cm[d].sum(), 1)
        out[name] = {
            "acc": round(m["acc"], 4),
            "balanced_acc": round(m["balanced_acc"], 4),
            "disgust_ratio": round(float(ratio), 2),
        }
        print(f"  {name}: {out[name]}", flush=True)
    return out


def table(results: dict) -> str:
    cols = [c for h in HELD_OUT.values() for c in h]
    head = "| recipe | " + " | ".join(cols) + " | mean acc / balanced |"
    lines = [head, "|---" * (len(cols) + 2) + "|"]
    for recipe, folds in results.items():
        cells, accs, bals = [], [], []
        for c in cols:
            f = next((v[c] for v in folds.values() if c in v), None)
            if f is None:
                cells.append("-")
                continue
            ratio = f"disgust x{f['disgust_ratio']}"
            cells.append(f"{f['acc']:.3f} / {f['balanced_acc']:.3f} ({ratio})")
            accs.append(f["acc"])
            bals.append(f["balanced_acc"])
        mean = f"{np.mean(accs):.3f} / {np.mean(bals):.3f}" if len(accs) == len(cols) else "-"
        lines.append(f"| {recipe} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--out", default="../runs/lodo", type=Path)
    ap.add_argument("--recipe", action="append", choices=sorted(RECIPES))
    ap.add_argument("--held-out", action="append", choices=sorted(SOURCES))
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--cap", type=int, default=7000, help="training images per source (0: all)")
    ap.add_argument(
        "--wise",
        type=float,
        action="append",
        default=[],
        help="also read each fine-tune recipe's model interpolated with its starting point's, "
        "this share of the fine-tune's weights (0-1; repeat)",
    )
    args = ap.parse_args()
    data, out = args.data.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{args.input_size}px-{args.epochs}ep-cap{args.cap}"
    results: dict = {}
    for held_out in args.held_out or list(SOURCES):  # fold by fold: comparable pairs early
        for recipe in args.recipe or ["base"]:
            run = out / tag / recipe / f"without-{held_out}"
            extra = RECIPES[recipe]
            if recipe in FINE_TUNED_FROM:
                start = best(out / tag / FINE_TUNED_FROM[recipe] / f"without-{held_out}")
                extra = ["--init", str(start), *extra]
            results.setdefault(recipe, {})[held_out] = kept_figures(
                run / "held_out.json",
                recipe,
                partial(train, data, run, held_out, extra, args, ARCHS.get(recipe, "resnet18")),
                data,
                held_out,
            )
            for alpha in args.wise if recipe in FINE_TUNED_FROM else []:
                name = f"{recipe} wise {alpha:g}"
                results.setdefault(name, {})[held_out] = kept_figures(
                    run / f"held_out_wise{alpha:g}.json",
                    name,
                    partial(wise, start, best(run), alpha, run / f"wise{alpha:g}.safetensors"),
                    data,
                    held_out,
                )
            print(table(results), flush=True)
    (out / f"{tag}.md").write_text(table(results) + "\n")
    os.sync()


if __name__ == "__main__":
    main()
