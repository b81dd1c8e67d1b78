"""Loss and learning-rate curves of SIN training runs (from their ``log.csv``).

Usage::

    python -m benchmarks.training_curve runs/cpu_final [more runs...] --out results/training --name loss_curve

Writes ``<out>/<name>.png`` (loss, smoothed with a running median over ``--window`` log rows,
and the learning rate, against iterations) and ``<out>/<name>.csv`` (the logs, one column per
run, so the curve can be re-plotted without the run folders, which stay outside git).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks._common import write_csv, write_figure
from sin import argtypes as A


def read_log(run: Path) -> pd.DataFrame:
    path = Path(run) / "log.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    df = pd.read_csv(path)
    missing = {"iteration", "loss", "lr", "seconds"} - set(df.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    # a resumed run may have re-logged iterations: keep the last entry of each
    df = df.drop_duplicates("iteration", keep="last").sort_values("iteration").reset_index(drop=True)
    # logs written before resumed runs kept their clock restarted it at 0: stitch the segments
    restart = df.seconds.diff() < 0
    if restart.any():
        segment_end = df.seconds.shift().where(restart, 0.0)
        df["seconds"] = df.seconds + segment_end.cumsum()
    return df


def plot(logs: dict, path: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, height_ratios=(3, 1))
    for name, df in logs.items():
        ax_loss.plot(df.iteration, df.loss, alpha=0.25, lw=0.8)
        ax_loss.plot(df.iteration, df.loss.rolling(window, min_periods=1, center=True).median(),
                     lw=1.6, label=f"{name} (running median of {window})", color=ax_loss.lines[-1].get_color())
        ax_lr.plot(df.iteration, df.lr, label=name)
    ax_loss.set_ylabel("training loss (sum over the 8 steps)")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("iteration")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    write_figure(fig, path)


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.training_curve", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("results/training"))
    ap.add_argument("--name", default="loss_curve")
    ap.add_argument("--window", type=A.positive_int, default=25, help="running-median window in log rows")
    return ap


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or a missing / malformed log, one line)."""
    return A.cli_main(build_parser, run, argv)


def run(args) -> int:
    logs = {run.name: read_log(run) for run in args.runs}
    plot(logs, args.out / f"{args.name}.png", args.window)
    merged = pd.concat([df.assign(run=name) for name, df in logs.items()], ignore_index=True)
    write_csv(merged, args.out / f"{args.name}.csv")
    for name, df in logs.items():
        last = df.tail(args.window)
        print(f"{name}: {int(df.iteration.max())} iterations, {df.seconds.max() / 60:.1f} min logged, "
              f"final loss (median of last {len(last)} rows) {last.loss.median():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
