"""SIN inference speed, end to end, with a per-stage breakdown (writes results/sin_speed.md).

Measures, in one process and side by side (ratios are robust to machine noise; medians are
quoted):

* end to end ``SINPredictor(image, 600)``: validation, bicubic resize to the network size,
  network, interpolation, nearest resize back (the connectivity repair never runs at these
  sizes/counts: the network grid is smaller than the image);
* per stage: resize in, network (plain float32 ``SINNet`` vs the decision-only ``FastSIN``),
  hard interpolation, resize back;
* on a GPU (if one is visible): frames per second at 481x321 for batch 1 and batched throughput.

Usage::

    python -m benchmarks.sin_speed [--repeats 30] [--threads 2] [--out results/sin_speed.md]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sin.fast_model import FastSIN
from sin.geometry import grid_shape, network_size
from sin.inference import SINPredictor, normalize_image, resize_labels
from sin.interpolation import hard_interpolate_decisions, logits_to_decisions
from sin.io import SAMPLE_IMAGE, atomic_write, read_image
from sin.model import STEPS

#: (label, (H, W), superpixels): None = the native-scale grid ceil(H/16) x ceil(W/16), one seed
#: per 16 pixels as the original VOC/demo scripts (3072 superpixels at 1024x768).
CONFIGS = [("481x321", (321, 481), 600), ("1024x768", (768, 1024), 600), ("1024x768", (768, 1024), None)]


def _median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(ts))


def _image(h, w):
    img = read_image(SAMPLE_IMAGE)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    return (F.interpolate(x, size=(h, w), mode="bilinear", antialias=True)[0].permute(1, 2, 0).numpy() * 255
            ).round().astype(np.uint8)


@torch.inference_mode()
def cpu_rows(weights, repeats: int, n_segments: int):
    fast = SINPredictor(weights, fast=True)
    plain = SINPredictor(weights, fast=False)
    rows = []
    for name, (h, w), k in CONFIGS:
        if k is None:
            k = -(-h // 16) * -(-w // 16)
        elif k == 600:
            k = n_segments
        img = _image(h, w)
        n, m = grid_shape(k, h, w)
        hn, wn = network_size(n, m)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        xn = normalize_image(F.interpolate(x, size=(hn, wn), mode="bicubic", antialias=True).clamp(0, 1))
        dec = fast.fast_model(xn)
        labels = hard_interpolate_decisions(dec, n, m)
        stages = {
            "end to end (FastSIN)": lambda: fast(img, k),
            "end to end (plain SINNet)": lambda: plain(img, k),
            "resize in": lambda: F.interpolate(x, size=(hn, wn), mode="bicubic", antialias=True).clamp_(0, 1),
            "network: plain SINNet (8 logit maps)": lambda: plain.model(xn),
            "network: FastSIN (decisions)": lambda: fast.fast_model(xn),
            "interpolation (hard)": lambda: hard_interpolate_decisions(dec, n, m),
            "interpolation from logits": lambda: hard_interpolate_decisions(
                [logits_to_decisions(lg, s[1]) for s, lg in zip(STEPS, logits)], n, m),
            "resize back": lambda: resize_labels(labels, h, w),
        }
        logits = plain.model(xn)
        for stage, fn in stages.items():
            rows.append({"device": "cpu", "image": name, "superpixels": n * m, "grid": f"{n}x{m}",
                         "network": f"{wn}x{hn}",
                         "stage": stage, "median_ms": _median_ms(fn, repeats)})
    return rows


@torch.inference_mode()
def gpu_rows(weights, repeats: int, n_segments: int):
    if not torch.cuda.is_available():
        return []
    dev = torch.device("cuda")
    pred = SINPredictor(weights, device=dev, fast=True)
    rows = []
    h, w = CONFIGS[0][1]
    for batch in (1, 8, 32):
        x = torch.rand(batch, 3, h, w, device=dev)

        def run():
            pred.label_batch(x, n_segments)
            torch.cuda.synchronize()
        ms = _median_ms(run, repeats)
        rows.append({"device": torch.cuda.get_device_name(), "image": "481x321", "stage": f"batch {batch}",
                     "median_ms": ms, "fps": 1000.0 * batch / ms})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-segments", type=int, default=600)
    ap.add_argument("--weights", default=None, help="SIN weights (default: shipped)")
    ap.add_argument("--out", type=Path, default=Path("results/sin_speed.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = cpu_rows(args.weights, args.repeats, args.n_segments)
    gpu = gpu_rows(args.weights, args.repeats, args.n_segments)
    df = pd.DataFrame(rows)
    atomic_write(args.out.with_suffix(".csv"), lambda t: df.to_csv(t, index=False, float_format="%.2f"))
    lines = [
        "# SIN inference speed",
        "",
        f"`python -m benchmarks.sin_speed --repeats {args.repeats} --threads {args.threads}`: "
        f"batch 1, median of {args.repeats} runs after warm-up, "
        f"CPU: {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}.",
        "",
    ]
    for (name, k), sub in df.groupby(["image", "superpixels"], sort=False):
        e2e = float(sub[sub.stage == "end to end (FastSIN)"].median_ms.iloc[0])
        plain = float(sub[sub.stage == "end to end (plain SINNet)"].median_ms.iloc[0])
        interp = float(sub[sub.stage == "interpolation (hard)"].median_ms.iloc[0])
        lines += [f"## {name}, {k} superpixels (grid {sub.grid.iloc[0]}, network input {sub.network.iloc[0]})", "",
                  "| stage | median ms |", "|---|---|"]
        lines += [f"| {r.stage} | {r.median_ms:.1f} |" for r in sub.itertuples()]
        lines += ["", f"End to end: **{e2e:.0f} ms** ({plain / e2e:.2f}x faster than the plain network path); "
                      f"interpolation is {100 * interp / e2e:.1f}% of it.", ""]
    if gpu:
        lines += ["## GPU", "", "| device | batch | median ms | fps |", "|---|---|---|---|"]
        lines += [f"| {r['device']} | {r['stage']} | {r['median_ms']:.2f} | {r['fps']:.0f} |" for r in gpu]
    else:
        lines += ["No GPU in this run: the paper reports about 80 fps on an RTX 2080Ti."]
    text = "\n".join(lines) + "\n"
    atomic_write(args.out, lambda t: Path(t).write_text(text))
    print(text)


if __name__ == "__main__":
    main()
