"""The classifier alone: milliseconds per face at batch 64, by precision, memory format and
test-time augmentation, on this CPU as it is and as an AVX2-only one.

    python bench/classifier.py            # runs itself twice: as is, and with
                                          # ONEDNN_MAX_CPU_ISA=AVX2 (hides AMX and AVX-512)

The bundled model through ``EmotionModel.predict`` (the inference path): PyTorch in each
precision and memory format, and OpenVINO with the bundled int8 copy (the default on CPUs;
also at batch 2 and 8, as a video's frames give them), 64 real face crops
(the two portraits, shifted and scaled), best of 5 timed runs after 2 warm-up runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "samples"))


def crops(model, n: int = 64):
    import numpy as np

    from make_samples import PORTRAIT_FACES, portraits

    out = []
    for k in range(n):
        img = portraits()[k % 2]
        x1, y1, x2, y2 = PORTRAIT_FACES[k % 2]
        d = (k % 7) - 3
        face = img[int(y1) + d : int(y2) + d, int(x1) - d : int(x2) - d]
        out.append(model.prepare(face))
    return np.stack(out)


def time_predict(model, x, runs: int = 5) -> float:
    for _ in range(2):
        model.predict(x)
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        model.predict(x)
        best = min(best, time.perf_counter() - t)
    return 1000 * best / len(x)


def measure() -> dict:
    import dataclasses

    import torch

    import fervid
    from fervid.runtime import Runtime

    res = {"isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "as is"), "threads": torch.get_num_threads()}
    base = fervid.load_model(device="cpu")
    x = crops(base)
    for amp in ("auto", "off"):
        for cl in (False, True):
            for tta in ("hflip", "none"):
                m = fervid.load_model(device="cpu", amp=amp, backend="torch")
                rt = Runtime.create("cpu", amp, channels_last=cl)
                m.runtime = rt
                fmt = torch.channels_last if cl else torch.contiguous_format
                m.module = m.module.to(memory_format=fmt)
                m.meta = dataclasses.replace(m.meta, tta=tta)
                key = f"{rt.describe()} tta={tta}"
                res[key] = round(time_predict(m, x), 2)
    for tta in ("hflip", "none"):
        m = fervid.load_model(device="cpu", backend="openvino")  # the bundled int8 copy
        m.meta = dataclasses.replace(m.meta, tta=tta)
        res[f"{m.describe()} tta={tta}"] = round(time_predict(m, x), 2)
        for n in (2, 8):
            res[f"{m.describe()} tta={tta} batch {n}"] = round(time_predict(m, x[:n]), 2)
    m = fervid.load_model(device="cpu", backend="torch")
    for n in (2, 8):
        res[f"{m.describe()} tta=hflip batch {n}"] = round(time_predict(m, x[:n]), 2)
    res["default"] = base.describe()
    return res


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(measure()))
        return
    for isa in (None, "AVX2"):
        env = dict(os.environ)
        if isa:  # oneDNN's cap, and OpenVINO's for its own kernels (where its build reads it)
            env["ONEDNN_MAX_CPU_ISA"] = env["OV_CPU_MAX_ISA"] = isa
        subprocess.run([sys.executable, __file__, "--child"], env=env, check=True)


if __name__ == "__main__":
    main()
