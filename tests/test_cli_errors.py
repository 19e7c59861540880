"""A user's mistake exits 2 with one line; a bug exits 1 with its traceback (one test per path).

Bad-input paths: data file, company profile, guidance file, scenario file, claims file, an
option (unknown model, horizon out of range), a missing input file, an output that cannot be
written. Bug paths: an exception raised inside the library that is not one of the library's
own input errors, including a plain ``ValueError`` (pandas' and numpy's errors are
``ValueError``s: before this split they were reported as bad input).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap

import pytest

import forecasting.rolling.forecast as forecast_module
from experiments.cli import EXIT_BAD_INPUT, EXIT_ERROR, main
from features.loader import load_quarterly


def _run(capsys, argv):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def small_csv(tmp_path):
    """A copy of the shipped file's AWS rows (a valid data file of one series)."""
    df = load_quarterly(series=["net_sales_aws"])
    path = tmp_path / "aws.csv"
    rows = ["metric,fiscal_quarter,period_end,value_musd,source"]
    for r in df.itertuples():
        q = (r.ds.month - 1) // 3 + 1
        rows.append(f"{r.unique_id},{r.ds.year}Q{q},{r.ds.date()},{r.y},test")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_bad_data_file_is_one_line(capsys, small_csv):
    text = small_csv.read_text().splitlines()
    text[3] = text[3].rsplit(",", 2)[0] + ",n/a,test"
    small_csv.write_text("\n".join(text) + "\n")
    code, err = _run(capsys, ["forecast", "--data", str(small_csv), "--horizon", "2"])
    assert code == EXIT_BAD_INPUT
    line = _one_line(err)
    assert "aws.csv" in line and "line 4" in line and "not a number" in line


def test_bad_profile_is_one_line(capsys, tmp_path):
    bad = tmp_path / "co.yaml"
    bad.write_text("name: co\ntitle: Co\nfiscal_year_end_month: 13\ndata: x.csv\n")
    code, err = _run(capsys, ["forecast", "--company", str(bad)])
    assert code == EXIT_BAD_INPUT
    assert "co.yaml" in _one_line(err)


def test_bad_guidance_file_is_one_line(capsys, tmp_path):
    from features.guidance import QUARTERLY_GUIDANCE_FILE
    from features.loader import shipped_data_dir

    with open(shipped_data_dir() / QUARTERLY_GUIDANCE_FILE, newline="") as f:
        rows = list(csv.reader(f))
    low, high = rows[0].index("low_musd"), rows[0].index("high_musd")
    rows[1][low], rows[1][high] = rows[1][high], rows[1][low]  # low above high
    with open(tmp_path / QUARTERLY_GUIDANCE_FILE, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    code, err = _run(capsys, ["backtest", "--guidance", str(tmp_path), "--series", "net_sales_total",
                              "--models", "SeasonalNaive", "--windows", "1", "--warmup", "0", "--no-track"])
    assert code == EXIT_BAD_INPUT
    assert QUARTERLY_GUIDANCE_FILE in _one_line(err)


def test_bad_scenario_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: s\ndrivers:\n  no_such_driver: 3\n")
    code, err = _run(capsys, ["scenario", str(bad), "--no-track"])
    assert code == EXIT_BAD_INPUT
    assert "s.yaml" in _one_line(err)


def test_bad_claims_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("name: c\nclaims:\n  - id: x\n")
    code, err = _run(capsys, ["claims", str(bad), "--no-track"])
    assert code == EXIT_BAD_INPUT
    assert "c.yaml" in _one_line(err)


@pytest.mark.parametrize("argv, words", [
    (["backtest", "--models", "AutoETZ", "--no-track"], "did you mean 'AutoETS'"),
    (["forecast", "--horizon", "0"], "horizon"),
    (["forecast", "--data", "no/such/file.csv"], "file.csv"),
])
def test_bad_option_or_missing_file_is_one_line(capsys, argv, words):
    code, err = _run(capsys, argv)
    assert code == EXIT_BAD_INPUT
    assert words in _one_line(err)


def test_unwritable_output_is_one_line(capsys, tmp_path, small_csv):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = _run(capsys, ["forecast", "--data", str(small_csv), "--horizon", "2",
                              "--models", "SeasonalNaive", "--out", str(blocker / "fc.csv")])
    assert code == EXIT_BAD_INPUT
    assert "file" in _one_line(err)


@pytest.mark.parametrize("exc", [ValueError("cannot handle a non-unique multi-index!"), KeyError("unique_id"),
                                 OSError("no filename: not the user's file")])
def test_a_bug_prints_its_traceback_and_exits_1(capsys, monkeypatch, small_csv, exc):
    """An exception inside the library that is none of its input errors is a bug."""
    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(forecast_module, "forecast", broken)  # what `fcf forecast` calls
    code, err = _run(capsys, ["forecast", "--data", str(small_csv), "--horizon", "2"])
    assert code == EXIT_ERROR
    assert "Traceback (most recent call last)" in err and "in broken" in err
    assert "this is a bug, not bad input" in err.strip().splitlines()[-1]


def test_registry_is_full_in_a_fresh_interpreter():
    """`get_spec`, `resolve` and the listing work without importing the catalogue first."""
    code = textwrap.dedent("""
        import sys
        from forecasting.methods.registry import REGISTRY, get_spec, registered
        assert "forecasting.methods.catalogue" in sys.modules  # the package registers the built-ins
        assert get_spec("AutoETS").name == "AutoETS"
        names = registered()
        assert len(names) == len(REGISTRY) >= 39 and names[:2] == ["Naive", "SeasonalNaive"], names
        assert "GuidedFoster" in registered("guided")
        print(len(names))
    """)
    for snippet in (code,
                    "from forecasting.methods.registry import REGISTRY\nassert 'AutoCombo' in REGISTRY\n",
                    "import forecasting.methods.autocombo\nfrom forecasting.methods.registry import get_spec\nget_spec('Foster')\n"):
        proc = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
