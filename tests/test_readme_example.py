"""The README's Python example runs as written, in a fresh interpreter, with one import.

The example fits the full default roll-up (about two minutes on 2 cores); by default the test
hands its `fc.Rollup(amazon)` the small configuration of `tests/test_rollup.py` (the one
textual change, checked to match once) so it stays fast. ``FCF_README_FULL=1`` runs it verbatim.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CALL = "fc.Rollup(amazon)"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## In Python\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_example_is_one_import():
    code = readme_example()
    imports = [line for line in code.splitlines() if re.match(r"\s*(import|from)\s", line)]
    assert imports == ["import forecasting as fc"], imports
    assert code.count(CALL) == 1


@pytest.mark.slow
def test_the_readme_python_example_runs():
    code = readme_example()
    if os.environ.get("FCF_README_FULL") != "1":
        code = "from tests.test_rollup import SMALL\n" + code.replace(CALL, "fc.Rollup(amazon, SMALL)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "p97.5" in proc.stdout and "free_cash_flow_ttm" in proc.stdout, proc.stdout[-1000:]
