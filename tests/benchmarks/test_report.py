"""benchmarks._report: every piece of report writing on hand-computed cases."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import _report as R


def test_markdown_table_formats_cells_by_column():
    df = pd.DataFrame({"m": ["a", "b"], "k": [200, 300], "v": [0.123456, np.nan], "d": [-0.5, 0.25]})
    assert R.markdown_table(df, {"v": ".3f", "d": "+.2f"}).splitlines() == [
        "| m | k | v | d |", "|---|---|---|---|", "| a | 200 | 0.123 | -0.50 |", "| b | 300 |  | +0.25 |"]
    # ints stay ints even in a column with a float format; text is left alone
    assert R.markdown_table(pd.DataFrame({"x": [3, 4]}), {"x": ".2f"}).splitlines()[2] == "| 3.00 |"
    assert R.markdown_table(pd.DataFrame({"x": ["n/a"]}), {"x": ".2f"}).splitlines()[2] == "| n/a |"


@pytest.mark.parametrize("lo, hi, expected", [(-0.2, -0.1, True), (0.1, 0.2, True), (-0.1, 0.1, False),
                                              (0.0, 0.1, False), (-0.1, 0.0, False)])
def test_excludes_zero_counts_an_end_on_zero_as_including_it(lo, hi, expected):
    assert R.excludes_zero(lo, hi) is expected


def test_interval_cells():
    assert R.format_interval(-0.0163, -0.018, -0.0146) == "-0.0163 [-0.0180, -0.0146]"
    assert R.interval_cell(-0.0163, -0.018, -0.0146, n_better=18, n=200) == \
        "-0.0163 [-0.0180, -0.0146] **excludes 0**, 18/200"
    assert R.interval_cell(0.0013, -0.00004, 0.0025, n_better=115.0, n=200.0) == \
        "+0.0013 [-0.0000, +0.0025] includes 0, 115/200"
    assert R.interval_cell(0.5, 0.25, 0.75, spec="+.2f") == "+0.50 [+0.25, +0.75] **excludes 0**"


def test_interval_sentences_for_lower_and_higher_is_better():
    better = R.interval_sentence("SIN", "SLIC", "MAE", -0.0059, -0.0078, -0.0039, 1000, lower_is_better=True)
    assert better == ("SIN is better than SLIC on MAE: SIN - SLIC = -0.0059 (95 % CI [-0.0078, -0.0039], 1000 "
                      "images); larger than the noise (the interval excludes 0).")
    worse = R.interval_sentence("SIN", "ERS", "S-measure", -0.01, -0.02, -0.005, 10, lower_is_better=False)
    assert worse.startswith("SIN is worse than ERS on S-measure: SIN - ERS = -0.0100")
    noise = R.interval_sentence("SIN", "SSN", "MAE", -0.0006, -0.0023, 0.0010, 1000, lower_is_better=True)
    assert noise == ("SIN vs SSN on MAE: SIN - SSN = -0.0006 (95 % CI [-0.0023, +0.0010], 1000 images); not "
                     "larger than the noise (the interval contains 0).")


def test_provider_rows_show_the_spec_only_where_it_says_more():
    plain = [{"method": "slic", "spec": "slic", "tag": "slic-1", "weights": None, "sha256": None, "trained": None},
             {"method": "sin", "spec": "sin", "tag": "sin-2", "weights": "w.pt", "sha256": None, "trained": False}]
    assert R.provider_rows(plain).splitlines() == [
        "| method | cache tag | weights | weights sha256 |", "|---|---|---|---|",
        "| slic | slic-1 |  |  |", "| sin | sin-2 | w.pt | none: UNTRAINED |"]
    plain[0]["spec"] = "slic:compactness=20.0"
    assert R.provider_rows(plain).splitlines()[2] == "| slic | `slic:compactness=20.0` | slic-1 |  |  |"


def test_machine_line_shows_json_lists_as_tuples():
    assert R.machine_line({"cpu_count": 2, "load_avg_1_5_15": [3.99, 4.3, 4.09], "python": "3.11"}) == \
        "cpu_count=2, load_avg_1_5_15=(3.99, 4.3, 4.09), python=3.11"


def test_sidecar_paths_and_round_trip(tmp_path):
    assert R.sidecar_path(tmp_path / "quality.md") == tmp_path / "quality.json"
    assert R.sidecar_path(tmp_path / "quality.csv") == tmp_path / "quality.json"
    assert R.sidecar_path(tmp_path / "table2_ECSSD_per_image.csv.gz") == tmp_path / "table2_ECSSD_per_image.json"
    record = {"command": "python -m x", "machine": {"load": (1.0, 2.0)}, "providers": [], "path": tmp_path}
    out = R.write_sidecar(tmp_path / "quality.md", record)
    assert out == tmp_path / "quality.json"
    back = R.read_sidecar(tmp_path / "quality.csv", required=("command", "providers"))
    assert back["sidecar"] == R.SIDECAR_VERSION and back["machine"] == {"load": [1.0, 2.0]}
    assert back["path"] == str(tmp_path) and list(json.loads(out.read_text())) == ["sidecar", *record]
    with pytest.raises(ValueError, match="lacks history"):
        R.read_sidecar(tmp_path / "quality.md", required=("history",))


@pytest.mark.parametrize("content, match", [("{not json", "not valid JSON"), ("[1, 2]", "version-1"),
                                            ('{"sidecar": 99}', "version-1")])
def test_bad_sidecars_are_refused_by_name(tmp_path, content, match):
    (tmp_path / "quality.json").write_text(content)
    with pytest.raises(ValueError, match=match):
        R.read_sidecar(tmp_path / "quality.md")
    with pytest.raises(FileNotFoundError, match="no provenance sidecar"):
        R.read_sidecar(tmp_path / "other.md")


def test_provider_info_records_weights_and_untrained():
    from sin.providers import get_provider

    slic = R.provider_info(get_provider("slic:compactness=20"))
    assert slic["spec"] == "slic:compactness=20" and slic["trained"] is None and slic["weights"] is None
    assert slic["tag"] == get_provider("slic:compactness=20").tag
    untrained = R.provider_info(get_provider("sin:weights=untrained"))
    assert untrained["trained"] is False and untrained["sha256"] is None and "UNTRAINED" in untrained["note"]


def test_command_line_names_the_module(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/x/benchmarks/sod_table.py", "--dataset", "ECSSD"])
    assert R.command_line() == "python -m benchmarks.sod_table --dataset ECSSD"
    assert R.command_line(["--limit", 3]) == "python -m benchmarks.sod_table --limit 3"
