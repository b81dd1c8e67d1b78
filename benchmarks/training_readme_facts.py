"""Regenerate the data-driven statements of ``results/training/README.md`` (issue 14).

The README's snapshot table, its italic reference rows and two statements are rewritten here
from data, never by hand; the rest of the README is left alone. Each generated part sits between
``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` markers (a missing marker is an
error, nothing is written then):

* ``snapshot-table``: the snapshot rows of ``snapshots.csv`` (run ``cpu_final``) plus reference
  rows for SLIC, SNIC and ERS computed here on **the same images** as the snapshots: the first
  ``--images`` (40) BSDS500 test images in the loader's order (file-name order; this is how
  ``benchmarks.sin_training_eval --limit 40`` picks them), at the same K, mean over all
  (image, annotation) pairs with :mod:`sin.metrics`. The rows are also written to
  ``reference_rows.csv``. Label maps come from the label cache (keyed by provider code and
  parameters), so the ERS rows always come from the ERS code as it is when this runs.
* ``reference-note``: what the reference rows are and how SIN's final step compares with ERS on
  these images and on the full test set (``../bsds500/quality.csv``).
* ``loss-claim``: the loss comparison (cross-entropy on logits vs on probabilities) read from
  ``loss_comparison.csv``: which run was ahead at which checkpoint, K and metric.

Usage::

    python -m benchmarks.training_readme_facts [--data-root DIR] [--images 40] [--out results/training]
        [--cache DIR] [--recompute] [--processes 2 | --scheduler tcp://HOST:PORT] [--check]

``--data-root`` is the BSDS500 folder (default ``$SIN_BSDS500``, else ``$SIN_DATA_ROOT/BSDS500``),
``--cache`` the cache root (label maps in ``<cache>/labels``; default :func:`sin.paths.cache_root`).
``--check`` writes nothing and exits 1 (one line on stderr) if the README would change. Exit code 2:
a usage error or a missing / malformed input (one line on stderr).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import REPO, command_line, markdown_table, write_csv, write_text
from benchmarks._samples import Sample, Scores, dataset_item
from sin import argtypes as A
from sin.parallel import ItemError, add_executor_args, executor_from_args

SIZES = (300, 600, 1000)
PROVIDERS = ("slic", "snic", "ers")
LABELS = {"slic": "SLIC", "snic": "SNIC", "ers": "ERS"}
METRICS = ("sp", "asa", "rec", "pre", "co")
#: metric -> name in the README
NAMES = {"asa": "ASA", "rec": "BR", "pre": "BP", "co": "CO"}
SNAPSHOT_RUN = "cpu_final"


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------

def reference_rows(data, n_images: int, sizes=SIZES, providers=PROVIDERS, cache=None, *, executor=None,
                   progress: bool = True) -> pd.DataFrame:
    """SLIC / SNIC / ERS on ``data[0..n_images)``: one row per (method, K), mean over all pairs.

    The maps come through :func:`sin.parallel.label_maps` and ``cache`` (a
    :class:`~sin.providers.LabelCache`; default: the one under :func:`sin.paths.cache_root`) and
    are scored where they are made; ``executor``: where (default: here, one image after the other).
    """
    from sin.metrics import aggregate
    from sin.parallel import label_maps
    from sin.providers import LabelCache, get_provider

    cache = cache if cache is not None else LabelCache()
    n = min(n_images, len(data))
    provs = [get_provider(p) for p in providers]
    samples = [Sample(dataset_item, (data, i), data.ids[i]) for i in range(n)]
    scored = {prov: label_maps(prov, samples, [tuple(sizes)] * n, cache=cache, executor=executor, processes=1,
                               then=Scores(prov.name), progress=progress, desc=f"reference rows {prov.name}")
              for prov in provs}
    pairs = pd.DataFrame([row for i in range(n) for prov in provs for rows, _ in scored[prov][i] for row in rows])
    rows = []
    for prov in provs:
        for k in sizes:
            sub = pairs[(pairs.method == prov.name) & (pairs.n_segments == k)]
            agg = aggregate(sub, "mean")
            rows.append({"method": prov.name, "provider_tag": prov.tag, "n_segments": k, "split": data.split,
                         "images": n, "pairs": len(sub), "first_image": data.ids[0], "last_image": data.ids[n - 1],
                         **{m: float(agg[m]) for m in METRICS}})
    return pd.DataFrame(rows)


def snapshot_rows(snapshots: pd.DataFrame, run: str = SNAPSHOT_RUN) -> pd.DataFrame:
    df = snapshots[snapshots.run == run]
    if df.empty:
        raise ValueError(f"no rows of run {run!r} in snapshots.csv")
    return df


# ------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------

def _wide(df: pd.DataFrame, key: str) -> pd.DataFrame:
    return df.pivot_table(index=key, columns="n_segments", values=["asa", "rec", "co"])


def snapshot_table(snaps: pd.DataFrame, ref: pd.DataFrame, sizes=SIZES) -> str:
    cols = ([f"ASA@{k}" for k in sizes] + [f"BR@{k}" for k in sizes] + ["CO@600"])

    def row(first, r):
        vals = [r[("asa", k)] for k in sizes] + [r[("rec", k)] for k in sizes] + [r[("co", 600)]]
        return [first, *vals]

    rows = [row(int(step), r) for step, r in _wide(snaps, "step").sort_index().iterrows()]
    wide_ref = _wide(ref, "method")
    rows += [row(f"*{LABELS.get(m, m)}*", wide_ref.loc[m]) for m in ref.method.drop_duplicates()]
    table = pd.DataFrame(rows, columns=["step", *cols])
    return markdown_table(table, {c: ".4f" for c in cols})


def _fmt(values, spec=".4f") -> str:
    return "/".join(format(v, spec) for v in values)


def _signed(values) -> str:
    return "/".join(f"{v:+.4f}" for v in values)


def reference_note(snaps: pd.DataFrame, ref: pd.DataFrame, full: pd.DataFrame | None, sizes=SIZES) -> str:
    last = snaps[snaps.step == snaps.step.max()].set_index("n_segments")
    ers = ref[ref.method == "ers"].set_index("n_segments")
    n, first, final = int(ref.images.iloc[0]), ref.first_image.iloc[0], int(snaps.step.max())
    sin_asa = [last.asa[k] for k in sizes]
    ers_asa = [ers.asa[k] for k in sizes]
    gap40 = np.subtract(sin_asa, ers_asa)
    tags = ", ".join(f"`{t}`" for t in ref.provider_tag.drop_duplicates())
    ks = "/".join(map(str, sizes))
    text = (f"Reference rows in italics: SLIC, SNIC and ERS (registry defaults) on the same {n} images as the "
            f"snapshots (the first {n} BSDS500 test images in file-name order, {first} to {ref.last_image.iloc[0]}, "
            f"as `benchmarks.sin_training_eval --limit {n}` takes them), at K = {ks}, mean over all "
            f"(image, annotation) pairs; ERS with its code as of this run, whose edge weights and logarithms "
            f"no longer depend on the CPU (issue 14). Provider tags {tags}; values in `reference_rows.csv`. "
            f"(The reference rows shown here before were computed on a different set of {n} images, taken in "
            f"numeric instead of file-name order.) ")
    comp = "above" if (gap40 > 0).all() else "below" if (gap40 < 0).all() else "mixed relative to"
    text += (f"At step {final}, SIN's ASA on these images is {comp} ERS's at K = {ks}: {_fmt(sin_asa)} vs "
             f"{_fmt(ers_asa)} ({_signed(gap40)}).")
    if full is not None:
        f = full[full["aggregate"] == "mean"] if "aggregate" in full.columns else full
        is_sin = f.method.astype(str).str.split(":").str[0] == "sin"  # e.g. sin:precision=fp32
        try:
            gap_full = [float(f[is_sin & (f.n_segments == k)].asa.iloc[0]
                              - f[(f.method == "ers") & (f.n_segments == k)].asa.iloc[0]) for k in sizes]
        except IndexError:
            gap_full = None
        if gap_full is not None:
            harder = bool((gap40 < np.array(gap_full) - 0.001).all())
            text += (f" On the full test set (`../bsds500/quality.csv`, same K requested) SIN - ERS is "
                     f"{_signed(gap_full)}; so this subset is {'' if harder else 'not '}harder for SIN relative "
                     f"to ERS than the full set.")
    return text


def loss_claim(loss: pd.DataFrame, a: str = "cmp_probabilities", b: str = "cmp_logits",
               metrics=("asa", "rec", "pre", "co"), sizes=SIZES) -> str:
    """Which loss was ahead where, from the comparison's raw rows (higher is better for all four)."""
    pa = loss[loss.run == a].set_index(["step", "n_segments"])
    pb = loss[loss.run == b].set_index(["step", "n_segments"])
    common = pa.index.intersection(pb.index)
    if common.empty:
        raise ValueError(f"no common (step, K) cells of {a!r} and {b!r} in loss_comparison.csv")
    steps = sorted({s for s, _ in common})
    n_img, last = int(pa.images.iloc[0]), steps[-1]
    behind = []  # (metric, step) where the original form was not ahead at every K
    for m in metrics:
        for s in steps:
            ks = [k for k in sizes if (s, k) in common]
            if not all(pa.loc[(s, k), m] > pb.loc[(s, k), m] for k in ks):
                behind.append((m, s, ks))
    fin = f"{NAMES['asa']}@600 {pa.loc[(last, 600), 'asa']:.4f} vs {pb.loc[(last, 600), 'asa']:.4f}, " \
          f"{NAMES['rec']}@600 {pa.loc[(last, 600), 'rec']:.3f} vs {pb.loc[(last, 600), 'rec']:.3f}, " \
          f"{NAMES['co']}@600 {pa.loc[(last, 600), 'co']:.3f} vs {pb.loc[(last, 600), 'co']:.3f} at {last} steps"
    names = ", ".join(NAMES[m] for m in metrics[:-1]) + f" and {NAMES[metrics[-1]]}"
    if not behind:
        text = f"the original form was ahead at every checkpoint, at every K and in {names} ({fin})."
    else:
        clean = [s for s in steps if all(s != b for _, b, _ in behind)]
        parts = []
        for m, s, ks in behind:
            ahead_k = [k for k in ks if pb.loc[(s, k), m] >= pa.loc[(s, k), m]]
            where = "at every K" if len(ahead_k) == len(ks) else "at K = " + "/".join(map(str, ahead_k))
            parts.append(f"at {s} steps the logits run had the higher {NAMES[m]} {where} "
                         f"({_fmt([pb.loc[(s, k), m] for k in ahead_k], '.3f')} vs "
                         f"{_fmt([pa.loc[(s, k), m] for k in ahead_k], '.3f')})")
        steps_txt = " and ".join(map(str, clean)) + " steps" if clean else "no checkpoint"
        text = (f"the original form was ahead in {names} at every K at {steps_txt} ({fin}), but not at every "
                f"checkpoint: " + "; ".join(parts) + ".")
    return (text + f" This is one training seed per loss evaluated on {n_img} val images, so differences of "
            f"this size are not established.")


# ------------------------------------------------------------------------------------------
# README rewriting
# ------------------------------------------------------------------------------------------

def replace_block(text: str, name: str, body: str) -> str:
    """Replace what lies between ``<!-- generated:NAME ... -->`` and ``<!-- /generated:NAME -->``."""
    tag = re.escape(name)
    pat = re.compile(rf"(<!-- generated:{tag}\b[^>]*-->\n)(.*?)(<!-- /generated:{tag} -->)", re.DOTALL)
    found = pat.findall(text)
    if len(found) != 1:
        raise ValueError(f"README: expected one '<!-- generated:{name} -->' ... '<!-- /generated:{name} -->' "
                         f"block, found {len(found)}")
    return pat.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), text)


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.training_readme_facts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=None,
                    help="BSDS500 folder (default: $SIN_BSDS500, else $SIN_DATA_ROOT/BSDS500)")
    ap.add_argument("--images", type=A.positive_int, default=40, help="first N test images (as the snapshots)")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "training")
    A.add_cache_args(ap)
    add_executor_args(ap)
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the README would change")
    return ap


def run(args) -> int:
    from sin.datasets import BSDS500
    from sin.paths import cache_root
    from sin.providers import LabelCache

    readme = args.out / "README.md"
    text = readme.read_text()
    snaps = snapshot_rows(pd.read_csv(args.out / "snapshots.csv"))
    loss = pd.read_csv(args.out / "loss_comparison.csv")
    data = BSDS500(args.data_root, "test")
    images = sorted(set(snaps.images))
    if images != [args.images]:
        raise ValueError(f"snapshots.csv was evaluated on {images} images, not --images {args.images}")
    with executor_from_args(args) as executor:
        ref = reference_rows(data, args.images, executor=executor,
                             cache=LabelCache(cache_root(args.cache) / "labels", recompute=args.recompute))
    full_csv = args.out.parent / "bsds500" / "quality.csv"
    full = pd.read_csv(full_csv) if full_csv.exists() else None
    new = replace_block(text, "snapshot-table", snapshot_table(snaps, ref))
    new = replace_block(new, "reference-note", reference_note(snaps, ref, full))
    new = replace_block(new, "loss-claim", loss_claim(loss))
    if args.check:
        if new != text:
            print(f"{readme} is out of date: run {command_line().replace(' --check', '')}", file=sys.stderr)
            return 1
        return 0
    write_csv(ref, args.out / "reference_rows.csv", float_format="%.5f")
    if new != text:
        write_text(readme, new)
    print(ref[["method", "n_segments", "asa", "rec", "co"]].to_string(index=False))
    return 0


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 1 ``--check`` found the README out of date, 2 error)."""
    return A.cli_main(build_parser, run, argv, expected=(ValueError, OSError, ItemError))


if __name__ == "__main__":
    sys.exit(main())
