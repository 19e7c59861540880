"""Planted look-ahead bugs that the leakage and provenance tests must catch (run by hand).

    python -m tests.mutants            # every mutant (and the unmutated baseline first)
    python -m tests.mutants --list     # names, files and the tests each one runs
    python -m tests.mutants --only calibration.window --only selection
    python -m tests.mutants --set golden   # changes the golden tests must catch (a refit one
                                           # quarter late, another interval level, a dropped
                                           # ensemble member, another seed)

Each mutant loosens one "reported by the cutoff" filter of a learned step by one quarter. For
each, the tracked (and new, not ignored) files of this tree are copied to a temporary
directory, the textual mutation is applied there (its pattern must match exactly once, so a
refactoring that moves the code makes the list fail loudly instead of rotting), and the
mutant's tests run in the copy with this interpreter, the copy first on PYTHONPATH (checked:
``forecasting``, ``features`` and ``experiments`` must import from the copy, not from the
editable install). A mutant is *caught* when at least one of its tests fails. The unmutated
copy runs every test of the list first (``--no-baseline`` skips it): a test that fails there
would "catch" every mutant. Exit status 1 if any mutant survives (or the baseline fails).

Filters deliberately absent: ``cutoff < C`` conditions on when a past forecast was made,
where the same rows also pass ``ds <= C`` (a forecast made at C or later is of quarters after
C), were removed as dead; `known_past` keeps its own, which `tests/test_ensemble.py` reaches
with rows no backtest produces (mutant ``known_past.made``). Likewise the error windows'
``known_by`` is reached by its unit test only (the roll-up's history already ends at the
origin, which mutant ``rollup.history`` covers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The tests of each kind of step (pytest arguments, relative to the tree's root).
BACKTEST = ("tests/test_leakage.py", "-k", "backtest_forecasts or backtest_learned")
ROLLUP = ("tests/test_leakage.py", "-k", "rollup_and_claims")
FRAME_CONTRACT = ("tests/test_ensemble.py::test_combine_ignores_what_it_should_not_see",
                  "tests/test_autocombo.py::test_the_choice_never_reads_an_outcome_after_its_cutoff")
QE = "pd.offsets.QuarterEnd(1)"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = (
    Mutant("calibration.window", "forecasting/methods/calibration.py",
           "(self.ds <= t)", "(self.ds <= t + 1)", BACKTEST),
    Mutant("calibration.adaptive_level", "forecasting/methods/calibration.py",
           "new = (ds > prev) & (ds <= t)", "new = (ds > prev) & (ds <= t + 1)", BACKTEST),
    Mutant("known_past.outcomes", "forecasting/core/past.py",
           'ok = (pd.to_datetime(p["ds"]) <= cut)', f'ok = (pd.to_datetime(p["ds"]) <= cut + {QE})', BACKTEST),
    Mutant("known_past.made", "forecasting/core/past.py",
           'ok &= pd.to_datetime(p["cutoff"]) < cut', f'ok &= pd.to_datetime(p["cutoff"]) < cut + {QE}',
           FRAME_CONTRACT),
    Mutant("backtest.train", "forecasting/rolling/backtest.py",
           'train = df[df["ds"] <= cut]', f'train = df[df["ds"] <= cut + {QE}]', BACKTEST),
    Mutant("selection", "forecasting/rollup/selection.py",
           '(sc["ds"] <= c)', f'(sc["ds"] <= c + {QE})', ROLLUP),
    Mutant("metrics.seasonal_scale", "forecasting/core/metrics.py",
           'known = hist[uid]["ds"] <= cut', f'known = hist[uid]["ds"] <= cut + {QE}', ROLLUP),
    Mutant("simulate.series_level", "forecasting/rollup/simulate.py",
           '(history["ds"] <= cutoff)]', f'(history["ds"] <= cutoff + {QE})]', ROLLUP),
    Mutant("simulate.error_windows", "forecasting/rollup/simulate.py",
           "last > pd.Timestamp(known_by)", "last > pd.Timestamp(known_by) + cal.offset(1)",
           # the roll-up hands it the history up to the origin only, so a later window has no
           # outcomes there: the unit test, with the whole history, is the one that reaches it
           ("tests/test_simulate.py", "tests/test_leakage.py", "-k",
            "residual_windows_keep_only_windows_reported_by_then or rollup_and_claims")),
    Mutant("rollup.history", "forecasting/rollup/paths.py",
           'hist = pipe.history[pipe.history["ds"] <= origin]',
           'hist = pipe.history[pipe.history["ds"] <= origin + rs.calendar.offset(1)]', ROLLUP),
    Mutant("rollup.spread_calibration", "forecasting/rollup/paths.py",
           "raw_simulation(pipe, c, min(h, reported), cache)",
           "raw_simulation(pipe, c, min(h, reported + 1), cache)", ROLLUP),
    Mutant("reconciliation.scale", "forecasting/rollup/pipeline.py",
           "scale[scale.index <= cutoff]", f"scale[scale.index <= cutoff + {QE}]", ROLLUP),
    Mutant("reconciliation.segment_errors", "forecasting/rollup/pipeline.py",
           "known = (dss <= c) &", "known = (dss <= c + cal.offset(1)) &", ROLLUP),
    Mutant("reconciliation.cashflow_errors", "forecasting/rollup/pipeline.py",
           'past = past[(past["ds"] <= c) &', 'past = past[(past["ds"] <= c + cal.offset(1)) &', ROLLUP),
    Mutant("bridge.fit", "forecasting/reconcile/bridge.py",
           "w = w[w.index <= pd.Timestamp(cutoff)]", f"w = w[w.index <= pd.Timestamp(cutoff) + {QE}]", ROLLUP),
    Mutant("claims.history", "forecasting/claims/calibration.py",
           'known = pipe.history[pipe.history["ds"] <= c]', f'known = pipe.history[pipe.history["ds"] <= c + {QE}]',
           ROLLUP),
    Mutant("claims.base_rate", "forecasting/claims/calibration.py",
           "known = res <= c", f"known = res <= c + {QE}", ROLLUP),
    Mutant("claims.recalibration", "forecasting/claims/recalibrate.py",
           "known = res <= c\n", 'known = res <= c + np.timedelta64(92, "D")\n',
           ("tests/test_claims_recalibrate.py", "-k", "never_sees")),
)


class MutantRot(RuntimeError):
    """A mutant's pattern no longer matches its file exactly once."""


#: Changes a person could make by mistake that the golden tests exist to catch: each must move
#: a pinned figure beyond the tolerance measured across machines (tests/golden/measure.py).
GOLDEN = ("tests/test_golden.py::test_key_figures_match_the_golden_file",
          "tests/test_command_figures.py::test_commands_give_the_pinned_numbers")
GOLDEN_MUTANTS = (
    Mutant("golden.refit_one_quarter_late", "forecasting/rolling/backtest.py",
           'train = df[df["ds"] <= cut]', f'train = df[df["ds"] <= cut - {QE}]', GOLDEN),
    Mutant("golden.interval_level", "forecasting/methods/calibration.py",
           "a = adaptive_level(scored, lv / 100, t, settings, at=cutoff)",
           "a = adaptive_level(scored, (lv + 5) / 100, t, settings, at=cutoff)", GOLDEN),
    Mutant("golden.dropped_member", "forecasting/methods/catalogue.py",
           '"AutoETSLog", "FosterLog", "GriffinWattsLog")', '"AutoETSLog", "FosterLog")', GOLDEN),
    # the roll-up's paths are random: the command's default seed must be pinned (the config's
    # own default, RollupConfig.seed, is never used by the golden runs, which name their seed,
    # and BacktestConfig.seed moves nothing: the gradient-boosted members fit deterministically)
    Mutant("golden.seed", "experiments/cmd_rollup.py",
           'p.add_argument("--seed", type=int, default=0,', 'p.add_argument("--seed", type=int, default=1,', GOLDEN),
)
SETS = {"leakage": MUTANTS, "golden": GOLDEN_MUTANTS, "all": MUTANTS + GOLDEN_MUTANTS}


def copy_tree(dst: Path) -> None:
    """Copy the tracked and the new (not ignored) files of ROOT into `dst`."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         check=True, capture_output=True).stdout.decode()
    for rel in filter(None, out.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def apply(root: Path, m: Mutant) -> int:
    """Apply `m` in the tree at `root`; returns the mutated line number (1-based)."""
    f = root / m.path
    text = f.read_text(encoding="utf-8")
    n = text.count(m.old)
    if n != 1:
        raise MutantRot(f"mutant {m.name}: {m.old!r} occurs {n} times in {m.path} (expected once); update tests/mutants.py")
    line = text[:text.index(m.old)].count("\n") + 1
    f.write_text(text.replace(m.old, m.new), encoding="utf-8")
    return line


def _env(root: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "tests"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(root: Path) -> None:
    """The copy's packages, not the editable install's, are the ones imported there."""
    code = "import features, forecasting, experiments; print(features.__file__); print(forecasting.__file__); " \
           "print(experiments.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=_env(root), check=True, capture_output=True,
                         text=True).stdout.split()
    wrong = [p for p in out if not Path(p).resolve().is_relative_to(root.resolve())]
    if wrong:
        raise RuntimeError(f"the copy at {root} imports {wrong} from outside it; the mutants would test the original")


def run_tests(root: Path, tests: tuple[str, ...], tag: str) -> tuple[int, list[str], float]:
    """Run pytest on `tests` in the tree at `root`: (exit code, failing test ids, seconds)."""
    xml = root / f"junit-{tag}.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--rootdir", str(root),
           f"--junitxml={xml}", *tests]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
    failed = []
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(case.get("name"))
    if proc.returncode not in (0, 1) and not failed:  # collection error, crash: say so
        failed = [f"pytest exit {proc.returncode}: {proc.stdout[-400:]}{proc.stderr[-400:]}"]
    return proc.returncode, failed, time.time() - t0


def in_copy(job):
    """Copy the tree, apply `mutant` (None: the baseline), run `tests` there."""
    mutant, tests = job
    with tempfile.TemporaryDirectory(prefix="fcf-mutant-") as tmp:
        root = Path(tmp)
        copy_tree(root)
        check_imports(root)
        line = apply(root, mutant) if mutant is not None else 0
        code, failed, secs = run_tests(root, tests, mutant.name if mutant else "baseline")
    return mutant, line, code, failed, secs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="run this mutant only (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run side by side (default 1)")
    ap.add_argument("--set", choices=sorted(SETS), default="leakage",
                    help="leakage: the look-ahead mutants (default); golden: changes the golden tests must "
                         "catch; all: both")
    args = ap.parse_args(argv)
    pool_of = SETS[args.set]
    names = {m.name for m in pool_of}
    unknown = sorted(set(args.only) - names)
    if unknown:
        ap.error(f"unknown mutant(s) {unknown}; --list shows them")
    chosen = [m for m in pool_of if not args.only or m.name in args.only]
    for m in chosen:  # every pattern matches once in the working tree, before anything runs
        if (ROOT / m.path).read_text(encoding="utf-8").count(m.old) != 1:
            raise MutantRot(f"mutant {m.name}: pattern {m.old!r} does not occur exactly once in {m.path}")
    if args.list:
        for m in chosen:
            print(f"{m.name:32s} {m.path:36s} {' '.join(m.tests)}")
        return 0
    ok = True
    if not args.no_baseline:
        union = list(dict.fromkeys(m.tests for m in chosen))
        baseline = [in_copy((None, u)) for u in union]
        bad = [f for _, _, _, f, _ in baseline if f]
        print(f"baseline (no mutation): {'PASS' if not bad else 'FAIL ' + str(bad)} "
              f"({sum(s for *_, s in baseline):.0f} s)", flush=True)
        ok = not bad
    print(f"{'mutant':32s} {'where':40s} {'result':8s} {'secs':>5s}  failing tests", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for m, line, code, failed, secs in pool.map(in_copy, [(m, m.tests) for m in chosen]):
            caught = bool(failed)
            ok &= caught
            print(f"{m.name:32s} {m.path + ':' + str(line):40s} {'caught' if caught else 'MISSED':8s} {secs:5.0f}  "
                  f"{', '.join(failed) if failed else '-'}", flush=True)
    print("all mutants caught" if ok else "SOME MUTANT SURVIVED (or the baseline failed)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
