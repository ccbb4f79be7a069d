"""fervid's benchmark suite: speed and memory, side by side with naive baselines, in one run.

    python bench/run.py            # the whole suite (about 30 minutes on a 2-core CPU)
    python bench/run.py --quick    # a few minutes: smaller inputs, fewer architectures

Inputs are generated from public-domain photos (see samples/make_samples.py) into
bench/out/. Results go to bench/out/results.json and, with --record, bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "samples"))
import make_samples as ms  # noqa: E402


def log(msg: str) -> None:
    print(msg, flush=True)


# -- inputs ------------------------------------------------------------------------------


def four_faces() -> list[np.ndarray]:
    a, g = ms.portraits()
    return [a, g, np.ascontiguousarray(a[:, ::-1]), np.ascontiguousarray(g[:, ::-1])]


def make_videos(out: Path, quick: bool) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    frames = 100 if quick else 300
    specs = {"720p_2faces": (1280, 720, ms.portraits()[:2])}
    if not quick:
        specs["1080p_4faces"] = (1920, 1080, four_faces())
    paths = {}
    for name, (w, h, faces) in specs.items():
        p = out / f"{name}_{frames}.mp4"
        if not p.exists():
            log(f"making {p.name}")
            ms.write_video(p, width=w, height=h, fps=25, seconds=frames / 25, faces=faces)
        paths[name] = p
    return paths


def make_images(out: Path, n: int, seed: int = 0, small: bool = False) -> Path:
    """Photos of 1-3 portraits: 2048x1536, or (``small``) the common web size, a long side
    of 300-800 px at 4:3 or 3:4."""
    from PIL import Image

    d = out / (f"photos_small_{n}" if small else f"photos_{n}")
    if d.exists() and len(list(d.glob("*.jpg"))) == n:
        return d
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    faces = four_faces()
    log(f"making {n} photos")
    for i in range(n):
        k = rng.randint(1, 3)
        if small:
            long = rng.randint(300, 800)
            w, h = (long, long * 3 // 4) if rng.random() < 0.5 else (long * 3 // 4, long)
            k = min(k, 2)
        else:
            w, h = 2048, 1536
        img = ms.scene(rng.uniform(0, 10), w, h, rng.sample(faces, k), motion=1.0)
        Image.fromarray(img).save(d / f"img_{i:04d}.jpg", quality=90)
    return d


# -- video -------------------------------------------------------------------------------


def decode_only(path: Path) -> float:
    import av

    t = time.perf_counter()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for f in c.decode(s):
            f.to_ndarray(format="rgb24")
            n += 1
    return n / (time.perf_counter() - t)


def naive_video(path: Path, model, out: Path) -> tuple[float, list[np.ndarray]]:
    """The usual way: OpenCV reads, MTCNN on the full frame, each face alone, OpenCV writes."""
    import cv2
    from facenet_pytorch import MTCNN

    from fervid.faces import Faces

    mtcnn = MTCNN(keep_all=True, device="cpu")
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    boxes_per_frame = []
    t = time.perf_counter()
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes, _ = mtcnn.detect(rgb)
        boxes = np.zeros((0, 4), np.float32) if boxes is None else boxes.astype(np.float32)
        boxes_per_frame.append(boxes)
        for b in boxes:
            crop = model.crops(rgb, Faces(b[None], [1.0]))
            p = model.predict(crop)[0]
            label = f"{model.classes[int(p.argmax())]} {p.max():.2f}"
            x1, y1, x2, y2 = (int(v) for v in b)
            cv2.rectangle(bgr, (x1, y1), (x2, y2), (0, 255, 0), 2)
            cv2.putText(bgr, label, (x1, y1 - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2)
        writer.write(bgr)
        n += 1
    writer.release()
    cap.release()
    return n / (time.perf_counter() - t), boxes_per_frame


def fervid_video(path: Path, model, out: Path | None, **kw) -> tuple[float, object]:
    import fervid

    t = time.perf_counter()
    df = fervid.analyze_video(path, model=model, annotated=out, **kw)
    dt = time.perf_counter() - t
    return df.attrs["fervid"].frames / dt, df


def recall(reference: list[np.ndarray], df, frames: set[int] | None = None) -> float:
    """Share of the full-resolution detections matched by fervid's boxes at IoU >= 0.5."""
    from fervid.track import iou_matrix

    found = {}
    for fr, g in df.dropna(subset=["face"]).groupby("frame"):
        found[int(fr)] = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    total = hit = 0
    for i, ref in enumerate(reference):
        if frames is not None and i not in frames:
            continue
        total += len(ref)
        if len(ref) and i in found and len(found[i]):
            m = iou_matrix(ref, found[i])
            # one-to-one greedy matching
            while m.size and m.max() >= 0.5:
                r, c = np.unravel_index(np.argmax(m), m.shape)
                hit += 1
                m[r, :] = 0
                m[:, c] = 0
    return hit / total if total else 1.0


def bench_video(videos: dict[str, Path], out: Path) -> list[dict]:
    from fervid.classify import load_model

    model = load_model(device="cpu")
    usual = load_model(device="cpu", backend="torch")  # the usual loop runs PyTorch
    rows = []
    for name, path in videos.items():
        log(f"[video] {name}: decode only")
        dec = decode_only(path)
        log(f"[video] {name}: naive baseline")
        naive_fps, ref = naive_video(path, usual, out / f"{name}.naive.mp4")
        res = {
            "clip": name,
            "frames": len(ref),
            "decode_only_fps": round(dec, 1),
            "naive_fps": round(naive_fps, 2),
        }
        for label, kw in (("default", {}), ("every3", {"every": 3}), ("no_video", {})):
            log(f"[video] {name}: fervid {label}")
            target = None if label == "no_video" else out / f"{name}.{label}.fervid.mp4"
            fps, df = fervid_video(path, model, target, **kw)
            analysed = set(int(x) for x in df["frame"].unique())
            res[f"{label}_fps"] = round(fps, 2)
            res[f"{label}_speedup"] = round(fps / naive_fps, 2)
            res[f"{label}_recall"] = round(recall(ref, df, analysed), 4)
        rows.append(res)
        log(json.dumps(res))
    return rows


# -- images ------------------------------------------------------------------------------


def bench_images(folder: Path) -> dict:
    from facenet_pytorch import MTCNN
    from PIL import Image

    from fervid.classify import load_model
    from fervid.faces import Faces
    from fervid.photos import iter_images

    model = load_model(device="cpu")
    usual = load_model(device="cpu", backend="torch")  # the usual loop runs PyTorch
    paths = sorted(folder.glob("*.jpg"))
    log(f"[images] naive loop on {len(paths)} images")
    mtcnn = MTCNN(keep_all=True, device="cpu")
    t = time.perf_counter()
    n_naive = 0
    naive_boxes = {}
    for p in paths:
        img = np.asarray(Image.open(p).convert("RGB"))
        boxes, _ = mtcnn.detect(img)
        naive_boxes[p.name] = np.zeros((0, 4), np.float32) if boxes is None else boxes
        for b in [] if boxes is None else boxes:
            usual.predict(usual.crops(img, Faces(b[None].astype(np.float32), [1.0])))
            n_naive += 1
    naive = len(paths) / (time.perf_counter() - t)
    log(f"[images] fervid scan on {len(paths)} images")
    t = time.perf_counter()
    results = list(iter_images(folder, model=model))
    fast = len(paths) / (time.perf_counter() - t)
    n_fervid = sum(len(r.faces) for r in results)
    matched = sum(_matches(naive_boxes[r.path.name], r.faces.boxes) for r in results)
    res = {
        "images": len(paths),
        "naive_images_per_s": round(naive, 2),
        "fervid_images_per_s": round(fast, 2),
        "speedup": round(fast / naive, 2),
        "faces_naive": n_naive,
        "faces_fervid": n_fervid,
        "naive_faces_found_by_fervid": round(matched / max(n_naive, 1), 4),
    }
    log(json.dumps(res))
    return res


# -- training ----------------------------------------------------------------------------


def bench_train(archs: list[str], out: Path, steps: int) -> list[dict]:
    """Each architecture in a fresh process: EfficientNet-b7 at 600 px needs several GB, and
    what earlier sections left in this process (or an out-of-memory kill) must not count."""
    rows = []
    for arch in archs:
        log(f"[train] {arch}")
        cmd = [sys.executable, __file__, "--train-arch", arch, "--steps", str(steps)]
        proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
            log(f"[train] {arch} failed: {tail}")
            rows.append({"arch": arch, "error": tail[:200]})
            continue
        rows.append(json.loads(lines[-1][len("RESULT ") :]))
        log(json.dumps(rows[-1]))
    return rows


def train_one(arch: str, out: Path, steps: int) -> dict:
    """fervid-train's loop against a naive loop for one architecture at its input size."""
    import torch
    import torchvision.transforms as T
    from PIL import Image

    from fervid.architectures import arch_spec, build_model
    from fervid.runtime import Runtime
    from fervid.train.augment import BatchAugment
    from fervid.train.data import SplitData, open_dataset
    from fervid.train.engine import train_one_epoch

    data = out / "train_data"
    if not data.exists():
        rng = np.random.default_rng(0)
        for split, n in (("train", 64), ("val", 8)):
            for c in ("happy", "sad", "angry", "neutral"):
                d = data / split / c
                d.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    Image.fromarray(rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)).save(
                        d / f"{i}.jpg"
                    )
    spec = open_dataset(data)
    split = spec.split("train")
    size = arch_spec(arch).input_size
    # b7 at 600 px: batch 4 was OOM-killed on this 24 GB machine (in one process with the
    # earlier sections, during the naive loop); batch 2 in a fresh process fits
    bs = 2 if size >= 600 else 16
    n_img = bs * steps
    res = {"arch": arch, "input_size": size, "batch_size": bs}
    # fervid: decoded once, batch augmentation, bf16 autocast + channels_last (AMX)
    for label, amp in (("fervid_fp32", "off"), ("fervid_bf16", "bf16")):
        rt = Runtime.create("cpu", amp)
        torch.manual_seed(0)
        model = rt.prepare_model(build_model(arch, 4))
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        sd = SplitData(split, size, "rgb", cache="memory")
        idx = torch.randint(0, len(sd), (n_img + bs,))
        g = torch.Generator().manual_seed(0)
        kw = dict(runtime=rt, mean=[0.5] * 3, std=[0.25] * 3, augment=BatchAugment(), generator=g)
        crit = torch.nn.CrossEntropyLoss()
        train_one_epoch(model, sd.batches(idx[:bs], bs), crit, opt, None, **kw)  # warm-up
        r = train_one_epoch(model, sd.batches(idx[bs:], bs), crit, opt, None, **kw)
        res[f"{label}_images_per_s"] = round(r["images_per_s"], 2)
    # naive: PIL decode + torchvision transforms per image in a DataLoader, fp32, NCHW
    tf = T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.7, 1.0)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.3, 0.3, 0.3),
            T.ToTensor(),
            T.Normalize([0.5] * 3, [0.25] * 3),
        ]
    )

    loader = torch.utils.data.DataLoader(
        _Files(split, tf, n_img + bs), batch_size=bs, num_workers=2, shuffle=True
    )
    torch.manual_seed(0)
    model = build_model(arch, 4)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    model.train()
    seen, t0 = 0, None
    for k, (x, y) in enumerate(loader):
        if k == 1:
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k >= 1:
            seen += len(y)
    res["naive_images_per_s"] = round(seen / (time.perf_counter() - t0), 2)
    res["speedup"] = round(res["fervid_bf16_images_per_s"] / res["naive_images_per_s"], 2)
    return res


class _Files:
    """The naive dataset: decode and transform every image on every access."""

    def __init__(self, split, tf, n):
        self.split, self.tf, self.n = split, tf, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        from PIL import Image

        p = self.split.paths[i % len(self.split)]
        return self.tf(Image.open(p).convert("RGB")), self.split.labels[i % len(self.split)]


# -- memory ------------------------------------------------------------------------------


def _matches(ref: np.ndarray, found: np.ndarray) -> int:
    """How many of ``ref``'s boxes a box of ``found`` matches at IoU >= 0.5 (one to one)."""
    from fervid.track import iou_matrix

    m = iou_matrix(np.asarray(ref, np.float32).reshape(-1, 4), found)
    hit = 0
    while m.size and m.max() >= 0.5:
        r, c = np.unravel_index(np.argmax(m), m.shape)
        hit += 1
        m[r, :] = 0
        m[:, c] = 0
    return hit


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t


def bench_memory(out: Path, quick: bool) -> dict:
    minutes = (1, 3) if quick else (1, 10)
    res = {}
    for m in minutes:
        p = out / f"mem_{m}min_720p_5fps.mp4"
        if not p.exists():
            log(f"making {p.name}")
            ms.write_video(p, width=1280, height=720, fps=5, seconds=60 * m)
        log(f"[memory] fervid annotate on {m} min")
        peak, secs = peak_rss_mb(
            [
                sys.executable,
                "-m",
                "fervid.cli",
                "-q",
                "annotate",
                str(p),
                "--out-dir",
                str(out / "mem_out"),
                "--overwrite",
            ]
        )
        res[f"{m}min_peak_rss_mb"] = round(peak, 1)
        res[f"{m}min_seconds"] = round(secs, 1)
    res["growth_mb"] = round(res[f"{minutes[1]}min_peak_rss_mb"] - res["1min_peak_rss_mb"], 1)
    log(json.dumps(res))
    return res


# -- report ------------------------------------------------------------------------------


def machine() -> dict:
    import av
    import torch
    import torchvision

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "av": av.__version__,
        "cuda": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return out


def render(results: dict, command: str) -> str:
    """bench/RESULTS.md from a results dict."""
    m = results["machine"]
    lines = [
        "# fervid benchmarks",
        "",
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, no GPU"
        if not m["cuda"]
        else f"Measured {m['date']} on {m['cpu']} with CUDA",
        f"(Python {m['python']}, torch {m['torch']}, torchvision {m['torchvision']}, "
        f"PyAV {m['av']}, {m['torch_threads']} torch threads).",
        "",
        f"Command: {command}" + (" (quick mode: smaller inputs)" if results["quick"] else ""),
        "",
    ]
    if "video" in results:
        lines += [
            "## Video: `fervid annotate` frames/s",
            "",
            "naive = OpenCV reads, MTCNN on every full frame, each face classified alone, "
            "drawn and written with OpenCV. decode only = PyAV decoding to RGB, the "
            "ceiling. recall = share of the naive full-resolution detections that "
            "fervid's boxes match at IoU >= 0.5 on the frames it analyses.",
            "",
        ]
        lines += _table(
            results["video"],
            [
                "clip",
                "frames",
                "decode_only_fps",
                "naive_fps",
                "default_fps",
                "default_speedup",
                "default_recall",
                "every3_fps",
                "every3_speedup",
                "every3_recall",
                "no_video_fps",
                "no_video_speedup",
                "no_video_recall",
            ],
        )
        lines.append("")
    if "images" in results:
        lines += [
            "## Images: `fervid scan` images/s",
            "",
            "naive = PIL decode, MTCNN on the full image, each face classified alone.",
            "",
        ]
        lines += _table(
            [results["images"]],
            [
                "images",
                "naive_images_per_s",
                "fervid_images_per_s",
                "speedup",
                "faces_naive",
                "faces_fervid",
            ],
        )
        lines.append("")
    if "train" in results:
        lines += [
            "## Training: images/s at each architecture's input size",
            "",
            "fervid = images decoded once into memory, augmentation on the batch, "
            "fp32 or bf16 autocast with channels_last; naive = PIL decode + torchvision "
            "transforms per image in a DataLoader (2 workers) every epoch, fp32, NCHW.",
            "",
        ]
        lines += _table(
            results["train"],
            [
                "arch",
                "input_size",
                "batch_size",
                "naive_images_per_s",
                "fervid_fp32_images_per_s",
                "fervid_bf16_images_per_s",
                "speedup",
            ]
            + (["error"] if any("error" in r for r in results["train"]) else []),
        )
        lines.append("")
    if "memory" in results:
        lines += ["## Memory: peak RSS of `fervid annotate` (720p, 5 fps clips)", ""]
        mem = results["memory"]
        lines += _table([mem], list(mem))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="fervid benchmarks")
    ap.add_argument("--quick", action="store_true", help="small inputs, a few minutes")
    ap.add_argument("--only", default="video,images,train,memory")
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--record", action="store_true", help="write bench/RESULTS.md's tables")
    ap.add_argument(
        "--merge", action="store_true", help="add to bench/out/results.json instead of replacing it"
    )
    ap.add_argument("--train-arch", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.train_arch:
        print("RESULT " + json.dumps(train_one(args.train_arch, out, args.steps)), flush=True)
        return
    only = set(args.only.split(","))
    store = out / "results.json"
    results = {"machine": machine(), "quick": args.quick, "commands": []}
    if args.merge and store.exists():
        results = {**json.loads(store.read_text()), "machine": results["machine"]}
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    if args.only != "video,images,train,memory":
        command += f" --only {args.only}"
    if args.merge:
        command += " --merge"
    if command not in results.setdefault("commands", []):
        results["commands"].append(command)
    log(json.dumps(results["machine"]))

    def save() -> None:  # after every section: a later failure loses nothing measured
        tmp = store.with_suffix(".partial")
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, store)

    if "video" in only:
        results["video"] = bench_video(make_videos(out, args.quick), out)
        save()
    if "images" in only:
        results["images"] = bench_images(make_images(out, 100 if args.quick else 500))
        save()
    if "small_images" in only:
        n = 100 if args.quick else 1000
        results["small_images"] = bench_images(make_images(out, n, small=True))
        save()
    if "train" in only:
        from fervid.architectures import STUDY_ARCHS

        archs = ["resnet18", "resnet34"] if args.quick else list(STUDY_ARCHS)
        results["train"] = bench_train(archs, out, steps=3 if args.quick else 4)
        save()
    if "memory" in only:
        results["memory"] = bench_memory(out, args.quick)
        save()
    log(f"results: {store}")
    command = " and ".join(f"`{c}`" for c in results["commands"])
    text = render(results, command)
    print(text)
    if args.record:
        (HERE / "RESULTS.md").write_text(text)


if __name__ == "__main__":
    main()
