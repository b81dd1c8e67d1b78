"""Every benchmark command line speaks sin.argtypes: one-line argument errors with exit 2, expected
failures as one ``error:`` line with exit 2. (The table scripts' own failure cases are in
test_benchmarks_quality.py and test_so_data.py.)"""

import importlib

import pytest

#: The benchmark scripts with this CLI (semseg_table and e2e_superpixels follow in their own branch).
SCRIPTS = ("superpixel_quality", "sod_table", "training_readme_facts", "runtime", "sin_speed", "sin_precision",
           "sin_training_eval", "slic_calibration", "snic_ers_check", "so_speed", "training_curve",
           "deeplab_port_check")


@pytest.mark.parametrize("name", SCRIPTS)
def test_argument_errors_are_one_line_with_exit_2(name, capsys):
    script = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exc:
        script.main(["--no-such-flag"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"python -m benchmarks.{name}: error: ") and err.rstrip().endswith("(see --help)")
    with pytest.raises(SystemExit) as exc:
        script.main(["--help"])
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("name, argv, match", [
    ("training_readme_facts", ["--out", "{tmp}/none"], "No such file or directory"),
    ("training_curve", ["{tmp}/no_run", "--out", "{tmp}/o"], "no training log at"),
    ("so_speed", ["--data-root", "{tmp}/none", "--out", "{tmp}/o"], "saliency-mini dataset folder not found"),
    ("snic_ers_check", ["--data-root", "{tmp}/none", "--out", "{tmp}/o"], "BSDS500 dataset folder not found"),
    ("slic_calibration", ["--data-root", "{tmp}/none", "--out", "{tmp}/o.md"], "BSDS500 dataset folder not found"),
    ("sin_precision", ["--data-root", "{tmp}/none", "--out", "{tmp}/o"], "BSDS500 dataset folder not found"),
    ("runtime", ["--providers", "nosuch", "--out", "{tmp}/o"], "unknown superpixel provider 'nosuch'"),
])
def test_expected_failures_are_one_line_with_exit_2(name, argv, match, tmp_path, capsys):
    script = importlib.import_module(f"benchmarks.{name}")
    assert script.main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and match in err, err


def test_sin_speed_small_curve_measures_every_network_side_by_side(tmp_path):
    """``--small`` with several networks (a speed/quality curve): one interleaved run, a ratio per
    network against SIN, at the sizes asked for, with 1 and 2 threads."""
    import pandas as pd

    from benchmarks import sin_speed
    from sin.checkpoint import DEFAULT_WEIGHTS

    out = tmp_path / "speed.md"
    argv = ["--small", "small", str(DEFAULT_WEIGHTS), "--sizes", "481x321", "--repeats", "1", "--no-snic",
            "--out", str(out)]
    assert sin_speed.main(argv) == 0
    df = pd.read_csv(tmp_path / "speed_small.csv")
    assert df["threads"].tolist() == [1, 2] and set(df["image"]) == {"481x321"}
    assert {"SIN[small] ms", "SIN[sin_bsds500] ms", "SIN ms", "SIN[small] / SIN"} <= set(df.columns)
    assert not any("SNIC" in c for c in df.columns)
    assert (df["SIN[small] ms"] > 0).all()
    text = (tmp_path / "speed_small.md").read_text()
    assert "`small`, `" in text and "| 2 | 481x321 |" in text
