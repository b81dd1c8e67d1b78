"""Floating-point work of SIN networks of several widths/depths at one input size.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` (PyTorch's own counter: 2 FLOPs per
multiply-add of every convolution, from the operands' shapes) on one forward pass of

* the plain :class:`sin.model.SINNet` (eight 2-channel logit maps at every position, transposed
  convolutions), the network as trained, and
* :class:`sin.fast_model.FastSIN`, what ``sin.superpixels`` runs (BatchNorm folded, each transposed
  convolution as two regular ones, single-channel heads at the inserted positions only).

Element-wise work (LeakyReLU, the interleaving copies) is not counted; it is a few percent.
:func:`conv_macs` counts the plain network's multiply-adds from the layer shapes alone (forward
hooks), an independent check of the counter (``tests/sin/test_small_sin.py``).

Usage::

    python -m benchmarks.sin_flops [--size 481x321] [--n-segments 600] [--archs 1:2 0.5:2 0.5:1] \\
        [--out results/small_sin/flops.md]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from benchmarks._common import command_line, write_text
from sin import argtypes as A
from sin.fast_model import FastSIN
from sin.geometry import grid_shape, network_size
from sin.model import SINNet


def counted_flops(module, x) -> int:
    """FLOPs of ``module(x)`` by ``torch.utils.flop_counter.FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())


def conv_macs(model: nn.Module, x) -> int:
    """Multiply-adds of every ``Conv2d`` / ``ConvTranspose2d`` in ``model(x)``, from the layer
    shapes: output elements x input channels per group x kernel area (a transposed convolution:
    input elements x output channels per group x kernel area)."""
    total = 0

    def hook(mod, inputs, output):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, nn.ConvTranspose2d):
            total += inputs[0].numel() * (mod.out_channels // mod.groups) * k
        else:
            total += output.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def rows(archs, height: int, width: int, k: int) -> list[dict]:
    n, m = grid_shape(k, height, width)
    hn, wn = network_size(n, m)
    x = torch.zeros(1, 3, hn, wn)
    out = []
    for w, d in archs:
        model = SINNet(width=w, depth=d).eval()
        fast = FastSIN.from_model(model)
        out.append({"width": w, "depth": d, "params": sum(p.numel() for p in model.parameters()),
                    "plain": counted_flops(model, x), "plain_hooks": 2 * conv_macs(model, x),
                    "fast": counted_flops(fast, x), "grid": (n, m), "input": (hn, wn)})
    return out


def report(table, height, width, k) -> str:
    full = next((r for r in table if (r["width"], r["depth"]) == (1.0, 2)), table[0])
    n, m = table[0]["grid"]
    lines = [f"# SIN FLOPs at {width}x{height}, K={k} (network input {table[0]['input'][1]}x{table[0]['input'][0]}, "
             f"{n}x{m} seeds)", "", f"`{command_line()}`. Counted with `torch.utils.flop_counter.FlopCounterMode` "
             "(2 FLOPs per multiply-add of every convolution) on one forward pass of the plain `SINNet` (eight "
             "2-channel logit maps everywhere, as trained) and of `FastSIN` (what `sin.superpixels` runs: BN folded, "
             "transposed convolutions as two regular ones, 1-channel heads at the inserted positions only). "
             "Element-wise work (LeakyReLU, interleaving copies) is not counted.", "",
             "| width | depth | parameters | plain SINNet GFLOP | FastSIN GFLOP (inference) | FastSIN MFLOP per "
             "superpixel | FastSIN vs width 1 |", "|---|---|---|---|---|---|---|"]
    for r in table:
        if r["plain"] != r["plain_hooks"]:
            raise RuntimeError(f"FlopCounterMode and the shape count disagree: {r}")
        lines.append(f"| {r['width']:g} | {r['depth']} | {r['params']:,} | {r['plain'] / 1e9:.3f} | "
                     f"{r['fast'] / 1e9:.3f} | {r['fast'] / 1e6 / (n * m):.2f} | {r['fast'] / full['fast']:.3f} |")
    lines += ["", "The plain network's count equals the count from the layer shapes (`conv_macs`, forward hooks).", ""]
    return "\n".join(lines)


def _arch(text: str) -> tuple[float, int]:
    try:
        w, d = text.split(":")
        return float(w), int(d)
    except ValueError:
        raise ValueError(f"--archs takes WIDTH:DEPTH, e.g. 0.5:1, got {text!r}") from None


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.sin_flops", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="481x321", help="image WIDTHxHEIGHT")
    ap.add_argument("--n-segments", type=A.positive_int, default=600)
    ap.add_argument("--archs", nargs="+", default=["1:2", "0.5:2", "0.5:1"], help="WIDTH:DEPTH of each network")
    ap.add_argument("--out", type=Path, default=Path("results/small_sin/flops.md"))
    return ap


def run(args):
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size takes WIDTHxHEIGHT, e.g. 481x321, got {args.size!r}") from None
    table = rows([_arch(a) for a in args.archs], height, width, args.n_segments)
    text = report(table, height, width, args.n_segments)
    write_text(args.out, text)
    print(text)
    return table


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or expected failure, one line)."""
    return A.cli_main(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
