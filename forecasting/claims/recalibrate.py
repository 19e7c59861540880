"""Claim probabilities recalibrated from the claims' own record, nested in time.

The roll-up's paths give each claim a raw probability (the share of paths on which it
holds). Past claims of the same kinds (`forecasting.claims.calibration`) say how often a raw
0.05 or 0.95 came true. At each cutoff c a map is learnt from the claims already **resolved
by c** (the last quarter they need ended on or before c; never a claim resolved later) and
applied to the raw probabilities of the claims made at c (`map_at`, `recalibrate`):

- **Beta calibration** (Kull, Silva Filho & Flach 2017): a logistic regression of the outcome
  on ``log p`` and ``-log(1 - p)`` (scikit-learn's `LogisticRegression`, its default L2
  penalty, ``C`` = `C`), p clipped to [`EPS`, 1 - `EPS`] so a 0.00 or 1.00 from a finite
  number of paths stays finite. It can pull both extremes in (a 0.00 that came true one time
  in five) and shift the middle. ``method="isotonic"``: scikit-learn's `IsotonicRegression`.
- **Recent claims weigh more**: a claim resolved a quarters before c weighs ``0.5 ** (a /
  HALF_LIFE)`` (a year's half-life): the shipped company's record has regimes (in 2021 a
  fifth of the claims held, in 2023 two thirds), and a map of the whole past carried 2021
  into 2023.
- **Too few claims: the kind's base rate.** With fewer than `MIN_CLAIMS` resolved claims no
  map is learnt and a claim gets the share of resolved claims of its kind that held, itself
  shrunk toward 0.5 by `BASE_PRIOR` claims (the first cutoffs' rates from a handful of
  claims were 0 or 1 and scored worse than 0.5). ``prior_weight`` > 0 also shrinks a learnt map toward that base rate,
  ``p = w map(p) + (1 - w) base_k`` with ``w = n_k / (n_k + prior_weight)``; the default is 0
  because every positive weight measured worse (docs/claims.md).

The map is applied to the raw paths' probabilities by default: the FCF-learnt spread factor
sharpens the segment claims it was not fitted on (docs/claims.md). A claims file's claims,
whose kind is unknown, get the map learnt on every resolved claim of the study, and the
number of claims it rests on is shown beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.core.provenance import outcomes_read

__all__ = ["BASE_PRIOR", "C", "ClaimsMap", "EPS", "HALF_LIFE", "map_at", "METHODS", "MIN_CLAIMS",
           "PRIOR_WEIGHT", "recalibrate"]

#: Raw probabilities are clipped to [EPS, 1 - EPS] before the logs of beta calibration.
EPS = 0.005
#: Fewest resolved past claims before any map is learnt (base rates only below).
MIN_CLAIMS = 50
#: Past claims of a kind that weigh as much as the map's answer against the kind's base rate.
PRIOR_WEIGHT = 0.0
#: Claims at 0.5 added to a kind's record before its base rate is taken (3 held of 3 is not 1.0).
BASE_PRIOR = 20.0
#: Inverse L2 strength of the beta map's logistic regression (large: nearly unpenalised).
C = 1.0
#: Half-life, in quarters, of a past claim's weight in the map (None: all weigh the same).
HALF_LIFE: float | None = 4.0
METHODS = ("beta", "isotonic")


def _features(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.column_stack([np.log(p), -np.log1p(-p)])


@dataclass
class ClaimsMap:
    """A calibration map from raw probabilities to calibrated ones, learnt on `n` claims.

    Args:
        method: ``beta`` or ``isotonic``.
    """

    method: str = "beta"
    n: int = 0
    model: object = None

    def fit(self, p: np.ndarray, held: np.ndarray, weight: np.ndarray | None = None) -> ClaimsMap:
        p, y = np.asarray(p, dtype=float), np.asarray(held, dtype=bool)
        self.n = len(p)
        if self.n < MIN_CLAIMS or y.all() or not y.any():
            self.model = None
            return self
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y.astype(float),
                                                                                             sample_weight=weight)
        elif self.method == "beta":
            from sklearn.linear_model import LogisticRegression

            self.model = LogisticRegression(C=C, max_iter=1000).fit(_features(p), y, sample_weight=weight)
        else:
            raise ValueError(f"unknown recalibration method '{self.method}'; choose from {', '.join(METHODS)}")
        return self

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def __call__(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        if self.model is None:
            return p.copy()
        if self.method == "isotonic":
            return self.model.predict(p)
        return self.model.predict_proba(_features(p))[:, 1]


def map_at(rows: pd.DataFrame, cutoff, column: str = "probability_raw", method: str = "beta",
           half_life: float | None = HALF_LIFE) -> ClaimsMap:
    """The map learnt at `cutoff` on the claims of `rows` resolved by it (``resolved`` on or
    before `cutoff`), each weighted by ``0.5 ** (age / half_life)`` (age in quarters from its
    resolution to the cutoff) so the map follows a change of regime."""
    res = pd.to_datetime(rows["resolved"]).to_numpy()
    c = np.datetime64(pd.Timestamp(cutoff))
    known = res <= c
    outcomes_read("claims.recalibration", cutoff, res[known])
    age = (c - res[known]) / np.timedelta64(91, "D")
    weight = 0.5 ** (age / half_life) if half_life else None
    return ClaimsMap(method).fit(rows[column].to_numpy(dtype=float)[known], rows["held"].to_numpy(dtype=bool)[known],
                                 weight)


def recalibrate(rows: pd.DataFrame, column: str = "probability_raw", method: str = "beta",
                prior_weight: float = PRIOR_WEIGHT, half_life: float | None = HALF_LIFE) -> pd.DataFrame:
    """Nested recalibration of ``rows[column]`` (module docstring).

    Args:
        rows: claims with outcomes: ``cutoff, kind, resolved, held`` and `column`.
    Returns:
        ``probability_recal`` (the recalibrated probability), ``map_claims`` (resolved claims
        the map rests on, 0: none learnt) and ``kind_claims`` (of them, of the row's kind),
        indexed like `rows`.
    """
    out = pd.DataFrame(index=rows.index, columns=["probability_recal", "map_claims", "kind_claims"], dtype=float)
    res = pd.to_datetime(rows["resolved"]).to_numpy()
    held = rows["held"].to_numpy(dtype=bool)
    kinds = rows["kind"].to_numpy()
    for c, idx in rows.groupby("cutoff").groups.items():
        known = res <= np.datetime64(pd.Timestamp(c))
        m = map_at(rows, c, column, method, half_life)
        pos = rows.index.get_indexer(idx)
        mapped = m(rows[column].to_numpy(dtype=float)[pos])
        n_kind = np.array([int((known & (kinds == k)).sum()) for k in kinds[pos]])
        held_kind = np.array([held[known & (kinds == k)].sum() for k in kinds[pos]])
        base = (held_kind + BASE_PRIOR * 0.5) / (n_kind + BASE_PRIOR)  # a handful of claims is no rate of 0 or 1
        w = n_kind / (n_kind + prior_weight) if prior_weight > 0 else np.ones(len(pos))
        w = w if m.fitted else np.zeros(len(pos))
        out.loc[idx, "probability_recal"] = w * mapped + (1 - w) * base
        out.loc[idx, "map_claims"] = m.n if m.fitted else 0
        out.loc[idx, "kind_claims"] = n_kind
    return out.astype({"map_claims": int, "kind_claims": int})
