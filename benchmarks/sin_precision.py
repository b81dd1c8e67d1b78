"""SIN bf16 vs fp32 on the BSDS500 test set: label agreement, ASA, time (results/precision/).

For every test image and requested count, SIN runs with ``precision="fp32"`` (the reference)
and ``precision="bf16"`` in the same process, alternating, and we record

* pixel agreement: the fraction of pixels whose bf16 label equals the fp32 label (both maps
  come from the same seed grid, so label ids correspond; where the connectivity repair ran and
  renumbered, each bf16 superpixel is first matched to the fp32 one it overlaps most);
* ASA of each map against every ground truth of the image (mean over the GTs per image);
  the paired difference bf16 - fp32 with a bootstrap 95 % interval over images;
* the time of each call (medians and the paired ratio);
* with ``--compare-head``: whether the fp32 labels are bit-identical to those of the ``sin``
  package at git ``HEAD`` (exported with ``git archive`` and run in a subprocess).

Usage::

    python -m benchmarks.sin_precision [--n-segments 600 1200] [--limit N] [--threads 2]
        [--compare-head] [--data-root DIR] [--out results/precision]

Writes ``per_image.csv`` (one row per image and count), ``summary.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts (sin.threads)
os.environ.setdefault("KMP_BLOCKTIME", "0")

import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks._common import REPO, command_line, machine_info, positive_int, write_csv, write_text  # noqa: E402
from sin import argtypes as A  # noqa: E402

_HEAD_SCRIPT = r"""
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from sin.datasets import load_dataset
from sin.inference import superpixels
import sin; assert sin.__file__.startswith(sys.argv[4]), sin.__file__
ds = load_dataset("BSDS500", root=None if sys.argv[5] == "-" else sys.argv[5], split="test")
ks = [int(k) for k in sys.argv[2].split(",")]
out = {}
for i, image_id in enumerate(ds.ids[: int(sys.argv[6])]):
    img = ds[i].image
    for k in ks:
        out[f"{image_id}_k{k}"] = superpixels(img, k).astype(np.int32)
np.savez_compressed(sys.argv[1], **out)
"""


def head_labels(ks, threads, limit, data_root, workdir: Path) -> dict:
    """fp32 labels of git HEAD's ``sin`` package (HEAD had no bf16: fp32 only)."""
    src = workdir / "head"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD", "sin"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    out = workdir / "head.npz"
    env = dict(os.environ, PYTHONPATH=str(src))
    subprocess.run([sys.executable, "-c", _HEAD_SCRIPT, str(out), ",".join(map(str, ks)), str(threads),
                    str(src), str(data_root or "-"), str(limit)], env=env, check=True, cwd=workdir)
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def matched_agreement(ref: np.ndarray, other: np.ndarray) -> float:
    """Pixels of ``other`` whose superpixel's best-overlapping ``ref`` superpixel is their own."""
    n_o, n_r = int(other.max()) + 1, int(ref.max()) + 1
    joint = np.bincount(other.ravel().astype(np.int64) * n_r + ref.ravel(), minlength=n_o * n_r).reshape(n_o, n_r)
    best = joint.argmax(1)
    return float((best[other] == ref).mean())


def bootstrap_ci(diff: np.ndarray, n: int = 10000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), (n, len(diff)))
    means = diff[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.sin_precision", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-segments", nargs="+", type=positive_int, default=[600])
    ap.add_argument("--limit", type=positive_int, default=None, help="first N test images only")
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--weights", default=None, help="SIN weights file (default: shipped)")
    ap.add_argument("--compare-head", action="store_true", help="check fp32 labels against git HEAD's sin")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="the BSDS500 folder (default: $SIN_BSDS500, else $SIN_DATA_ROOT/BSDS500)")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "precision")
    ap.add_argument("--from-csv", action="store_true", help="rewrite summary.md from <out>/per_image.csv")
    return ap


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or expected failure, one line)."""
    return A.cli_main(build_parser, run, argv)


def run(args):
    if args.from_csv:
        from sin.geometry import grid_shape

        df = pd.read_csv(args.out / "per_image.csv", dtype={"image": str})
        if "fp32_equals_head" in df and "grid_changed" not in df:  # CSVs written before the column existed
            df["grid_changed"] = [head_grid(r.n_segments, r.height, r.width) != grid_shape(r.n_segments, r.height, r.width)
                                  for r in df.itertuples()]
            write_csv(df, args.out / "per_image.csv", float_format="%.6g")
        write_text(args.out / "summary.md", summarize(df, args, None, None))
        return df

    import torch
    from tqdm import tqdm

    from sin.datasets import load_dataset
    from sin.geometry import grid_shape
    from sin.inference import SINPredictor
    from sin.metrics import achievable_segmentation_accuracy

    torch.set_num_threads(args.threads)
    ds = load_dataset("BSDS500", root=args.data_root, split="test")
    n = min(len(ds), args.limit or len(ds))
    preds = {p: SINPredictor(args.weights, precision=p) for p in ("fp32", "bf16")}
    head = {}
    if args.compare_head:
        with tempfile.TemporaryDirectory() as tmp:
            print("computing HEAD's fp32 labels in a subprocess ...", file=sys.stderr)
            head = head_labels(args.n_segments, args.threads, n, ds.root, Path(tmp))
    load_before = os.getloadavg()
    rows = []
    for i in tqdm(range(n), desc="images"):
        sample = ds[i]
        for k in args.n_segments:
            labels, secs = {}, {}
            order = ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")  # alternate who goes first
            for p in order:
                t0 = time.perf_counter()
                labels[p], info = preds[p](sample.image, k, return_info=True)
                secs[p] = time.perf_counter() - t0
                if p == "fp32":
                    repaired = info["n_repaired_pixels"]
            a, b = labels["fp32"], labels["bf16"]
            direct = float((a == b).mean())
            asa = {p: float(np.mean([achievable_segmentation_accuracy(labels[p], g) for g in sample.ground_truths]))
                   for p in labels}
            row = {"image": sample.image_id, "height": a.shape[0], "width": a.shape[1], "n_segments": k,
                   "sp_fp32": int(a.max()) + 1, "sp_bf16": int(b.max()) + 1,
                   "agreement": direct if repaired == 0 else matched_agreement(a, b),
                   "agreement_direct": direct, "asa_fp32": asa["fp32"], "asa_bf16": asa["bf16"],
                   "ms_fp32": 1000 * secs["fp32"], "ms_bf16": 1000 * secs["bf16"]}
            if head:
                row["fp32_equals_head"] = bool(np.array_equal(a, head[f"{sample.image_id}_k{k}"]))
                row["grid_changed"] = head_grid(k, *a.shape) != grid_shape(k, *a.shape)
            rows.append(row)
    load_after = os.getloadavg()
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(df, args.out / "per_image.csv", float_format="%.6g")

    text = summarize(df, args, load_before, load_after)
    write_text(args.out / "summary.md", text)
    print(text)
    return df


def head_grid(k, h, w):
    """HEAD's seed-grid rule (rows first on every image; issue 15 made it symmetric)."""
    import math

    n = max(1, min(h, int(round(math.sqrt(k * h / w)))))
    return n, max(1, min(w, int(round(k / n))))


def summarize(df, args, load_before, load_after) -> str:
    from benchmarks.sin_speed import cpu_flags
    from sin.inference import resolve_precision

    head = "fp32_equals_head" in df
    n = df.image.nunique()
    load = ("" if load_before is None else f"- load average before {tuple(round(x, 2) for x in load_before)}, after "
            f"{tuple(round(x, 2) for x in load_after)} on {os.cpu_count()} cores")
    auto = resolve_precision("auto", explain=True)
    md = ["# SIN bf16 vs fp32 on BSDS500 test", "",
          f"`{command_line()}`: {n} images, shipped weights unless `--weights`, {args.threads} threads, "
          "the two precisions alternate per image in one process.", "",
          f"- CPU: {cpu_flags()}; `precision='auto'` -> **{auto[0]}** ({auto[1]})",
          load,
          f"- {', '.join(f'{k}={v}' for k, v in machine_info().items() if k in ('torch', 'numpy', 'date'))}", "",
          "| K | images | pixel agreement median | min | 5th pct | ASA fp32 | ASA bf16 | ASA diff (bf16 - fp32) "
          "[95 % bootstrap CI] | images with equal ASA | time bf16 / fp32 (median paired) |"
          + (" fp32 bit-identical to HEAD |" if head else ""),
          "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if head else "")]
    for k, sub in df.groupby("n_segments"):
        d = (sub.asa_bf16 - sub.asa_fp32).to_numpy()
        lo, hi = bootstrap_ci(d)
        line = (f"| {k} | {len(sub)} | {100 * sub.agreement.median():.2f} % | {100 * sub.agreement.min():.2f} % | "
                f"{100 * sub.agreement.quantile(0.05):.2f} % | {sub.asa_fp32.mean():.5f} | {sub.asa_bf16.mean():.5f} | "
                f"{d.mean():+.5f} [{lo:+.5f}, {hi:+.5f}] | {int((d == 0).sum())} | "
                f"{float(np.median(sub.ms_bf16 / sub.ms_fp32)):.2f} (median ms {sub.ms_bf16.median():.0f} vs "
                f"{sub.ms_fp32.median():.0f}) |")
        if head:
            same = sub[~sub.grid_changed]
            line += (f" {int(same.fp32_equals_head.sum())} / {len(same)} with HEAD's grid; "
                     f"{int(sub.grid_changed.sum())} with a new grid |")
        md.append(line)
    md += ["", "Pixel agreement: fraction of pixels with the same label in both maps (label ids correspond: same "
           "seed grid). For scale: changing the input by +-1 grey level already changes about 3 % of fp32 labels "
           "(issue 16). Per-image rows: `per_image.csv`.", "",
           "HEAD comparison: git HEAD's `sin` package (exported with `git archive`) run in a subprocess on the same "
           "images. 'A new grid' = images where `sin.geometry.grid_shape` now picks another seed grid than HEAD "
           "(issue 15: the rule is symmetric now; portrait 321x481 images at K=1200 get 43x28 = 1204 seeds "
           "instead of 42x29 = 1218, the transpose of the landscape grid); their labels differ by construction.",
           ""]
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
