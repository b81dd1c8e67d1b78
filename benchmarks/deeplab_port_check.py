"""Check the PyTorch DeepLabV3-MobileNetV2 port against the tflite model it was ported from.

For every image (5 saliency-mini, 10 MSRC21 test spread over the split, 5 BSDS500 test) resized to the
export size 257 x 257, both models get the same float input; we compare

* logits (257 x 257 x 21, after the final align-corners resize): relative error
  ``max|a - b| / max|b|`` and ``mean|a - b| / max|b|`` (a = port, b = tflite);
* the VOC argmax: fraction of pixels with the same class;
* the penultimate features ``concat_projection/Relu`` (33 x 33 x 256), read from the interpreter
  with ``experimental_preserve_all_tensors=True``, with the same two relative errors;

and whether the 110 tensors of the ``.pt`` file equal the tflite constants bit for bit. It also
times both forward passes (median of repeats, 1 and 2 CPU threads). Writes
``results/deeplab_port_check.md``.

Usage::

    python -m benchmarks.deeplab_port_check [--weights PT] [--tflite FILE]

Defaults (:mod:`sin.paths`): ``$SIN_DEEPLAB_WEIGHTS`` / ``$SIN_DEEPLAB_TFLITE``, else under the weights
root (``$SIN_WEIGHTS_ROOT``, else ``<repo>/../shared/weights``). The images come from three datasets
under the data root (``$SIN_DATA_ROOT``, else ``<repo>/../shared/data``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from downstream.bilateral_inception.deeplab_mobilenetv2 import VOC_CLASSES, build_deeplabv3_mnv2
from sin.checkpoint import load_torch_file
from sin.io import atomic_write, read_image
from sin import argtypes as A
from sin.paths import data_root, deeplab_tflite, deeplab_weights

REPO = Path(__file__).resolve().parents[1]
EXPORT_SIZE = 257
FEATURE_TENSOR = "concat_projection/Relu"


def select_images(data_root, n_saliency: int = 5, n_msrc: int = 10, n_bsds: int = 5) -> list[tuple[str, Path]]:
    """``(dataset, path)``: first sorted images of saliency-mini and BSDS500 test, MSRC21 test spread evenly."""
    root = Path(data_root)
    out = []
    sal = root / "saliency-mini" / "images"
    msrc_split = root / "MSRC21" / "splits" / "test.txt"
    bsds = root / "BSDS500" / "images" / "test"
    for p in (sal, msrc_split, bsds):
        if not p.exists():
            raise FileNotFoundError(f"dataset path not found: {p} (set SIN_DATA_ROOT)")
    out += [("saliency-mini", p) for p in sorted(sal.glob("*.jpg"))[:n_saliency]]
    ids = [s.strip() for s in msrc_split.read_text().split() if s.strip()]
    step = max(1, len(ids) // max(n_msrc, 1))  # spread over the split (ids are grouped by category)
    out += [("MSRC21", root / "MSRC21" / "images" / f"{i}.png") for i in ids[::step][:n_msrc]]
    out += [("BSDS500", p) for p in sorted(bsds.glob("*.jpg"))[:n_bsds]]
    return out


def load_export_input(path) -> np.ndarray:
    """Image resized (bilinear) to the 257 x 257 export size: ``(257, 257, 3)`` float32 in [0, 1]."""
    img = Image.fromarray(read_image(path)).resize((EXPORT_SIZE, EXPORT_SIZE), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


class TfliteDeepLab:
    """The tflite reference: ``run(x01) -> (logits (257,257,21), features (33,33,256))``."""

    def __init__(self, tflite_path, num_threads: int = 2):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # optional dependency (extra "tflite")
            raise ImportError("the tflite reference needs ai-edge-litert (pip install ai-edge-litert)") from exc
        path = Path(tflite_path)
        if not path.is_file():
            raise FileNotFoundError(f"tflite model not found: {path}")
        import warnings
        with warnings.catch_warnings():  # preserve_all_tensors warns that it is a debugging option
            warnings.simplefilter("ignore")
            self.it = Interpreter(str(path), num_threads=num_threads, experimental_preserve_all_tensors=True)
        self.it.allocate_tensors()
        self.by_name = {t["name"]: t["index"] for t in self.it.get_tensor_details()}
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()[0]["index"]

    def run(self, x01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.it.set_tensor(self.inp, (x01 * 2.0 - 1.0)[None].astype(np.float32))
        self.it.invoke()
        return self.it.get_tensor(self.out)[0].copy(), self.it.get_tensor(self.by_name[FEATURE_TENSOR])[0].copy()

    def constants(self) -> dict[str, np.ndarray]:
        """The weight tensors stored in the flatbuffer, by name."""
        out = {}
        for t in self.it.get_tensor_details():
            try:
                out[t["name"]] = self.it.get_tensor(t["index"])
            except ValueError:
                pass
        return out


def relative_errors(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(max|a-b| / max|b|, mean|a-b| / max|b|)`` with ``b`` the reference."""
    scale = float(np.abs(b).max())
    if scale == 0.0:
        raise ValueError("reference tensor is all zeros; relative error undefined")
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max() / scale), float(d.mean() / scale)


@dataclass
class Comparison:
    logits_rel_max: float
    logits_rel_mean: float
    argmax_agreement: float
    features_rel_max: float
    features_rel_mean: float
    classes: str  # the port's predicted classes covering >= 2 % of the image


def compare_with_tflite(model, reference: TfliteDeepLab, x01: np.ndarray) -> Comparison:
    """Run the port and the tflite model on one ``(257, 257, 3)`` input and compare them."""
    ref_logits, ref_feat = reference.run(x01)
    with torch.no_grad():
        out = model(torch.from_numpy(x01).permute(2, 0, 1)[None])
    logits = out.logits[0].permute(1, 2, 0).numpy()
    feat = out.features[0].permute(1, 2, 0).numpy()
    if logits.shape != ref_logits.shape or feat.shape != ref_feat.shape:
        raise RuntimeError(f"shape mismatch: port {logits.shape}/{feat.shape}, tflite {ref_logits.shape}/{ref_feat.shape}")
    lmax, lmean = relative_errors(logits, ref_logits)
    fmax, fmean = relative_errors(feat, ref_feat)
    pred = logits.argmax(-1)
    agree = float((pred == ref_logits.argmax(-1)).mean())
    frac = np.bincount(pred.ravel(), minlength=len(VOC_CLASSES)) / pred.size
    classes = ", ".join(f"{VOC_CLASSES[c]} {frac[c]:.0%}" for c in np.argsort(-frac) if frac[c] >= 0.02)
    return Comparison(lmax, lmean, agree, fmax, fmean, classes)


def weights_match(weights_path, reference: TfliteDeepLab) -> tuple[int, int]:
    """``(n_equal, n_total)``: how many ``.pt`` tensors equal the tflite constants bit for bit."""
    state = load_torch_file(weights_path, "DeepLab weights")
    consts = reference.constants()
    n_eq = sum(1 for k, v in state.items() if k in consts and np.array_equal(v.numpy(), consts[k]))
    return n_eq, len(state)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.deeplab_port_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, default=None, help="the port's weights (default: sin.paths.deeplab_weights())")
    ap.add_argument("--tflite", type=Path, default=None, help="the TFLite model (default: sin.paths.deeplab_tflite())")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "deeplab_port_check.md")
    ap.add_argument("--repeats", type=A.positive_int, default=11, help="timing repeats (median)")
    return ap


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or missing files, one line)."""
    return A.cli_main(build_parser, run, argv, expected=(ValueError, OSError, ImportError))


def run(args) -> Path:
    args.weights, args.tflite = deeplab_weights(args.weights), deeplab_tflite(args.tflite)

    torch.set_num_threads(2)
    model = build_deeplabv3_mnv2(args.weights)
    reference = TfliteDeepLab(args.tflite, num_threads=2)
    n_eq, n_total = weights_match(args.weights, reference)
    images = select_images(data_root())

    rows = []
    for dataset, path in images:
        x = load_export_input(path)
        c = compare_with_tflite(model, reference, x)
        rows.append((dataset, path.stem, c))
        print(f"{dataset:14s} {path.stem:10s} logits max {c.logits_rel_max:.2e} mean {c.logits_rel_mean:.2e} "
              f"argmax {c.argmax_agreement:.4%} features max {c.features_rel_max:.2e}  [{c.classes}]")

    # timing: port and tflite side by side at 1 and 2 threads (torch's 2-thread pool suffers badly
    # when the 2 cores are shared with other jobs, so both settings are reported)
    x = torch.from_numpy(load_export_input(images[0][1])).permute(2, 0, 1)[None]
    xn = x[0].permute(1, 2, 0).numpy()
    timings = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ref_t = TfliteDeepLab(args.tflite, num_threads=threads)
        with torch.inference_mode():
            model(x)  # warm-up
            t_port = _median_time(lambda: model(x), args.repeats)
        ref_t.run(xn)
        t_tfl = _median_time(lambda r=ref_t: r.run(xn), args.repeats)
        timings[threads] = (t_port, t_tfl)
    load = os.getloadavg()

    cs = [r[2] for r in rows]

    def worst(attr):
        return max(getattr(c, attr) for c in cs)

    lines = [
        "# DeepLabV3-MobileNetV2 (depth 0.5, OS 8): PyTorch port vs tflite",
        "",
        "Generated by `python -m benchmarks.deeplab_port_check` "
        f"(port: `downstream/bilateral_inception/deeplab_mobilenetv2.py`; reference: `{args.tflite.name}` "
        "run by ai-edge-litert on CPU, XNNPACK delegate).",
        "",
        f"Inputs: {len(rows)} real images resized (bilinear) to {EXPORT_SIZE}x{EXPORT_SIZE}, float32 in [0, 1]; "
        "both models receive the same array (tflite: `2x - 1`, the port maps [0, 1] -> [-1, 1] itself).",
        "Relative errors: `max|a-b| / max|b|` and `mean|a-b| / max|b|` (a = port, b = tflite). "
        "Logits are the 257x257x21 output (after the align-corners resize); features are "
        f"`{FEATURE_TENSOR}` (33x33x256).",
        "",
        f"Weights: {n_eq}/{n_total} tensors of `{args.weights.name}` equal the tflite constants bit for bit.",
        "",
        "## Summary",
        "",
        "| quantity | worst image | mean over images | requirement |",
        "|---|---|---|---|",
        f"| logits rel. error (max) | {worst('logits_rel_max'):.2e} | "
        f"{np.mean([c.logits_rel_max for c in cs]):.2e} | < 1e-3 |",
        f"| logits rel. error (mean) | {worst('logits_rel_mean'):.2e} | "
        f"{np.mean([c.logits_rel_mean for c in cs]):.2e} | |",
        f"| argmax agreement | {min(c.argmax_agreement for c in cs):.4%} | "
        f"{np.mean([c.argmax_agreement for c in cs]):.4%} | > 99 % |",
        f"| features rel. error (max) | {worst('features_rel_max'):.2e} | "
        f"{np.mean([c.features_rel_max for c in cs]):.2e} | |",
        f"| features rel. error (mean) | {worst('features_rel_mean'):.2e} | "
        f"{np.mean([c.features_rel_mean for c in cs]):.2e} | |",
        "",
        f"Forward time at 257x257, batch 1, median of {args.repeats} (port: torch CPU; tflite: XNNPACK): "
        + "; ".join(f"{th} thread{'s' if th > 1 else ''}: port {tp * 1e3:.1f} ms, tflite {tt * 1e3:.1f} ms"
                    for th, (tp, tt) in timings.items())
        + f" (load average after timing {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; 2-core machine shared "
        "with other jobs, so timings are indicative only).",
        "",
        "## Per image",
        "",
        "| dataset | image | logits max | logits mean | argmax agree | features max | features mean | "
        "port's classes (>= 2 % of pixels) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, name, c in rows:
        lines.append(f"| {dataset} | {name} | {c.logits_rel_max:.2e} | {c.logits_rel_mean:.2e} | "
                     f"{c.argmax_agreement:.4%} | {c.features_rel_max:.2e} | {c.features_rel_mean:.2e} | {c.classes} |")
    text = "\n".join(lines) + "\n"
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    sys.exit(main())
