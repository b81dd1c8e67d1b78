"""SIN inference speed: precision, wasted work, per-stage breakdown, busy neighbours.

Everything is measured in one process, side by side and interleaved (A, B, A, B, ...), and
reported as medians and as **same-run ratios** (robust to a shared, noisy machine):

* ``precision``: end to end ``SINPredictor(image, 600)`` with ``precision="fp32"`` vs
  ``"bf16"`` vs ``"auto"`` at 481x321 (and what ``auto`` resolved to, and why);
* ``overhead``: the current end-to-end path vs HEAD's (validation twice, float before the
  resize, int64 label gathers; reproduced in :func:`_head_call`) at 481x321, 1024x768 and
  4000x3000 with 600 superpixels, fp32 (labels checked identical);
* ``stages``: resize in, network (plain ``SINNet`` vs ``FastSIN``, fp32 and bf16),
  interpolation, resize back;
* ``--small WEIGHTS`` (own output, ``<out>_small.md``): a small SIN (a weights tag such as
  ``small``, or a file) vs SIN (both ``precision="auto"``), fast-slic and SNIC, interleaved, at
  481x321, 1024x768 and 4000x3000 with 1 and 2 threads, with paired ratios;
* ``--neighbour``: SIN with a busy neighbour process (a Python busy loop, stopped/continued
  with SIGSTOP/SIGCONT so quiet and busy runs interleave) for 1 and 2 threads, in child
  processes with the default OpenMP wait policy and with ``OMP_WAIT_POLICY=PASSIVE`` (which must
  be set before torch starts).

Usage::

    python -m benchmarks.sin_speed [--repeats 15] [--threads 2] [--neighbour] [--out results/sin_speed.md]
    python -m benchmarks.sin_speed --quick      # a few repeats, smallest sizes (smoke test)
    python -m benchmarks.sin_speed --small small --repeats 21 --out results/small_sin/speed.md
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# the wait policy must be in the environment before torch initialises OpenMP (sin.threads);
# a child of --neighbour gets its policy from the parent, so only set the default here
if os.environ.get("SIN_SPEED_CHILD") is None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks._common import REPO, command_line, machine_info, write_csv, write_text  # noqa: E402
from sin import argtypes as A  # noqa: E402
from sin.geometry import grid_shape, network_size  # noqa: E402
from sin.image import as_float_batch, as_float_rgb  # noqa: E402
from sin.inference import SINPredictor, _nearest_index, normalize_image, resize_labels, resolve_precision  # noqa: E402
from sin.interpolation import hard_interpolate_decisions  # noqa: E402
from sin.io import SAMPLE_IMAGE, read_image  # noqa: E402
from sin.threads import openmp_runtime  # noqa: E402

SIZES = {"481x321": (321, 481), "1024x768": (768, 1024), "2048x1536": (1536, 2048), "4000x3000": (3000, 4000)}


def cpu_flags() -> str:
    """The SIMD flags that matter here (avx2, avx512f, avx512_bf16, amx_*), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith("flags")), "")
            f.seek(0)
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        return "unknown"
    flags = [x for x in line.split() if x in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")
             or x.startswith("amx")]
    return f"{model}; flags: {' '.join(flags) or 'none of avx2/avx512/amx'}"


def _image(h, w):
    img = read_image(SAMPLE_IMAGE)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    return (F.interpolate(x, size=(h, w), mode="bilinear", antialias=True)[0].permute(1, 2, 0).numpy() * 255
            ).round().astype(np.uint8)


def interleaved(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Times of each callable, interleaved A, B, C, A, B, C, ... (seconds, lists)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def ratio_stats(num, den) -> tuple[float, float, float]:
    """Median of the paired ratios num[i]/den[i] and its interquartile range."""
    r = np.asarray(num) / np.asarray(den)
    return float(np.median(r)), float(np.percentile(r, 25)), float(np.percentile(r, 75))


# ------------------------------------------------------------------ HEAD's path, for the overhead ratio
def _head_resize_labels(labels, height, width):
    _, h, w = labels.shape
    if (h, w) == (height, width):
        return labels
    rows = _nearest_index(height, h, labels.device)
    cols = _nearest_index(width, w, labels.device)
    return labels[:, rows][:, :, cols]


@torch.inference_mode()
def _head_call(pred: SINPredictor, image, k):
    """HEAD's ``SINPredictor.__call__`` (fp32): float conversion + scan in numpy, a second scan of
    the permuted (non-contiguous) tensor, int64 label gathers, then the int32 cast."""
    rgb = as_float_rgb(image)
    x = as_float_batch(torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0))
    _, _, h, w = x.shape
    n, m = grid_shape(k, h, w)
    hn, wn = network_size(n, m)
    x = F.interpolate(x, size=(hn, wn), mode="bicubic", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    dec = pred.decisions(normalize_image(x))
    labels = _head_resize_labels(hard_interpolate_decisions(dec, n, m), h, w)
    return labels.to(torch.int32)[0].numpy()


# ------------------------------------------------------------------ sections
def precision_rows(weights, repeats, k):
    preds = {p: SINPredictor(weights, precision=p) for p in ("fp32", "bf16", "auto")}
    img = _image(*SIZES["481x321"])
    times = interleaved({p: (lambda p=p: preds[p](img, k)) for p in preds}, repeats)
    same = float((preds["bf16"](img, k) == preds["fp32"](img, k)).mean())
    rows = [{"section": "precision", "image": "481x321", "superpixels": k, "case": f"SIN {p}"
             + (f" (-> {preds[p].precision})" if p == "auto" else ""),
             "median_ms": 1000 * float(np.median(t))} for p, t in times.items()]
    for p in ("bf16", "auto"):
        med, q1, q3 = ratio_stats(times[p], times["fp32"])
        rows.append({"section": "precision", "image": "481x321", "superpixels": k,
                     "case": f"ratio {p} / fp32 (paired, IQR {q1:.2f}-{q3:.2f})", "ratio": med})
    return rows, {"auto": resolve_precision("auto", explain=True), "bf16_pixel_agreement_sample": same}


def overhead_rows(weights, repeats, k, sizes):
    pred = SINPredictor(weights, precision="fp32")
    rows = []
    for name in sizes:
        img = _image(*SIZES[name])
        assert np.array_equal(_head_call(pred, img, k), pred(img, k)), "labels differ from HEAD's path"
        reps = repeats if name != "4000x3000" else max(3, repeats // 3)
        times = interleaved({"head": lambda img=img: _head_call(pred, img, k), "now": lambda img=img: pred(img, k)}, reps)
        med, q1, q3 = ratio_stats(times["now"], times["head"])
        rows += [{"section": "overhead", "image": name, "superpixels": k, "case": "HEAD path (fp32)",
                  "median_ms": 1000 * float(np.median(times["head"]))},
                 {"section": "overhead", "image": name, "superpixels": k, "case": "current path (fp32)",
                  "median_ms": 1000 * float(np.median(times["now"]))},
                 {"section": "overhead", "image": name, "superpixels": k,
                  "case": f"ratio current / HEAD (paired, IQR {q1:.2f}-{q3:.2f})", "ratio": med}]
    return rows


def fastslic_rows(weights, repeats, k, threads, sizes):
    """SIN (``sin.superpixels`` path, auto precision) vs fast-slic's own call, interleaved, no
    provider wrapper around either (the wrapper's relabelling costs the same for both)."""
    try:
        from sin.providers.fastslic import _SlicFast
    except ImportError:
        _SlicFast = None
    if _SlicFast is None:
        return []
    pred = SINPredictor(weights, precision="auto")
    rows = []
    for name in sizes:
        img = _image(*SIZES[name])
        c_img = np.ascontiguousarray(img)  # fast-slic needs C order
        fs = lambda c_img=c_img: _SlicFast(num_components=k, num_threads=threads).iterate(c_img)  # noqa: E731
        reps = repeats if name != "4000x3000" else max(3, repeats // 3)
        times = interleaved({"sin": lambda img=img: pred(img, k), "fastslic": fs}, reps)
        med, q1, q3 = ratio_stats(times["sin"], times["fastslic"])
        rows += [{"section": "fastslic", "image": name, "superpixels": k, "case": f"SIN ({pred.precision})",
                  "median_ms": 1000 * float(np.median(times["sin"]))},
                 {"section": "fastslic", "image": name, "superpixels": k,
                  "case": f"fast-slic {_SlicFast.__name__}, {threads} thread(s), no count calibration",
                  "median_ms": 1000 * float(np.median(times["fastslic"]))},
                 {"section": "fastslic", "image": name, "superpixels": k,
                  "case": f"ratio SIN / fast-slic (paired, IQR {q1:.2f}-{q3:.2f})", "ratio": med}]
    return rows


@torch.inference_mode()
def stage_rows(weights, repeats, k):
    rows = []
    fast = {p: SINPredictor(weights, precision=p) for p in ("fp32", "bf16")}
    plain = SINPredictor(weights, fast=False, precision="fp32")
    h, w = SIZES["481x321"]
    img = _image(h, w)
    n, m = grid_shape(k, h, w)
    hn, wn = network_size(n, m)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    xn = normalize_image(F.interpolate(x, size=(hn, wn), mode="bicubic", antialias=True).clamp(0, 1))
    dec = fast["fp32"].decisions(xn)
    labels = hard_interpolate_decisions(dec, n, m)
    stages = {
        "resize in": lambda: F.interpolate(x, size=(hn, wn), mode="bicubic", antialias=True).clamp_(0, 1),
        "network: plain SINNet fp32 (8 logit maps)": lambda: plain.model(xn),
        "network: FastSIN fp32 (decisions)": lambda: fast["fp32"].decisions(xn),
        "network: FastSIN bf16 (decisions)": lambda: fast["bf16"].decisions(xn),
        "interpolation (hard)": lambda: hard_interpolate_decisions(dec, n, m),
        "resize back": lambda: resize_labels(labels, h, w),
    }
    times = interleaved(stages, repeats)
    for stage, t in times.items():
        rows.append({"section": "stages", "image": "481x321", "superpixels": n * m, "case": stage,
                     "median_ms": 1000 * float(np.median(t))})
    return rows


def small_report(args, k, sizes):
    """The small SIN vs SIN, fast-slic and SNIC (each method's own call), interleaved per (threads, size)."""
    import pandas as pd

    from sin.providers.fastslic import _SlicFast
    from sin.providers.sin_provider import SIN_WEIGHTS
    from sin.providers.snic import snic

    load_before = os.getloadavg()
    # one small network: "small SIN"; several (a speed/quality curve): each named by its tag or file stem
    names = (["small SIN"] if len(args.small) == 1 else
             [f"SIN[{Path(w).stem if Path(w).suffix else w}]" for w in args.small])
    preds = {n: SINPredictor(SIN_WEIGHTS.resolve(w)) for n, w in zip(names, args.small)}
    preds["SIN"] = SINPredictor(args.weights)
    ratios = tuple((n, "fast-slic") for n in names) + (("SIN", "fast-slic"),) + tuple((n, "SIN") for n in names)
    ratios += (("small SIN", "SNIC"),) if len(names) == 1 else ()
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name in sizes:
            img = _image(*SIZES[name])
            c_img, fns = np.ascontiguousarray(img), {n: (lambda p=p, img=img: p(img, k)) for n, p in preds.items()}
            if _SlicFast is not None:
                fns["fast-slic"] = lambda c=c_img, t=threads: _SlicFast(num_components=k, num_threads=t).iterate(c)
            if not args.no_snic:
                fns["SNIC"] = lambda img=img: snic(img, k)
            times = interleaved(fns, args.repeats if name != "4000x3000" else max(3, args.repeats // 3))
            row = {"threads": threads, "image": name, "superpixels": k,
                   **{f"{n} ms": 1000 * float(np.median(t)) for n, t in times.items()}}
            for a, b in ratios:
                if a in times and b in times:
                    row[f"{a} / {b}"], row[f"{a} / {b} q1"], row[f"{a} / {b} q3"] = ratio_stats(times[a], times[b])
            rows.append(row)
            print(row, file=sys.stderr)
    load_after, df, out = os.getloadavg(), pd.DataFrame(rows), args.out.with_name(args.out.stem + "_small")
    write_csv(df, out.with_suffix(".csv"), float_format="%.3f")
    heads = [c for c in df.columns if c.endswith(" ms")] + [f"{a} / {b}" for a, b in ratios if f"{a} / {b}" in df]
    lines = ["# Small SIN vs SIN, fast-slic and SNIC (end to end, interleaved)", "",
             f"`{command_line()}`: batch 1, medians of {args.repeats} interleaved runs after warm-up "
             f"({max(3, args.repeats // 3)} at 4000x3000); ratios are medians of the per-round paired ratios "
             f"(IQR in brackets). SIN and the small SIN: `SINPredictor(weights, precision='auto')` "
             f"(-> {preds['SIN'].precision}); fast-slic: `{getattr(_SlicFast, '__name__', 'absent')}.iterate` "
             "with the same thread count; SNIC: `sin.providers.snic.snic` (one thread always).", "",
             f"- small SIN weights: {', '.join(f'`{w}`' for w in args.small)}; SIN weights: "
             f"`{args.weights or 'shipped'}`",
             f"- CPU: {cpu_flags()}; {os.cpu_count()} logical cores; OpenMP: {openmp_runtime()}, "
             f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}",
             f"- load average (1/5/15 min) before {tuple(round(x, 2) for x in load_before)}, after "
             f"{tuple(round(x, 2) for x in load_after)}", "",
             "| threads | image | " + " | ".join(heads) + " |", "|---" * (len(heads) + 2) + "|"]
    for r in df.to_dict("records"):
        cells = [f"{r[h]:.1f}" if h.endswith(" ms") else f"**{r[h]:.2f}x** ({r[h + ' q1']:.2f}-{r[h + ' q3']:.2f})"
                 for h in heads]
        lines.append(f"| {r['threads']} | {r['image']} | " + " | ".join(cells) + " |")
    write_text(out.with_suffix(".md"), "\n".join(lines + [""]))
    return df


# ------------------------------------------------------------------ busy neighbour
def _neighbour_child(weights, repeats, k, threads, precision) -> dict:
    """In this process: SIN quiet vs with a busy neighbour, interleaved blocks of calls."""
    torch.set_num_threads(threads)
    pred = SINPredictor(weights, precision=precision)
    img = _image(*SIZES["481x321"])
    for _ in range(3):
        pred(img, k)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.kill(hog.pid, signal.SIGSTOP)
        quiet, busy = [], []
        for _ in range(repeats):
            for state, store in (("quiet", quiet), ("busy", busy)):
                os.kill(hog.pid, signal.SIGCONT if state == "busy" else signal.SIGSTOP)
                time.sleep(0.05)
                ts = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    pred(img, k)
                    ts.append(time.perf_counter() - t0)
                store.append(float(np.median(ts)))
    finally:
        hog.kill()
        hog.wait()
    return {"threads": threads, "precision": pred.precision, "quiet": quiet, "busy": busy,
            "openmp": openmp_runtime()}


def neighbour_rows(weights, repeats, k, threads_list, precision, rounds: int = 2):
    """Busy-neighbour ratios per (wait policy, threads); the configurations alternate over
    ``rounds`` fresh child processes each, so a change of background load hits them alike."""
    configs = [(policy, threads) for policy in ("default", "PASSIVE") for threads in threads_list]
    got = {c: {"quiet": [], "busy": []} for c in configs}
    meta = {}
    for _ in range(rounds):
        for policy, threads in configs:
            env = dict(os.environ, SIN_SPEED_CHILD="1")
            env.pop("OMP_WAIT_POLICY", None)
            env.pop("KMP_BLOCKTIME", None)
            if policy == "PASSIVE":
                env.update(OMP_WAIT_POLICY="PASSIVE", KMP_BLOCKTIME="0")
            cmd = [sys.executable, "-m", "benchmarks.sin_speed", "--neighbour-child", "--threads", str(threads),
                   "--repeats", str(max(1, repeats // rounds)), "--n-segments", str(k), "--precision", precision]
            if weights:
                cmd += ["--weights", str(weights)]
            out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            got[(policy, threads)]["quiet"] += r["quiet"]
            got[(policy, threads)]["busy"] += r["busy"]
            meta[(policy, threads)] = r
    rows = []
    for (policy, threads), t in got.items():
        med, q1, q3 = ratio_stats(t["busy"], t["quiet"])
        r = {"wait_policy": policy, "threads": threads, "precision": meta[(policy, threads)]["precision"],
             "openmp": meta[(policy, threads)]["openmp"], "quiet_ms": 1000 * float(np.median(t["quiet"])),
             "busy_ms": 1000 * float(np.median(t["busy"])), "ratio": med, "ratio_q1": q1, "ratio_q3": q3,
             "blocks": len(t["quiet"])}
        print(f"neighbour: {policy:8s} threads={threads} quiet {r['quiet_ms']:.1f} ms busy {r['busy_ms']:.1f} ms "
              f"ratio {r['ratio']:.2f}", file=sys.stderr)
        rows.append(r)
    return rows


# ------------------------------------------------------------------ report
def neighbour_table(neigh) -> list:
    return (["| wait policy | threads | precision | quiet ms | busy ms | busy / quiet (IQR) | blocks |",
             "|---|---|---|---|---|---|---|"]
            + [f"| {r['wait_policy']} | {r['threads']} | {r['precision']} | {r['quiet_ms']:.1f} | {r['busy_ms']:.1f} "
               f"| **{r['ratio']:.2f}x** ({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}) | {r['blocks']} |" for r in neigh])


def neighbour_report(args, k):
    import pandas as pd

    load_before = os.getloadavg()
    neigh = neighbour_rows(args.weights, args.repeats, k, (1, 2), args.precision)
    load_after = os.getloadavg()
    out = args.out.with_name(args.out.stem + "_neighbour")
    write_csv(pd.DataFrame(neigh), out.with_suffix(".csv"), float_format="%.3f")
    lines = ["# SIN with a busy neighbour process (481x321, end to end)", "",
             f"`{command_line()}`: {NEIGHBOUR_TEXT}", "",
             f"- CPU: {cpu_flags()}; {os.cpu_count()} logical cores; OpenMP runtime of torch: {neigh[0]['openmp']}",
             f"- load average before {tuple(round(x, 2) for x in load_before)}, after "
             f"{tuple(round(x, 2) for x in load_after)}", "", *neighbour_table(neigh), ""]
    text = "\n".join(lines)
    write_text(out.with_suffix(".md"), text)
    print(text)
    return pd.DataFrame(neigh)


NEIGHBOUR_TEXT = ("a `python -c 'while True: pass'` process is stopped/continued (SIGSTOP/SIGCONT) between blocks "
                  "of 3 SIN calls, so quiet and busy blocks interleave; each configuration runs in fresh child "
                  "processes (the OpenMP wait policy must be set before torch starts), alternating over 2 rounds. "
                  "Ratio = median over blocks of busy/quiet of adjacent blocks.")


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.sin_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=A.positive_int, default=15)
    ap.add_argument("--threads", type=A.positive_int, default=2)
    ap.add_argument("--n-segments", type=A.positive_int, default=600)
    ap.add_argument("--weights", default=None, help="SIN weights (default: shipped)")
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"), help="for --neighbour")
    ap.add_argument("--neighbour", action="store_true", help="also measure SIN with a busy neighbour process")
    ap.add_argument("--neighbour-only", action="store_true", help="only the busy-neighbour section (own output files)")
    ap.add_argument("--neighbour-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", nargs="+", choices=list(SIZES), default=None,
                    help="image sizes of --small (default 481x321 1024x768 4000x3000)")
    ap.add_argument("--no-snic", action="store_true", help="--small without SNIC (slow at large sizes)")
    ap.add_argument("--small", default=None, nargs="+", metavar="WEIGHTS",
                    help="only the small-SIN comparison (a sin weights tag, e.g. small, or a file; own output files)")
    ap.add_argument("--quick", action="store_true", help="few repeats, no 4000x3000 (smoke test)")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "sin_speed.md")
    return ap


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or expected failure, one line)."""
    return A.cli_main(build_parser, run, argv)


def run(args):
    if args.neighbour_child:
        print(json.dumps(_neighbour_child(args.weights, args.repeats, args.n_segments, args.threads, args.precision)))
        return None
    if args.quick:
        args.repeats = min(args.repeats, 3)
    torch.set_num_threads(args.threads)
    k = args.n_segments
    sizes = ["481x321", "1024x768"] if args.quick else ["481x321", "1024x768", "4000x3000"]
    import pandas as pd

    if args.neighbour_only:
        return neighbour_report(args, k)
    if args.small:
        return small_report(args, k, args.sizes or sizes)
    load_before = os.getloadavg()
    prec, prec_info = precision_rows(args.weights, args.repeats, k)
    rows = (prec + overhead_rows(args.weights, args.repeats, k, sizes)
            + fastslic_rows(args.weights, args.repeats, k, args.threads, [sizes[0], sizes[-1]])
            + stage_rows(args.weights, args.repeats, k))
    neigh = neighbour_rows(args.weights, max(3, args.repeats // 2), k, (1, 2), args.precision) if args.neighbour else []
    load_after = os.getloadavg()
    df = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(df, args.out.with_suffix(".csv"), float_format="%.3f")
    if neigh:
        write_csv(pd.DataFrame(neigh), args.out.with_name(args.out.stem + "_neighbour.csv"), float_format="%.3f")
    info = machine_info()
    lines = ["# SIN inference speed", "",
             f"`{command_line()}`: batch 1, {args.threads} threads, medians of {args.repeats} interleaved runs "
             "after warm-up; ratios are medians of per-round paired ratios (same run).", "",
             f"- CPU: {cpu_flags()}; {os.cpu_count()} logical cores; OpenMP: {openmp_runtime()}, "
             f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}",
             f"- `precision='auto'` resolved to **{prec_info['auto'][0]}** ({prec_info['auto'][1]})",
             f"- load average (1/5/15 min) before {tuple(round(x, 2) for x in load_before)}, after "
             f"{tuple(round(x, 2) for x in load_after)} (a shared machine: compare within the run only)",
             f"- torch {info['torch']}, numpy {info['numpy']}, python {info['python']}, {info['date']}", ""]
    for section, title in (("precision", "Precision (481x321, end to end)"),
                           ("overhead", "Work around the network: current path vs HEAD's (fp32, identical labels)"),
                           ("fastslic", "SIN vs fast-slic (the methods' own calls, interleaved)"),
                           ("stages", "Stages at 481x321")):
        sub = df[df.section == section]
        lines += [f"## {title}", "", "| image | superpixels | case | median ms | ratio |", "|---|---|---|---|---|"]
        for r in sub.itertuples():
            ms = "" if pd.isna(getattr(r, "median_ms", np.nan)) else f"{r.median_ms:.1f}"
            ratio = "" if "ratio" not in sub or pd.isna(r.ratio) else f"**{r.ratio:.2f}x**"
            lines.append(f"| {r.image} | {r.superpixels} | {r.case} | {ms} | {ratio} |")
        lines.append("")
    lines += [f"bf16 labels equal to fp32 on this image: {100 * prec_info['bf16_pixel_agreement_sample']:.2f} % "
              "of pixels (BSDS500 test set: `results/precision/`).", ""]
    if neigh:
        lines += ["## Busy neighbour (481x321, SIN end to end)", "",
                  NEIGHBOUR_TEXT, "", *neighbour_table(neigh)]
        lines.append("")
    if not torch.cuda.is_available():
        lines += ["No GPU in this run (the paper reports about 80 fps on an RTX 2080Ti).", ""]
    text = "\n".join(lines)
    write_text(args.out, text)
    print(text)
    return df


if __name__ == "__main__":
    sys.exit(main())
