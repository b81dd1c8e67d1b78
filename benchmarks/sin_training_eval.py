"""Quality of SIN training snapshots vs training steps (ASA, BR, BP, CO on BSDS500).

Evaluates every ``step_*.pt`` snapshot (and ``weights.pt``) of one or more training runs at a
few superpixel counts, averaging over all (image, annotation) pairs (SIN's protocol), and
writes ``<out>/<name>.csv`` and ``<out>/<name>.png``. Finished (run, snapshot, K) cells are
kept in the CSV and skipped when the script is run again, so it can follow a running training.

Usage::

    python -m benchmarks.sin_training_eval runs/cmp_logits runs/cmp_probabilities \\
        --split val --n-segments 300 600 1000 --name loss_comparison
    # the held-out images of a run trained with --holdout (selection without touching test)
    python -m benchmarks.sin_training_eval runs/small_w050_d1 --split train \\
        --ids sin/data/small_sin_holdout.txt --out results/small_sin --name heldout
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from benchmarks._common import command_line, markdown_table, positive_int, write_text
from sin import argtypes as A
from sin.checkpoint import load_torch_file
from sin.datasets import BSDS500, read_id_list
from sin.inference import SINPredictor
from sin.io import atomic_write
from sin.metrics import aggregate, evaluate

METRICS = ("sp", "asa", "rec", "pre", "co")


def snapshots(run: Path, every: int = 1):
    """``(step, path)`` of the run's snapshots, plus its final ``weights.pt`` if present."""
    out = []
    for p in sorted(run.glob("step_*.pt")):
        step = int(re.findall(r"\d+", p.stem)[0])
        if step % every == 0:
            out.append((step, p))
    final = run / "weights.pt"
    if final.exists():
        meta = load_torch_file(final, "SIN weights").get("meta", {})
        step = int(meta.get("iteration", 0))
        if all(s != step for s, _ in out):
            out.append((step, final))
    return sorted(out)


def evaluate_snapshot(path, data, sizes, limit=None, precision="fp32", indices=None):
    # fp32 by default: the reference arithmetic, so snapshot curves compare across machines
    # ("auto" would pick bf16 on CPUs that have it)
    predictor = SINPredictor(weights=path, precision=precision)
    rows = []
    if indices is None:
        indices = range(len(data) if limit is None else min(limit, len(data)))
    for i in indices:
        image_id, image, gts = data[i]
        for k in sizes:
            labels = predictor(image, k)
            df = evaluate(labels, gts, image_id=image_id)
            df["n_segments"] = k
            rows.append(df)
    df = pd.concat(rows, ignore_index=True)
    out = []
    for k, sub in df.groupby("n_segments"):
        agg = aggregate(sub, "mean")
        out.append({"n_segments": k, **{m: float(agg[m]) for m in METRICS}})
    return out


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, metric, title in zip(axes, ("asa", "rec", "co"), ("ASA", "boundary recall", "compactness CO")):
        for (run, k), sub in df.groupby(["run", "n_segments"]):
            sub = sub.sort_values("step")
            ax.plot(sub.step, sub[metric], marker="o", ms=3, label=f"{run}, K={k}")
        ax.set_xlabel("training step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda t: fig.savefig(t, dpi=110, format="png"))
    plt.close(fig)


def markdown_summary(df: pd.DataFrame, args) -> str:
    """ASA / BR / BP / CO per (run, step) and K, one row per snapshot."""
    wide = df.pivot_table(index=["run", "step"], columns="n_segments", values=["asa", "rec", "pre", "co"])
    rows = []
    for (run, step), r in wide.iterrows():
        row = {"run": run, "step": int(step)}
        for metric, label in (("asa", "ASA"), ("rec", "BR"), ("pre", "BP"), ("co", "CO")):
            for k in sorted(df.n_segments.unique()):
                row[f"{label}@{k}"] = r[(metric, k)]
        rows.append(row)
    table = pd.DataFrame(rows)
    fmt = {c: ".4f" for c in table.columns if "@" in c}
    split, images = df.split.iloc[0], int(df.images.iloc[0])
    return (f"# SIN training snapshots: quality vs steps\n\nBSDS500 {split} split, {images} images, mean over all "
            f"(image, annotation) pairs; K = requested superpixels. Rows accumulate over invocations (the CSV is a "
            f"cache); last command: `{command_line()}`.\n\n"
            + markdown_table(table, fmt) + f"\n\nPlot: `{args.name}.png`; raw: `{args.name}.csv`.\n")


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.sin_training_eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training run folders (with step_*.pt snapshots)")
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--data-root", type=Path, default=None,
                    help="the BSDS500 folder (default: $SIN_BSDS500, else $SIN_DATA_ROOT/BSDS500)")
    ap.add_argument("--n-segments", type=positive_int, nargs="+", default=[300, 600, 1000], metavar="K",
                    help="requested numbers of superpixels")
    ap.add_argument("--limit", type=positive_int, default=None, help="first N images only")
    ap.add_argument("--ids", type=Path, default=None, metavar="FILE",
                    help="only these image ids of --split (one a line, '#' comments), e.g. a training run's "
                         "--holdout list")
    ap.add_argument("--every", type=positive_int, default=1, help="only snapshots whose step is a multiple of this")
    ap.add_argument("--threads", type=positive_int, default=None)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                    help="SIN network arithmetic (default fp32, the reference)")
    ap.add_argument("--out", type=Path, default=Path("results/training"))
    ap.add_argument("--name", default="snapshots")
    return ap


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or expected failure, one line)."""
    return A.cli_main(build_parser, run, argv)


def run(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    data = BSDS500(args.data_root, args.split)
    indices, n_images, split = None, args.limit or len(data), args.split
    if args.ids is not None:
        if args.limit is not None:
            raise ValueError("--ids and --limit exclude each other")
        indices = [data.index(i) for i in read_id_list(args.ids)]  # ValueError names an unknown id
        n_images, split = len(indices), f"{args.split}[{args.ids.name}]"
    csv_path = args.out / f"{args.name}.csv"
    done = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame()
    todo = []
    for run in args.runs:
        for step, path in snapshots(run, args.every):
            have = set() if done.empty else set(
                done[(done.run == run.name) & (done.step == step)].n_segments.tolist())
            if not set(args.n_segments) <= have:
                todo.append((run, step, path))
    for run, step, path in tqdm(todo, desc="snapshots", unit="ckpt"):
        rows = evaluate_snapshot(path, data, args.n_segments, args.limit, args.precision, indices)
        new = pd.DataFrame([{"run": run.name, "step": step, "split": split, "images": n_images, **r}
                            for r in rows])
        done = pd.concat([done, new], ignore_index=True) if not done.empty else new
        done = done.drop_duplicates(["run", "step", "n_segments"], keep="last").sort_values(
            ["run", "step", "n_segments"])
        atomic_write(csv_path, lambda t, table=done: table.to_csv(t, index=False, float_format="%.5f"))
    if done.empty:
        print("no snapshots found")
        return
    plot(done, args.out / f"{args.name}.png")
    write_text(args.out / f"{args.name}.md", markdown_summary(done, args))
    last = done.sort_values("step").groupby(["run", "n_segments"]).tail(1)
    print(last.to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
