"""One company in one object: its profile, reported quarters, guidance and consensus.

`load_company` reads what `fcf rollup` reads for ``--company NAME`` (or a profile YAML): the
profile's data file through `features.loader.load_quarterly`, its guidance files with the
company's fiscal year-end month, and its consensus file where the profile names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.profile import DEFAULT_COMPANY, CompanyProfile, load_profile, shipped_profile

__all__ = ["Company", "load_company"]


@dataclass(frozen=True)
class Company:
    """A company's profile with the data read for it.

    Attributes:
        profile: the `features.profile.CompanyProfile` (segment tree, cash-flow series, calendar).
        data: long frame ``unique_id, ds, y`` of every modelled series (USD millions).
        guidance: `features.guidance.GuidanceBook`, or None when the company has no guidance files.
        consensus: `features.consensus.ConsensusBook`, or None when the profile names none.
    """

    profile: CompanyProfile
    data: pd.DataFrame
    guidance: object | None = None
    consensus: object | None = None

    @property
    def name(self) -> str:
        return self.profile.name


def load_company(company: str | Path | CompanyProfile = DEFAULT_COMPANY, guidance: bool = True,
                 consensus: bool = True) -> Company:
    """The profile, quarters, guidance and consensus of a shipped company (``"amazon"``), a
    profile YAML path or a `CompanyProfile`; bad files raise `features.errors.InputError` kinds.

    `guidance=False` / `consensus=False` skip reading them (like ``fcf rollup --guidance none``).
    """
    from features.consensus import profile_consensus
    from features.guidance import guidance_files, load_guidance_files
    from features.loader import load_quarterly

    if isinstance(company, CompanyProfile):
        profile = company
    elif isinstance(company, Path) or str(company).endswith((".yaml", ".yml")):
        profile = load_profile(company)
    else:
        profile = shipped_profile(str(company))
    df = load_quarterly(str(profile.data))
    book = None
    if guidance:
        book = load_guidance_files(guidance_files(profile, None, "auto"), None, profile.fiscal_year_end_month)
    street = profile_consensus(profile) if consensus else None
    return Company(profile=profile, data=df, guidance=book, consensus=street)
