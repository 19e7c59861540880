"""A new company's SEC mapping, chosen from its filed facts: concepts, fiscal year end, segments.

`discover(facts, segment_facts)` reads the facts of a company (`features.sec.facts` output: its
company facts, and the dimensional facts of its newest 10-K) and decides, writing down why:

- the **fiscal year end**: the month (nearest month end, for 52/53-week years) in which most
  of its 10-K twelve-month periods end;
- one metric per standard us-gaap concept group (`STANDARD_METRICS`): revenue, operating
  income, operating cash flow, purchases of property and equipment, proceeds from their sale
  and capitalized software, each kept when the company filed one of its concepts; several
  concepts of a group are listed newest first (the mapping prefers earlier ones per period,
  so a company that changed tags keeps its whole history);
- **capex** = purchases - proceeds (where filed) + capitalized software (where filed) and
  **free cash flow** = operating cash flow - capex, as formulas;
- the **reportable segments**: members of ``us-gaap:StatementBusinessSegmentsAxis`` that have
  both revenue and operating income in the newest 10-K's fiscal year (a member with one of them
  only is reported and left out; none: totals only).

The result is a `Discovery`: the mapping document (``sec_mapping.yaml``'s dict), the segments
and the lines of explanation (`Discovery.notes`) that `fcf company add` prints and writes into
the profile. Nothing here reads a file or the network.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from features.sec.quarters import nearest_month_end

__all__ = ["Discovery", "discover", "fiscal_year_end_month", "SEGMENT_AXIS", "segment_name", "STANDARD_METRICS"]

SEGMENT_AXIS = "us-gaap:StatementBusinessSegmentsAxis"

#: metric -> (us-gaap concepts that make it, in order of preference when equally recent; nonnegative; description)
STANDARD_METRICS: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "revenue": (("us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax", "us-gaap:Revenues",
                 "us-gaap:SalesRevenueNet", "us-gaap:RevenueFromContractWithCustomerIncludingAssessedTax"),
                True, "Total revenue"),
    "operating_income": (("us-gaap:OperatingIncomeLoss",), False, "Operating income (loss)"),
    "operating_cash_flow": (("us-gaap:NetCashProvidedByUsedInOperatingActivities",
                             "us-gaap:NetCashProvidedByUsedInOperatingActivitiesContinuingOperations"),
                            False, "Net cash provided by (used in) operating activities"),
    "purchases_of_property_and_equipment": (("us-gaap:PaymentsToAcquirePropertyPlantAndEquipment",
                                             "us-gaap:PaymentsToAcquireProductiveAssets"),
                                            True, "Purchases of property and equipment (gross)"),
    "proceeds_from_property_and_equipment_sales": (("us-gaap:ProceedsFromSaleOfPropertyPlantAndEquipment",
                                                    "us-gaap:ProceedsFromSaleOfProductiveAssets"),
                                                   True, "Proceeds from sales of property and equipment"),
    "capitalized_internal_use_software": (("us-gaap:PaymentsToDevelopSoftware",), True,
                                          "Capitalized internal-use software development costs"),
}
_SEGMENT_REVENUE = STANDARD_METRICS["revenue"][0]
_SEGMENT_OI = STANDARD_METRICS["operating_income"][0]


@dataclass
class Discovery:
    """What `discover` chose: the mapping document, the segments, what is missing, and why."""

    mapping: dict
    fiscal_year_end_month: int
    segments: dict[str, str] = field(default_factory=dict)  # name -> member
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    descriptions: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def label_style(self) -> str:
        return "calendar" if self.fiscal_year_end_month == 12 else "fiscal"


def _days(df: pd.DataFrame) -> pd.Series:
    return (df["end"] - df["start"]).dt.days + 1


def fiscal_year_end_month(facts: pd.DataFrame) -> tuple[int | None, str]:
    """The month most 10-K twelve-month periods end in (nearest month end), and why."""
    annual = facts[facts["form"].str.startswith("10-K") & _days(facts).between(357, 372)]
    months = Counter()
    for end in annual["end"].drop_duplicates():
        m = nearest_month_end(end)
        if m is not None:
            months[m.month] += 1
    if not months:
        return None, "no 10-K twelve-month period among the facts"
    month, n = months.most_common(1)[0]
    weeks = not annual["end"].dt.is_month_end.all()
    why = (f"fiscal year ends in month {month}: {n} of {sum(months.values())} distinct 10-K year ends"
           + ("; 52/53-week years (periods end off the month end), each quarter mapped to the fiscal quarter of "
              "its nearest month end" if weeks else ""))
    return month, why


def segment_name(member: str) -> str:
    """``amzn:NorthAmericaSegmentMember`` -> ``north_america`` (the profile's segment name)."""
    local = member.split(":", 1)[-1]
    local = re.sub(r"(Reportable)?(Operating)?(Segments?)?Member$", "", local) or local
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", local))
    return re.sub(r"[^a-z0-9_]+", "_", words.lower()).strip("_") or "segment"


def _present(facts: pd.DataFrame, concepts: tuple[str, ...]) -> list[str]:
    """The concepts of `concepts` that have facts, the most recently ending first."""
    own = facts[facts["concept"].isin(concepts) & (facts["axis"] == "")]
    if own.empty:
        return []
    last = own.groupby("concept")["end"].max()
    order = {c: i for i, c in enumerate(concepts)}
    return sorted(last.index, key=lambda c: (-last[c].value, order[c]))


def _segments(seg: pd.DataFrame, notes: list[str]) -> dict[str, str]:
    seg = seg[(seg["axis"] == SEGMENT_AXIS) & _days(seg).between(357, 372)]
    if seg.empty:
        notes.append(f"segments: none ({SEGMENT_AXIS} has no fiscal-year facts in the 10-K read); totals only")
        return {}
    newest = seg["end"].max()
    year = seg[seg["end"] == newest]
    rev = set(year.loc[year["concept"].isin(_SEGMENT_REVENUE), "member"])
    oi = set(year.loc[year["concept"].isin(_SEGMENT_OI), "member"])
    both = sorted(rev & oi, key=lambda m: -year.loc[year["member"] == m, "value"].max())
    for m in sorted((rev | oi) - (rev & oi)):
        notes.append(f"segment member {m} left out: the 10-K files its {'revenue' if m in rev else 'operating income'}"
                     " only")
    out: dict[str, str] = {}
    for m in both:
        name = segment_name(m)
        while name in out:
            name += "_2"
        out[name] = m
    if out:
        notes.append(f"segments: {', '.join(f'{n} ({m})' for n, m in out.items())}: revenue and operating income "
                     f"on {SEGMENT_AXIS} in the fiscal year ended {newest.date()}")
    else:
        notes.append("segments: none with both revenue and operating income; totals only")
    return out


def discover(facts: pd.DataFrame, segment_facts: pd.DataFrame | None = None, *, company: str = "", ticker: str = "",
             cik: int | None = None) -> Discovery:
    """Choose a mapping for a company from its facts (see the module docstring)."""
    notes: list[str] = []
    month, why = fiscal_year_end_month(facts if segment_facts is None else pd.concat([facts, segment_facts]))
    if month is None:
        month = 12
        why = "fiscal year end unknown (no 10-K year among the facts): assumed December"
    notes.append(why)
    metrics: dict[str, dict] = {}
    descriptions: dict[str, tuple[bool, str]] = {}
    missing = []
    for name, (concepts, nonneg, text) in STANDARD_METRICS.items():
        found = _present(facts, concepts)
        if found:
            metrics[name] = {"concepts": found}
            descriptions[name] = (nonneg, text)
            notes.append(f"{name}: {', '.join(found)}")
        elif name in ("revenue", "operating_income", "operating_cash_flow", "purchases_of_property_and_equipment"):
            missing.append(name)
            notes.append(f"{name}: MISSING (none of {', '.join(concepts)} is filed)")
    if segment_facts is not None and len(segment_facts):
        segments = _segments(segment_facts, notes)
    else:
        segments = {}
        notes.append("segments: no 10-K XBRL instance read; totals only")
    for seg, member in segments.items():
        for measure, concepts in (("revenue", _SEGMENT_REVENUE), ("operating_income", _SEGMENT_OI)):
            metric = f"{measure}_{seg}"
            metrics[metric] = {"concepts": list(concepts), "axis": SEGMENT_AXIS, "members": [member],
                               "required": False}
            descriptions[metric] = (measure == "revenue", f"{'Revenue' if measure == 'revenue' else 'Operating income'}"
                                                          f" of the {seg} segment ({member})")
    if "purchases_of_property_and_equipment" in metrics:
        terms = ["purchases_of_property_and_equipment"]
        if "proceeds_from_property_and_equipment_sales" in metrics:
            terms.append("- proceeds_from_property_and_equipment_sales")
        if "capitalized_internal_use_software" in metrics:
            terms.append("+ capitalized_internal_use_software")
        metrics["capex"] = {"formula": " ".join(terms)}
        descriptions["capex"] = (True, "Capex: " + " ".join(terms).replace("_", " "))
        notes.append(f"capex = {' '.join(terms)}")
        if "operating_cash_flow" in metrics:
            metrics["free_cash_flow"] = {"formula": "operating_cash_flow - capex"}
            descriptions["free_cash_flow"] = (False, "Free cash flow = operating cash flow - capex")
            notes.append("free_cash_flow = operating_cash_flow - capex")
    if "free_cash_flow" not in metrics:
        missing.append("free_cash_flow")
        notes.append("free_cash_flow: MISSING (needs operating cash flow and purchases of property and equipment)")
    for name in ("proceeds_from_property_and_equipment_sales", "capitalized_internal_use_software"):
        if name in metrics:  # not every 10-Q files them: their absence must not stop `fcf data update`
            metrics[name]["required"] = False
    doc = {"company": company, "ticker": ticker.upper(), **({"cik": int(cik)} if cik else {}),
           "fiscal_year_end_month": int(month), "label_style": "calendar" if month == 12 else "fiscal",
           "source": "xbrl" if segments else "companyfacts", "metrics": metrics}
    return Discovery(doc, int(month), segments, missing, notes, descriptions)
