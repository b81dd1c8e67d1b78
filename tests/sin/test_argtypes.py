"""sin.argtypes (the one command-line vocabulary) and sin.paths' DeepLab weights default."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from sin import argtypes as A

REPO = REPO_ROOT


def test_parser_errors_are_one_line_with_exit_2(capsys):
    p = A.Parser(prog="prog")
    p.add_argument("--n", type=A.positive_int)
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("go").add_argument("--k", type=A.positive_int)
    for argv in (["--n", "0"], ["--bogus"], ["go", "--k", "x"]):
        with pytest.raises(SystemExit) as exc:
            p.parse_args(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err and "usage:" not in err and "(see --help)" in err
    assert p.parse_args(["--n", "3"]).n == 3


def test_run_cli_exit_codes(capsys):
    assert A.run_cli(lambda: None) == 0 and A.run_cli(lambda: 1) == 1

    def fails(exc):
        def fn():
            raise exc
        return fn

    assert A.run_cli(fails(ValueError("bad\n  value"))) == 2
    assert capsys.readouterr().err == "error: bad value\n"
    assert A.run_cli(fails(PermissionError(13, "Permission denied", "/x/y"))) == 2
    assert capsys.readouterr().err == "error: Permission denied: /x/y\n"
    assert A.run_cli(fails(FileNotFoundError("weights not found: w.pt"))) == 2
    assert capsys.readouterr().err == "error: weights not found: w.pt\n"
    assert A.run_cli(fails(MemoryError())) == 2 and "out of memory" in capsys.readouterr().err
    assert A.run_cli(fails(KeyboardInterrupt())) == 130
    assert A.run_cli(fails(KeyError("missing key")), expected=(KeyError,)) == 2
    assert capsys.readouterr().err.endswith("error: missing key\n")
    with pytest.raises(RuntimeError):  # a bug keeps its traceback
        A.run_cli(fails(RuntimeError("bug")))


def test_cli_main_parses_runs_and_maps_results_to_exit_codes(capsys):
    def build_parser():
        p = A.Parser(prog="prog")
        p.add_argument("--rc")
        return p

    def run(args):
        return {"table": [1, 2], "one": 1, "true": True, "bad": None}[args.rc] if args.rc != "raise" else \
            (_ for _ in ()).throw(FileNotFoundError("missing input"))

    assert A.cli_main(build_parser, run, ["--rc", "table"]) == 0  # the Python API's result: done
    assert A.cli_main(build_parser, run, ["--rc", "one"]) == 1
    assert A.cli_main(build_parser, run, ["--rc", "true"]) == 0 and A.cli_main(build_parser, run, ["--rc", "bad"]) == 0
    assert A.cli_main(build_parser, run, ["--rc", "raise"]) == 2
    assert capsys.readouterr().err == "error: missing input\n"


def test_dataset_flag_takes_a_name_and_data_root_a_path(capsys):
    p = A.Parser(prog="prog")
    A.add_dataset_args(p, default="ECSSD")
    args = p.parse_args(["--data-root", "/d/ECSSD"])
    assert args.dataset == "ECSSD" and args.data_root == Path("/d/ECSSD")
    with pytest.raises(SystemExit):
        p.parse_args(["--dataset", "../shared/data/ECSSD"])
    assert "not a path" in capsys.readouterr().err
    q = A.Parser(prog="q")
    A.add_dataset_args(q, choices=("bsds500", "folder"), default="bsds500")
    with pytest.raises(SystemExit):
        q.parse_args(["--dataset", "nyu"])


def test_provider_flags(capsys):
    from sin.providers import Provider

    p = A.Parser(prog="prog")
    A.add_provider_args(p, default=("slic", "grid"))
    assert p.parse_args([]).providers == ["slic", "grid"] and not p.parse_args([]).skip_unavailable
    one = A.Parser(prog="one")
    A.add_provider_args(one, default="slic", several=False)
    assert isinstance(one.parse_args([]).provider, Provider)  # resolved while parsing, the default too
    assert one.parse_args(["--provider", "slic:compactness=20"]).provider.params["compactness"] == 20
    with pytest.raises(SystemExit):
        one.parse_args(["--provider", "nosuch"])
    assert "unknown superpixel provider 'nosuch'" in capsys.readouterr().err


def test_resolve_providers_raises_value_errors_or_skips(capsys):
    provs = A.resolve_providers(["slic", "grid", "slic"])
    assert [p.name for p in provs] == ["slic", "grid"]
    with pytest.raises(ValueError, match="nosuch.*--skip-unavailable"):
        A.resolve_providers(["slic", "nosuch"])
    assert [p.name for p in A.resolve_providers(["nosuch", "grid"], skip_unavailable=True)] == ["grid"]
    assert "skipping" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no provider left"):
        A.resolve_providers(["nosuch"], skip_unavailable=True)


def test_cache_flag_is_the_cache_root():
    p = A.Parser(prog="prog")
    A.add_cache_args(p)
    args = p.parse_args(["--cache", "/c", "--recompute"])
    assert args.cache == Path("/c") and args.recompute
    assert "DIR/labels" in p.format_help()


def test_output_dir(tmp_path):
    assert A.output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        A.output_dir(tmp_path / "file")
    with pytest.raises(OSError, match="cannot create output folder"):
        A.output_dir(tmp_path / "file" / "sub")


def test_config_dataclass_holds_the_defaults():
    @dataclasses.dataclass(frozen=True)
    class Config:
        sizes: tuple = (200, 400)
        processes: int = 2
        out: Path | None = None

    p = A.Parser(prog="prog")
    p.add_argument("--sizes", nargs="+", type=A.positive_int)
    p.add_argument("--processes", type=A.positive_int)
    p.add_argument("--out", type=Path)
    A.config_defaults(p, Config)
    args = p.parse_args([])
    assert args.sizes == [200, 400] and args.processes == 2 and args.out is None
    assert A.config_from_args(Config, args) == Config()
    assert A.config_from_args(Config, p.parse_args(["--sizes", "5", "--processes", "1"])) == Config((5,), 1)
    with pytest.raises(ValueError, match="'sizes' has no command-line flag"):
        A.config_defaults(A.Parser(prog="x"), Config)


def test_deeplab_weights_default_follows_the_environment(monkeypatch, tmp_path):
    from sin import paths

    monkeypatch.delenv("SIN_DEEPLAB_WEIGHTS", raising=False)
    monkeypatch.setenv("SIN_WEIGHTS_ROOT", str(tmp_path / "w"))
    assert paths.deeplab_weights() == tmp_path / "w" / paths.DEEPLAB_WEIGHTS_FILE
    assert paths.deeplab_tflite() == tmp_path / "w" / paths.DEEPLAB_TFLITE_FILE
    monkeypatch.setenv("SIN_DEEPLAB_WEIGHTS", str(tmp_path / "mine.pt"))
    assert paths.deeplab_weights() == tmp_path / "mine.pt"
    assert paths.deeplab_weights(tmp_path / "arg.pt") == tmp_path / "arg.pt"


def test_no_python_310_only_zip_strict():
    """``requires-python >= 3.9``: ``zip(..., strict=...)`` is a TypeError there."""
    found = []
    for folder in ("sin", "downstream", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "zip" and \
                        any(k.arg == "strict" for k in node.keywords):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found
