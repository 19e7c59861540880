"""The one exception (and one warning) every input check raises.

A message names the file, the line, the series and the problem, so a user can open the file
at that line and fix it:

    amzn_quarterly.csv, line 17, series net_sales_aws: value 'n/a' is not a number
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataValidationError", "DataWarning", "InputError", "OptionError", "Problem"]


class InputError(ValueError):
    """Bad input a user can fix: a data, profile, guidance, scenario or claims file, or an option
    (a model name, a horizon, a setting). The ``fcf`` command prints its message on one line
    and exits 2; any other exception is a bug and prints its traceback."""


class OptionError(InputError):
    """An option or argument that cannot work (an unknown model, a horizon out of range, too
    few windows for what was asked); the message says what would."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file. `line` is the 1-based line in the file (header = 1)."""

    file: str
    problem: str
    line: int | None = None
    series: str | None = None

    def __str__(self) -> str:
        where = [Path(self.file).name if self.file else "<frame>"]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.series is not None:
            where.append(f"series {self.series}")
        return f"{', '.join(where)}: {self.problem}"


class DataValidationError(InputError):
    """Raised when an input file breaks the data contract.

    `problems` lists every problem found (not only the first); `file`, `line`, `series` and
    `problem` are those of the first, for code that wants one.
    """

    def __init__(self, problems: list[Problem] | Problem):
        problems = [problems] if isinstance(problems, Problem) else list(problems)
        if not problems:
            raise ValueError("DataValidationError needs at least one problem")
        self.problems = problems
        first = problems[0]
        self.file, self.line, self.series, self.problem = (
            first.file,
            first.line,
            first.series,
            first.problem,
        )
        shown = problems[:20]
        text = "\n  ".join(str(p) for p in shown)
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        head = f"{len(problems)} problem(s) in the input data:\n  " if len(problems) > 1 else ""
        super().__init__(f"{head}{text}{more}")


class DataWarning(UserWarning):
    """A suspicious but possibly valid input value (for example one 1000x off its neighbours)."""
