"""SEC EDGAR ingestion: filed XBRL facts -> the long data file's rows.

- `features.sec.mapping`: the per-company map from XBRL concepts and dimension members to
  metric names (``sec_mapping.yaml`` beside the data file);
- `features.sec.facts`: facts from an XBRL instance or a company-facts JSON, as one table;
- `features.sec.quarters`: three-month values per fiscal quarter, Q4 and cash flows from
  year-to-date differences, restatements as later vintages;
- `features.sec.merge`: new rows against the data file already there (append-only).
"""

from features.sec.facts import facts_from_companyfacts, facts_from_xbrl
from features.sec.mapping import CompanyMapping, MetricMap, read_mapping
from features.sec.quarters import annual_rows, quarterly_rows

__all__ = ["CompanyMapping", "MetricMap", "annual_rows", "facts_from_companyfacts", "facts_from_xbrl",
           "quarterly_rows", "read_mapping"]
