"""The lent-GPU job: the default model's candidates and the RAF-DB study, in one call.

Runs on the device machine from the repository root, with the pack of
``bench/pack_data.py`` carried in ``.gpu/``. Every phase is logged with its wall time:

1. unpack the data; a smoke run through every fervid-train feature used below (fail fast);
2. training speed of each architecture alone (``bench/train_speed.py``), to plan epochs:
   the study's input size and epoch count (the same for all five) and the candidates'
   epochs are chosen so that all the work fits before the deadline;
3. train concurrently until the deadline: two default-model candidates on FER2013 (FER+
   votes) + RAF-DB + AffectNet, both colour with random grayscale: the bundled model's recipe
   and the same with each dataset's class prior taken out of the loss (``--logit-adjust 0
   --logit-adjust-by source``, issue #23's choice, docs/default-model.md), and the study's
   five architectures on RAF-DB (EfficientNet-b7 in a process of its own);
4. export every candidate fp16 into ``$OUT/NAME/`` with its best validation accuracy (mean
   over the three datasets' validation splits) in the log: which one is bundled is decided
   afterwards, against the bars of issue #23; pack the run folders and logs into ``$OUT``.

    python3 bench/gpu_job.py --minutes 9.5                       # on the GPU machine
    python3 bench/gpu_job.py --minutes 3 --device cpu --small    # a dry run of the plumbing
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = time.time()
LOG: list[Path] = []  # also written here ($OUT/job.log), as it goes
STUDY = ["resnet18", "resnet34", "resnet101", "efficientnet_b3", "efficientnet_b7"]


def log(msg: str) -> None:
    line = f"[{time.time() - T0:6.1f} s] {msg}"
    print(line, flush=True)
    for path in LOG:
        with open(path, "a") as fh:
            fh.write(line + "\n")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(cmd))
    try:
        return subprocess.run(cmd, text=True, capture_output=True, **kw)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", f"{type(exc).__name__}: {exc}")


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fervid.train.cli", *args]


def candidate_args(d: Path, a) -> dict[str, list[str]]:
    common = [
        *("--data", str(d / "fer2013"), "--data", str(d / "rafdb/basic")),
        *("--data", str(d / "affectnet-subset")),
        *("--archs", "resnet18", "--input-size", str(a.cand_size), "--batch-size", "256"),
        *("--lr", "2e-3", "--warmup-epochs", "2", "--labels", "ferplus"),
        *("--eval-labels", "majority", "--exclude", str(d / "test-duplicates.txt")),
        *("--balance", "sampler", "--balance-power", "0.5", "--source-power", a.source_power),
        *("--select", "acc", "--aug-scale", "0.6", "--rotate", "15", "--erase", "0.25"),
        *("--mixup", "0.2", "--cutmix", "1.0", "--mix-prob", "0.5"),
        *("--ema", "--tta", "hflip", "--workers", "4", "--device", a.device, "--seed", "1"),
    ]
    rgb = [*common, "--channels", "rgb", "--random-gray", "0.2"]
    return {
        "cand-rgb": rgb,
        "cand-source": [*rgb, "--logit-adjust", "0", "--logit-adjust-by", "source"],
    }


def study_args(d: Path, a, size: int, epochs: int) -> list[str]:
    return [
        *("--data", str(d / "rafdb/basic"), "--input-size", str(size)),
        *("--epochs", str(epochs), "--batch-size", "128", "--lr", "1e-3"),
        *("--balance", "sampler", "--workers", "4", "--device", a.device, "--seed", "0"),
    ]


def speeds(a, epoch_images: int, archs: list[str], size: int, bs: int, ema=False) -> dict:
    cmd = [
        sys.executable,
        str(ROOT / "bench/train_speed.py"),
        *("--archs", ",".join(archs), "--input-size", str(size), "--batch-size", str(bs)),
        *("--epoch-images", str(epoch_images), "--device", a.device),
        *("--steps", "3" if a.small else "20", "--warmup", "1" if a.small else "5"),
    ] + (["--ema"] if ema else [])
    r = run(cmd, env=os.environ)
    log(r.stdout.strip() or r.stderr.strip()[-2000:])
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return {row["arch"]: row for row in rows}


def plan(a, window: float, study_speed: dict, cand_speed: dict) -> tuple[int, int, int]:
    """(study input size, study epochs, candidate epochs) so that the work fits the window
    (assuming the GPU is shared fairly; evaluation adds about 10%)."""
    budget = 0.85 * window
    per_epoch = 1.1 * sum(r["seconds_per_epoch"] for r in study_speed.values())
    size, study_epochs = a.study_size, 0
    for s in [x for x in (a.study_size, 96, 80) if x <= a.study_size]:
        scale = (s / a.study_size) ** 2
        study_epochs = math.floor(a.study_share * budget / (per_epoch * scale))
        size = s
        if study_epochs >= a.min_study_epochs:
            break
    study_epochs = max(min(study_epochs, 60), 3)
    used = study_epochs * per_epoch * (size / a.study_size) ** 2
    cand = 1.1 * cand_speed["resnet18"]["seconds_per_epoch"]
    cand_epochs = max(min(math.floor((budget - used) / (2 * cand)), 120), 3)
    return size, study_epochs, cand_epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=9.5, help="the whole job, end to end")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--pack", default=".gpu/data")
    ap.add_argument("--work", default="/tmp/fervid-gpu")
    ap.add_argument("--small", action="store_true", help="dry run: tiny sizes")
    ap.add_argument("--cand-size", type=int, default=112)
    ap.add_argument("--study-size", type=int, default=112)
    ap.add_argument("--study-share", type=float, default=0.4)
    ap.add_argument("--min-study-epochs", type=int, default=20)
    ap.add_argument(
        "--final",
        type=int,
        metavar="EPOCHS",
        help="only one candidate (--final-recipe), alone, for up to EPOCHS epochs in the time left",
    )
    ap.add_argument(
        "--final-recipe",
        default="cand-source",
        choices=["cand-rgb", "cand-source"],
        help="the candidate --final trains (cand-rgb: the bundled model's recipe)",
    )
    ap.add_argument("--source-power", default="0.5")
    a = ap.parse_args()
    if a.small:
        a.cand_size = a.study_size = 32
    out = Path(os.environ.get("OUT", "/tmp/fervid-gpu-out"))
    out.mkdir(parents=True, exist_ok=True)
    LOG.append(out / "job.log")
    work = Path(a.work)
    deadline = T0 + a.minutes * 60 - 35  # packing the results takes the rest
    os.environ.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="3")
    if a.device != "cpu":
        r = run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"])
        log((r.stdout + r.stderr).strip())
    log(run([sys.executable, "-c", _ENV_CHECK]).stdout.strip())

    data = work / "data"
    r = run(
        [sys.executable, str(ROOT / "bench/pack_data.py"), "--out", a.pack, "--unpack", str(data)]
    )
    log(r.stdout.strip() or r.stderr[-2000:])
    if r.returncode != 0:
        sys.exit(3)

    cands = candidate_args(data, a)
    if a.final:
        final(a, a.final_recipe, cands[a.final_recipe], work, out, deadline)
        return
    # 1. smoke: every feature the real runs use, tiny
    smoke = cands["cand-source"] + [
        "--input-size",
        "32",
        "--epochs",
        "1",
        "--out",
        str(work / "smoke"),
    ]
    r = run(train_cmd(*smoke), env=os.environ, timeout=240)
    log(f"smoke exit {r.returncode}: " + (r.stdout + r.stderr).strip()[-3000:])
    if r.returncode != 0:
        sys.exit(3)

    # 2. speed of each architecture alone, then the plan
    cand_speed = speeds(a, 49_400, ["resnet18"], a.cand_size, 256, ema=True)
    study_speed = speeds(a, 11_040, STUDY, a.study_size, 128)
    if len(study_speed) < len(STUDY) or not cand_speed:
        log("speed measurement failed")
        sys.exit(3)
    window = deadline - time.time() - 20  # decoding at the start of each run
    size, study_epochs, cand_epochs = plan(a, window, study_speed, cand_speed)
    if a.small:
        study_epochs, cand_epochs = 1, 2
    log(f"plan: study at {size} px for {study_epochs} epochs; candidates {cand_epochs} epochs")

    # 3. everything at once until the deadline
    runs = work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    budget_min = f"{(deadline - time.time() - 15) / 60:.2f}"
    jobs = {
        name: train_cmd(
            *args,
            "--epochs",
            str(cand_epochs),
            "--time-budget",
            budget_min,
            "--out",
            str(runs / name),
        )
        for name, args in cands.items()
    }
    study = study_args(data, a, size, study_epochs)
    jobs["study-b7"] = train_cmd(*study, "--archs", "efficientnet_b7", "--out", str(runs / "study"))
    jobs["study-rest"] = train_cmd(
        *study, "--archs", ",".join(STUDY[:4]), "--out", str(runs / "study")
    )
    procs = {}
    for name, cmd in jobs.items():
        log(f"start {name}: {' '.join(cmd)}")
        fh = open(runs / f"{name}.log", "w")  # noqa: SIM115 - open while the process runs
        procs[name] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT), fh)
    while time.time() < deadline and any(p.poll() is None for p, _ in procs.values()):
        time.sleep(2)
    for name, (p, _) in procs.items():
        if p.poll() is None:
            log(f"{name}: still running at the deadline; stopped")
            p.send_signal(signal.SIGINT)
    time.sleep(3)
    for name, (p, fh) in procs.items():
        if p.poll() is None:
            p.kill()
        p.wait()
        fh.close()
        log(f"{name}: exit {p.returncode}")

    # 4. report, selection, export, pack
    finish(runs, out, work)


def final(a, recipe: str, args: list[str], work: Path, out: Path, deadline: float) -> None:
    """The chosen candidate's recipe, alone on the GPU, for as many epochs as fit."""
    name = "final-" + recipe.removeprefix("cand-")
    runs = work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    budget_min = f"{(deadline - time.time() - 45) / 60:.2f}"  # decoding comes first
    cmd = train_cmd(
        *args,
        "--epochs",
        str(a.final),
        "--time-budget",
        budget_min,
        "--workers",
        "8",
        "--out",
        str(runs / name),
    )
    log(f"start {name}: {' '.join(cmd)}")
    with open(runs / f"{name}.log", "w") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        while time.time() < deadline and p.poll() is None:
            time.sleep(2)
        if p.poll() is None:
            log(f"{name}: still running at the deadline; stopped")
            p.kill()
        p.wait()
    log(f"{name}: exit {p.returncode}")
    acc, epoch = best_val_acc(runs / name / "resnet18")
    log(f"{name}: best val acc {acc:.4f} at epoch {epoch}")
    src = runs / name / "resnet18" / "best.safetensors"
    if src.exists():
        export(src, work, out, name)
    pack_runs(runs, out)


def export(src: Path, work: Path, out: Path, name: str) -> None:
    """fp16 export of ``src`` into ``out/NAME/``, split into parts that fit the way back
    (16 MiB a file; ``cat model.part* > model.safetensors`` joins them)."""
    model = work / f"{name}.safetensors"
    r = run(train_cmd("export", str(src), str(model), "--tta", "hflip"), env=os.environ)
    log(f"exported {name}: " + (r.stdout + r.stderr).strip()[-500:])
    if model.exists():
        (out / name).mkdir(parents=True, exist_ok=True)
        blob = model.read_bytes()
        step = 15 * 2**20
        for k in range(0, len(blob), step):
            (out / name / f"model.part{k // step}").write_bytes(blob[k : k + step])


def pack_runs(runs: Path, out: Path) -> None:
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for p in sorted(runs.rglob("*")):
            if p.is_file() and p.suffix not in (".pt", ".safetensors", ".partial"):
                tar.add(p, arcname=str(p.relative_to(runs)))
    log(f"done in {time.time() - T0:.0f} s")


def best_val_acc(run: Path) -> tuple[float, int]:
    """The best validation accuracy in a run's history (finished or stopped) and its epoch."""
    import csv

    path = run / "history.csv"
    if not path.exists():
        return -1.0, 0
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    best = max(rows, key=lambda r: float(r["val_acc"]), default=None)
    return (float(best["val_acc"]), int(best["epoch"])) if best else (-1.0, 0)


def finish(runs: Path, out: Path, work: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import dataclasses\n"
        "from fervid.train.study import finished_result, write_report\n"
        "from fervid.train.run import TrainConfig\n"
        "out = Path(sys.argv[1]); cfg = TrainConfig(data=['x'], epochs=1)\n"
        f"rs = [finished_result(out / a, cfg) for a in {STUDY!r}]\n"
        "write_report([r for r in rs if r], out)\n"
        "print([(r.arch, r.epochs, r.acc) for r in rs if r])\n"
    )
    r = run([sys.executable, "-c", code, str(runs / "study")], env=os.environ)
    log("study report: " + (r.stdout + r.stderr).strip()[-1500:])
    for name in sorted(p.name for p in runs.glob("cand-*") if p.is_dir()):
        acc, epoch = best_val_acc(runs / name / "resnet18")
        log(f"{name}: best val acc {acc:.4f} at epoch {epoch}")
        if (runs / name / "resnet18" / "best.safetensors").exists():
            export(runs / name / "resnet18" / "best.safetensors", work, out, name)
    pack_runs(runs, out)


_ENV_CHECK = """
import torch, torchvision, PIL, cv2, numpy, os, glob
from PIL import features
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'PIL', PIL.__version__,
      'webp', features.check('webp'), 'cv2', cv2.__version__, 'numpy', numpy.__version__)
cuda = torch.cuda.is_available()
print('cuda', cuda, torch.cuda.get_device_name(0) if cuda else '')
home = os.path.expanduser('~')
print('cached weights:', glob.glob(home + '/.cache/torch/hub/checkpoints/*')[:10],
      glob.glob(home + '/.cache/huggingface/hub/*')[:10])
"""


if __name__ == "__main__":
    main()
