"""``fcf forecast`` end to end: in-process through `experiments.cli.main` and as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import EXIT_BAD_INPUT, main
from features.errors import DataWarning
from features.loader import read_series_config, shipped_data_dir
from forecasting.core.frames import FORECAST_COLUMNS, ShortSeriesWarning
from forecasting.methods.catalogue import resolve

REPO = Path(__file__).resolve().parents[1]
MODELLED = read_series_config().modelled  # the 20 series data/series.csv models
FAST = ["--intervals", "model"]


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FCF_DATA_DIR", raising=False)
    return tmp_path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["forecast", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_out(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, parse_dates=["ds"])


def bad_data_file(folder: Path) -> tuple[Path, int]:
    """The shipped CSV with one value made non-numeric; returns (path, that line)."""
    path = folder / "bad.csv"
    lines = (shipped_data_dir() / "amzn_quarterly.csv").read_text().splitlines(keepends=True)
    line = next(i for i, ln in enumerate(lines) if ln.startswith("free_cash_flow,2020Q3,")) + 1
    fields = lines[line - 1].split(",", 4)
    fields[3] = "twelve"
    lines[line - 1] = ",".join(fields)
    path.write_text("".join(lines))
    shutil.copy(shipped_data_dir() / "series.csv", folder / "series.csv")
    return path, line


def test_every_series_in_the_data_is_forecast(cwd, capsys):
    code, out, err = run_cli(capsys, "--horizon", "2", *FAST, "--out", "fc.csv")
    assert code == 0, err
    assert len(MODELLED) == 20
    for s in MODELLED:
        assert s in out, f"{s} missing from the printed table"
    assert "20 series, last reported quarter 2026Q2, 2 quarters ahead, USD millions" in out
    header = out.splitlines()[0].split()
    assert header[:4] == ["series", "quarter", "model", "point"]
    fc = read_out(cwd / "fc.csv")
    assert list(fc.columns) == FORECAST_COLUMNS
    assert set(fc["unique_id"]) == set(MODELLED)
    assert fc.groupby(["unique_id", "model"]).size().eq(2).all()
    # the shipped company's profile names its default model (chosen on its own backtest)
    defaults = [s.name for s in resolve(None, default="StatsMLCombo")]
    assert defaults == ["SeasonalNaive", "StatsMLCombo"]
    assert list(dict.fromkeys(fc["model"])) == defaults
    assert "default model: StatsMLCombo, Amazon.com, Inc.'s profile default: chosen on Amazon's own backtest" in out
    # the default table leaves out the SeasonalNaive baseline: 20 series x 2 quarters per model
    shown = [m for m in defaults if m != "SeasonalNaive"]
    table = out.splitlines()[1:-4]
    assert len(table) == 40 * len(shown)
    assert all(any(f" {m}" in ln for m in shown) for ln in table)
    assert "wrote fc.csv" in out
    assert sorted(p.name for p in cwd.iterdir()) == ["fc.csv"], "temporary files left behind"


def test_data_no_profile_describes_gets_the_library_default(cwd, capsys):
    data = cwd / "mine.csv"
    shutil.copy(shipped_data_dir() / "amzn_quarterly.csv", data)
    shutil.copy(shipped_data_dir() / "series.csv", cwd / "series.csv")
    code, out, err = run_cli(capsys, "--data", str(data), "--series", "net_sales_aws", "--horizon", "1", *FAST)
    assert code == 0, err
    assert "AutoCombo" in out and "StatsMLCombo" not in out
    assert "default model: the library's AutoCombo (no company profile describes this data)" in out


def test_horizon_models_and_series_options(cwd, capsys):
    code, out, err = run_cli(capsys, "--horizon", "3", "--models", "SeasonalNaive,AutoETS",
                             "--series", "net_sales_aws,free_cash_flow", *FAST, "--out", "sub/fc.csv")
    assert code == 0, err
    fc = read_out(cwd / "sub" / "fc.csv")
    assert set(fc["unique_id"]) == {"net_sales_aws", "free_cash_flow"}
    assert fc.groupby(["unique_id", "model"]).size().to_dict() == {
        (s, m): 3 for s in ("free_cash_flow", "net_sales_aws") for m in ("AutoETS", "SeasonalNaive")}
    assert list(fc["ds"].drop_duplicates()) == list(pd.to_datetime(["2026-09-30", "2026-12-31", "2027-03-31"]))
    # named models are all printed: 2 series x 2 models x 3 quarters
    assert sum(("SeasonalNaive" in ln or "AutoETS" in ln) for ln in out.splitlines()) == 12
    assert "2026Q3" in out and "2027Q1" in out and "2027Q2" not in out
    assert "2 series, last reported quarter 2026Q2, 3 quarters ahead" in out


def test_unknown_series_or_model_exits_2_with_a_suggestion(cwd, capsys):
    code, out, err = run_cli(capsys, "--series", "net_sales_awz", *FAST)
    assert code == EXIT_BAD_INPUT
    assert "no modelled series 'net_sales_awz' (did you mean 'net_sales_aws'?)" in err
    code, out, err = run_cli(capsys, "--models", "AutoETZ", "--series", "net_sales_aws", *FAST)
    assert code == EXIT_BAD_INPUT
    assert "unknown model 'AutoETZ' (did you mean 'AutoETS'?)" in err
    code, out, err = run_cli(capsys, "--horizon", "0", *FAST)
    assert code == EXIT_BAD_INPUT and "horizon h must be >= 1" in err
    assert "Traceback" not in err


def test_bad_data_exits_2_and_leaves_the_existing_output_intact(cwd, capsys):
    bad, line = bad_data_file(cwd)
    target = cwd / "fc.csv"
    target.write_text("previous forecast\n")
    code, out, err = run_cli(capsys, "--data", str(bad), *FAST, "--out", str(target))
    assert code == EXIT_BAD_INPUT
    assert f"bad.csv, line {line}, series free_cash_flow: value_musd 'twelve' is not a number" in err
    assert "Traceback" not in err
    assert target.read_text() == "previous forecast\n"
    assert sorted(p.name for p in cwd.iterdir()) == ["bad.csv", "fc.csv", "series.csv"]


def test_output_is_replaced_atomically(cwd, capsys):
    target = cwd / "fc.csv"
    target.write_text("previous forecast\n")
    code, _, err = run_cli(capsys, "--series", "net_sales_aws", "--horizon", "2", *FAST, "--out", str(target))
    assert code == 0, err
    assert len(read_out(target)) == 2 * len(resolve(None))  # 2 quarters x the default models
    assert sorted(p.name for p in cwd.iterdir()) == ["fc.csv"]


def test_user_csv_with_its_own_metric_names(cwd, capsys):
    path = cwd / "acme.csv"
    ends = pd.date_range("2021-03-31", periods=12, freq="QE")
    rows = ["metric,fiscal_quarter,period_end,value_musd"]
    rows += [f"revenue,{pd.Period(d, freq='Q')},{d.date()},{100 + 5 * i + (8 if d.quarter == 4 else 0)}"
             for i, d in enumerate(ends)]
    # capex only for the last 6 quarters: too short for AutoETS (needs 10)
    rows += [f"capex,{pd.Period(d, freq='Q')},{d.date()},{20 + i}" for i, d in enumerate(ends[-6:])]
    path.write_text("\n".join(rows) + "\n")
    with pytest.warns(ShortSeriesWarning, match="series capex: 6 observations"):
        code, out, err = run_cli(capsys, "--data", str(path), "--horizon", "2", "--models", "AutoETS", *FAST,
                                 "--out", "fc.csv")
    assert code == 0, err
    assert "2 series, last reported quarter 2023Q4, 2 quarters ahead" in out
    table = out.splitlines()
    assert sum("capex" in ln and "AutoETS (as SeasonalNaive)" in ln for ln in table) == 2
    assert sum("revenue" in ln and "AutoETS" in ln and "(as" not in ln for ln in table) == 2
    fc = read_out(cwd / "fc.csv")
    assert set(fc["unique_id"]) == {"revenue", "capex"}
    assert fc["ds"].min() == pd.Timestamp("2024-03-31")


def test_unit_mixup_is_a_warning_and_the_forecast_runs(cwd, capsys):
    path = cwd / "amzn_quarterly.csv"
    lines = (shipped_data_dir() / "amzn_quarterly.csv").read_text().splitlines(keepends=True)
    i = next(i for i, ln in enumerate(lines) if ln.startswith("net_sales_aws,2020Q1,"))
    lines[i] = lines[i].replace(",10219,", ",10219000,")
    path.write_text("".join(lines))
    shutil.copy(shipped_data_dir() / "series.csv", cwd / "series.csv")
    # (in a terminal the CLI prints it to stderr; under pytest the warning is captured here)
    with pytest.warns(DataWarning, match=f"amzn_quarterly.csv, line {i + 1}, series net_sales_aws: "
                                         "value 1.0219e\\+07 is 984x"):
        code, out, err = run_cli(capsys, "--data", str(path), "--series", "net_sales_aws", "--horizon", "1",
                                 "--models", "Naive", *FAST)
    assert code == 0, err
    assert "1 series, last reported quarter 2026Q2, 1 quarters ahead" in out


# --------------------------------------------------------------------------- real processes
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FCF_DATA_DIR", "PYTHONPATH")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return env


@pytest.mark.slow
def test_fcf_forecast_in_a_fresh_process_outside_the_repo(tmp_path):
    """The command with its default conformal intervals from a folder outside the repository
    (two fast models: the default ensemble refits six members in every calibration window)."""
    assert REPO not in tmp_path.parents
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "forecast", "--horizon", "2", "--models", "SeasonalNaive,AutoETS",
         "--out", "fc.csv"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for s in MODELLED:
        assert s in proc.stdout
    assert "20 series, last reported quarter 2026Q2, 2 quarters ahead" in proc.stdout
    fc = read_out(tmp_path / "fc.csv")
    assert set(fc["unique_id"]) == set(MODELLED)
    v = fc[["lo-95", "lo-80", "mean", "hi-80", "hi-95"]].to_numpy()
    assert (v[:, :-1] <= v[:, 1:]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.csv"]


def test_fcf_script_reports_bad_data_without_a_traceback(tmp_path):
    script = Path(sys.executable).parent / "fcf"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "experiments.cli"]
    bad, line = bad_data_file(tmp_path)
    (tmp_path / "fc.csv").write_text("previous forecast\n")
    proc = subprocess.run([*cmd, "forecast", "--data", str(bad), "--out", "fc.csv"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-3000:]
    assert f"bad.csv, line {line}, series free_cash_flow" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "fc.csv").read_text() == "previous forecast\n"


def test_out_that_is_a_directory_fails_before_forecasting(cwd, capsys):
    (cwd / "results").mkdir()
    code, out, err = run_cli(capsys, "--series", "net_sales_aws", "-H", "1", *FAST, "--out", "results")
    assert code == EXIT_BAD_INPUT
    assert "--out results is a directory; give a file name" in err
    assert out == "" and "Traceback" not in err


def test_unwritable_out_is_a_clear_error(cwd, capsys):
    (cwd / "file.txt").write_text("not a folder\n")
    code, out, err = run_cli(capsys, "--series", "net_sales_aws", "-H", "1", "--models", "Naive", *FAST,
                             "--out", "file.txt/fc.csv")
    assert code == EXIT_BAD_INPUT
    assert "cannot write --out file.txt/fc.csv" in err and "Traceback" not in err
    assert sorted(p.name for p in cwd.iterdir()) == ["file.txt"]
