"""How many SLIC runs the ``slic`` provider's count calibration needs (no timing: run counts).

    python -m benchmarks.slic_calibration [--data-root DIR] [--first 0] [--images 20]

Counts the scikit-image SLIC calls per label map on BSDS500 test images at K = 200 and 600,
for the provider's default first request (``first_ratio=0.85``) and for ``first_ratio=1.0``
(the request equal to K, as before the change), and the count/K range reached. Writes
``results/providers/slic_calibration.md``. Deterministic: independent of machine load.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sin import argtypes as A


def build_parser() -> A.Parser:
    p = A.Parser(prog="python -m benchmarks.slic_calibration", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, default=None,
                   help="the BSDS500 folder (default: $SIN_BSDS500, else $SIN_DATA_ROOT/BSDS500)")
    p.add_argument("--first", type=A.non_negative_int, default=0, help="index of the first test image")
    p.add_argument("--images", type=A.positive_int, default=20)
    p.add_argument("--out", type=Path, default=Path("results/providers/slic_calibration.md"))
    return p


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or expected failure, one line)."""
    return A.cli_main(build_parser, run, argv)


def run(args):

    import sin.providers.slic as S
    from sin.datasets.bsds500 import BSDS500
    from sin.image import as_float_rgb
    from sin.io import atomic_write, read_image

    ds = BSDS500(args.data_root, split="test")
    paths = [ds.image_path(i) for i in range(args.first, min(len(ds), args.first + args.images))]
    images = [as_float_rgb(read_image(f)) for f in paths]
    calls = [0]
    real = S.slic

    def counting(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    S.slic = counting
    rows = ["| first_ratio | K | images | SLIC runs | runs per map | count/K min | mean | max |",
            "|---|---|---|---|---|---|---|---|"]
    try:
        for ratio in (1.0, 0.85):
            for k in (200, 600):
                calls[0] = 0
                r = [(int(S.slic_superpixels(im, k, first_ratio=ratio).max()) + 1) / k for im in images]
                rows.append(f"| {ratio} | {k} | {len(images)} | {calls[0]} | {calls[0] / len(images):.2f} | "
                            f"{min(r):.2f} | {np.mean(r):.3f} | {max(r):.2f} |")
    finally:
        S.slic = real
    text = (f"# SLIC count calibration: runs per map\n\nBSDS500 test images {args.first}..{args.first + len(images) - 1}, "
            "compactness 10, tolerance 0.1, at most 4 runs.\n\n" + "\n".join(rows) + "\n")
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
