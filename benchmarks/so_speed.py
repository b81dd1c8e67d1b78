"""Run time of Saliency Optimization itself (superpixels excluded).

For every saliency-mini image (300 x 400 / 400 x 300) and every superpixel count, SLIC labels
are computed once, then :func:`~downstream.saliency_optimization.saliency_optimization` is timed
``--repeats`` times in this one process; the table reports per-image medians and the median
over images, plus a per-stage breakdown of one image. Target: <= 40 ms at 200 superpixels.

Usage::

    python -m benchmarks.so_speed [--data-root DIR] [--n-segments 200 400] [--repeats 30] [--out results/saliency]

Writes ``<out>/so_speed.md``. Timings depend on the machine load (reported from
``os.getloadavg``); rerun on a quiet machine for final numbers.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from downstream.saliency_optimization import SIN_PAPER, core, graph
from downstream.saliency_optimization.datasets import SaliencyDataset
from sin import argtypes as A
from sin.io import atomic_write

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeats: int, clock=time.perf_counter) -> float:
    fn()  # warm-up (imports, caches)
    ts = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return 1000.0 * float(np.median(ts))


def stage_times(image, labels, repeats: int) -> dict:
    """Median ms of every stage of the code-parameter pipeline on one image."""
    p = core.CODE_PARAMS
    img, lab_map, counts = core._prepare(image, labels, -1)
    k = counts.size
    _, lab, pos = core.superpixel_features(img, lab_map, counts)
    adj = graph.adjacency_matrix(lab_map, k)
    bd = graph.boundary_superpixels(lab_map)
    col = core.pairwise_distances(lab)
    posd = core.pairwise_distances(pos)
    ring2 = graph.two_ring(adj)
    dyn = core.estimate_dynamic_params(adj, col, ring2=ring2)
    bdcon, _, _ = core.boundary_connectivity(adj, col, bd, dyn["clip"], dyn["geo_sigma"])
    bgp, bgw = core.background_probability(bdcon)
    fg = core.weighted_contrast(col, posd, bgp)
    w = core.smoothness_weights(adj, bd, col, dyn["nei_sigma"], ring2=ring2)
    stages = {
        "validate + relabel": lambda: core._prepare(image, labels, -1),
        "features (bincount, Lab)": lambda: core.superpixel_features(img, lab_map, counts),
        "adjacency + boundary": lambda: (graph.adjacency_matrix(lab_map, k), graph.boundary_superpixels(lab_map)),
        "distance matrices": lambda: (core.pairwise_distances(lab), core.pairwise_distances(pos)),
        "2-ring + dynamic params": lambda: core.estimate_dynamic_params(adj, col, ring2=graph.two_ring(adj)),
        "boundary connectivity (geodesic)": lambda: core.boundary_connectivity(adj, col, bd, dyn["clip"],
                                                                               dyn["geo_sigma"]),
        "weighted contrast + Otsu": lambda: core.weighted_contrast(col, posd, bgp),
        "smoothness weights": lambda: core.smoothness_weights(adj, bd, col, dyn["nei_sigma"], ring2=ring2),
        "linear solve": lambda: core.optimise_saliency(w, bgw, fg, p.bg_lambda),
    }
    return {name: _median_ms(fn, repeats) for name, fn in stages.items()}


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.so_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=None,
                    help="the saliency-mini folder (default: $SIN_DATA_ROOT/saliency-mini)")
    ap.add_argument("--n-segments", nargs="+", type=A.positive_int, default=[200, 400], metavar="K",
                    help="superpixel counts to time")
    ap.add_argument("--repeats", type=A.positive_int, default=30)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "saliency")
    return ap


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or missing data, one line)."""
    return A.cli_main(build_parser, run, argv)


def run(args) -> dict:
    ds = SaliencyDataset.open("saliency-mini", args.data_root)
    load_before = os.getloadavg()
    slic = SIN_PAPER.provider("slic")  # the SO demo's compactness 20
    rows = []
    stage = None
    for size in args.n_segments:
        per_image = []
        per_image_cpu = []
        counts = []
        for i in range(len(ds)):
            name, image, _ = ds.load(i)
            labels = slic(image, size)
            counts.append(int(labels.max()) + 1)
            def call(im=image, lb=labels):
                return core.saliency_optimization(im, lb)

            per_image.append(_median_ms(call, args.repeats))
            # CPU time of this process: what a call costs without the waits a loaded machine adds
            per_image_cpu.append(_median_ms(call, args.repeats, clock=time.process_time))
            if stage is None and size == args.n_segments[0]:
                stage = (name, image.shape[:2], counts[-1], stage_times(image, labels, args.repeats))
        rows.append((size, float(np.mean(counts)), float(np.median(per_image)), float(np.max(per_image)),
                     float(np.median(per_image_cpu))))
    load_after = os.getloadavg()

    lines = ["# Saliency Optimization run time (superpixels excluded)", "",
             f"Generated {_dt.date.today().isoformat()} by `python -m benchmarks.so_speed "
             f"--repeats {args.repeats}` on {platform.processor() or platform.machine()} "
             f"({os.cpu_count()} CPUs); load average before / after: "
             f"{load_before[0]:.2f} / {load_after[0]:.2f} (machine shared with other jobs: treat as an upper bound).",
             "",
             f"Images: the {len(ds)} saliency-mini images (300 x 400 and 400 x 300), SLIC labels (compactness 20) "
             "computed once; each SO call timed in one process, median over repeats per image, then median "
             "(and worst) over images. Target: <= 40 ms at 200 superpixels.", "",
             "Wall time is what a caller waits; CPU time (`time.process_time`, this process incl. BLAS threads) "
             "is what a call costs and is much less sensitive to other jobs on the machine.", "",
             "| requested superpixels | mean K | median wall ms / image | worst image wall ms | median CPU ms / image |",
             "|---|---|---|---|---|"]
    for size, k, med, worst, cpu in rows:
        lines.append(f"| {size} | {k:.1f} | {med:.1f} | {worst:.1f} | {cpu:.1f} |")
    if stage is not None:
        name, shape, k, st = stage
        lines += ["", f"Per-stage medians on `{name}` ({shape[0]} x {shape[1]}, K = {k}); the stages are timed "
                      "separately, so their sum slightly exceeds one full call:", "",
                  "| stage | ms |", "|---|---|"]
        lines += [f"| {n} | {v:.2f} |" for n, v in st.items()]
        lines += [f"| sum | {sum(st.values()):.2f} |"]
    lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "so_speed.md"
    atomic_write(out, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    for size, k, med, worst, cpu in rows:
        print(f"{size:>5} superpixels (K={k:.1f}): median {med:.1f} ms wall ({cpu:.1f} ms CPU), "
              f"worst image {worst:.1f} ms wall")
    print(f"wrote {out}")
    return {"rows": rows, "stages": stage}


if __name__ == "__main__":
    sys.exit(main())
