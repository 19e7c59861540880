"""New rows against the data file already there: append-only, restatements as later vintages.

For each metric and quarter the filings give (`features.sec.quarters.quarterly_rows`):

- not in the file: a new row (the original, ``vintage`` empty);
- in the file with the same value (its latest vintage), or one that differs only by the
  rounding of a value derived from a sum of rounded quarters (`quarters.Value`): nothing,
  values are never repeated;
- in the file with another value: a restatement, a new row whose ``vintage`` is the filing
  date from which the new value is known. Existing rows are never edited. If the file's
  latest row for that quarter already has a vintage on or after that date, the file is
  newer than the filing and nothing is added (reported as `stale`).

`render` writes the result as text: the old file byte for byte, then the new lines (a
``vintage`` column is added, empty for the old rows, when the file has none).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.errors import DataValidationError, Problem
from features.sec.quarters import ASOF, ROW_COLUMNS, TOLERANCE, usd_of

__all__ = ["latest_values", "Merge", "merge_rows", "read_file_rows", "render"]


@dataclass(frozen=True)
class Merge:
    """`append`: rows to add (`ROW_COLUMNS`); `restated`: those of them that restate a value
    (with ``previous_musd``); `unchanged`: rows the file already has; `stale`: restatements
    skipped because the file holds a newer vintage."""

    append: pd.DataFrame
    restated: pd.DataFrame
    unchanged: int
    stale: pd.DataFrame

    @property
    def new_quarters(self) -> list[str]:
        new = self.append[self.append["vintage"] == ""]
        return sorted(set(new["fiscal_quarter"]))


def read_file_rows(path: str | Path) -> tuple[list[str], pd.DataFrame, str]:
    """The data file's header, its rows as text (plus ``lineno_``) and its whole text."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:  # keep \r\n line ends as they are
        text = f.read()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataValidationError(Problem(str(path), "empty file: no header line")) from None
    rows = []
    for lineno, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue
        rec = dict(zip(header, (f.strip() for f in fields)))
        rec["lineno_"] = lineno
        rows.append(rec)
    frame = pd.DataFrame(rows, columns=[*header, "lineno_"]).fillna("")
    return header, frame, text


def latest_values(existing: pd.DataFrame) -> dict[tuple[str, str], tuple[int, str]]:
    """``(metric, fiscal_quarter) -> (USD, vintage)`` of each quarter's latest row in the file."""
    e = existing.copy()
    if "vintage" not in e:
        e["vintage"] = ""
    e["v_"] = [pd.Timestamp(v).strftime("%Y-%m-%d") if v else "" for v in e["vintage"]]
    e = e.sort_values(["metric", "fiscal_quarter", "v_"], kind="stable")
    out = {}
    for r in e.drop_duplicates(["metric", "fiscal_quarter"], keep="last").itertuples(index=False):
        try:
            out[(r.metric, r.fiscal_quarter)] = (usd_of(r.value_musd), r.v_)
        except (ArithmeticError, ValueError):
            continue  # a bad value: the loader reports it with its line
    return out


def merge_rows(existing: pd.DataFrame, new: pd.DataFrame) -> Merge:
    """Compare `new` rows (``quarterly_rows`` output; the last row of each quarter counts)
    with the file's rows; see the module docstring for the rules."""
    have = latest_values(existing)
    final = new.drop_duplicates(["metric", "fiscal_quarter"], keep="last")
    append, restated, stale, unchanged = [], [], [], 0
    for r in final.to_dict("records"):
        key = (r["metric"], r["fiscal_quarter"])
        row = {c: r[c] for c in ROW_COLUMNS}
        if key not in have:
            row["vintage"] = ""
            append.append(row)
            continue
        usd, vintage = have[key]
        if abs(usd - usd_of(r["value_musd"])) <= int(r.get(TOLERANCE) or 0):
            unchanged += 1
            continue
        when = r.get(ASOF) or r["vintage"]
        if not when or (vintage and vintage >= when):
            stale.append({**row, "file_vintage": vintage})
            continue
        row["vintage"] = when
        append.append(row)
        restated.append({**row, "previous_musd": _fmt(usd)})
    cols = ROW_COLUMNS
    return Merge(pd.DataFrame(append, columns=cols), pd.DataFrame(restated, columns=[*cols, "previous_musd"]),
                 unchanged, pd.DataFrame(stale, columns=[*cols, "file_vintage"]))


def _fmt(usd: int) -> str:
    from features.sec.quarters import musd

    return musd(usd)


def render(header: list[str], text: str, append: pd.DataFrame) -> str:
    """The file's text with `append` rows added at the end (see the module docstring)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    add_vintage = "vintage" not in header and (append["vintage"] != "").any()
    columns = [*header, "vintage"] if add_vintage else list(header)
    if add_vintage:
        lines = text.splitlines()
        lines = [lines[0] + ",vintage"] + [ln + "," if ln.strip() else ln for ln in lines[1:]]
        body = newline.join(lines) + newline
    else:
        body = text if not text or text.endswith("\n") else text + newline
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline)
    for r in append.to_dict("records"):
        writer.writerow([r.get(c, "") for c in columns])
    return body + buf.getvalue()
