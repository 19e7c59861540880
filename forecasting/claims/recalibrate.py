"""Claim probabilities recalibrated from the claims' own record, nested in time.

The roll-up's paths give each claim a raw probability (the share of paths on which it
holds). Past claims of the same kinds (`forecasting.claims.calibration`) say how often a raw
0.05 or 0.95 came true. At each cutoff c a map is learnt from the claims already **resolved
by c** (the last quarter they need ended on or before c; never a claim resolved later) and
applied to the raw probabilities of the claims made at c:

- **Beta calibration** (Kull, Silva Filho & Flach 2017): a logistic regression of the outcome
  on ``log p`` and ``-log(1 - p)`` (scikit-learn's `LogisticRegression`), p clipped to
  [`EPS`, 1 - `EPS`] so a 0.00 or 1.00 from a finite number of paths stays finite. It can
  pull both extremes in (a 0.00 that came true one time in five) and shift the middle.
  With ``method="isotonic"`` scikit-learn's `IsotonicRegression` is used instead.
- **Shrinkage toward the kind's base rate** while the record is short: with n_k past claims
  of the claim's kind, ``p = w map(p) + (1 - w) base_k`` with ``w = n_k / (n_k + prior)``
  (`PRIOR_WEIGHT`); ``base_k`` is the share of those n_k claims that held (0.5 with none).
  With fewer than `MIN_CLAIMS` resolved claims in all no map is learnt (w = 0).

`recalibrate` does this at every cutoff of a frame of claims with outcomes; `ClaimsMap`
is one map (the one learnt on every resolved claim is applied to a claims file's claims,
whose kind is unknown: there the map alone, with the number of claims it rests on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.core.provenance import outcomes_read

#: Raw probabilities are clipped to [EPS, 1 - EPS] before the logs of beta calibration.
EPS = 0.005
#: Fewest resolved past claims before any map is learnt (base rates only below).
MIN_CLAIMS = 50
#: Past claims of a kind that weigh as much as the map's answer against the kind's base rate.
PRIOR_WEIGHT = 20.0
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

    def fit(self, p: np.ndarray, held: np.ndarray) -> ClaimsMap:
        p, y = np.asarray(p, dtype=float), np.asarray(held, dtype=bool)
        self.n = len(p)
        if self.n < MIN_CLAIMS or y.all() or not y.any():
            self.model = None
            return self
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y.astype(float))
        elif self.method == "beta":
            from sklearn.linear_model import LogisticRegression

            self.model = LogisticRegression(C=1e4, max_iter=1000).fit(_features(p), y)
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


def recalibrate(rows: pd.DataFrame, column: str = "probability", method: str = "beta",
                prior_weight: float = PRIOR_WEIGHT) -> pd.DataFrame:
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
    p_all = rows[column].to_numpy(dtype=float)
    held = rows["held"].to_numpy(dtype=bool)
    kinds = rows["kind"].to_numpy()
    for c, idx in rows.groupby("cutoff").groups.items():
        known = res <= np.datetime64(pd.Timestamp(c))
        outcomes_read("claims.recalibration", c, res[known])
        m = ClaimsMap(method).fit(p_all[known], held[known])
        pos = rows.index.get_indexer(idx)
        p = p_all[pos]
        mapped = m(p)
        n_kind = np.array([int((known & (kinds == k)).sum()) for k in kinds[pos]])
        base = np.array([held[known & (kinds == k)].mean() if n else 0.5 for k, n in zip(kinds[pos], n_kind)])
        w = n_kind / (n_kind + prior_weight) if m.fitted else np.zeros(len(pos))
        out.loc[idx, "probability_recal"] = w * mapped + (1 - w) * base
        out.loc[idx, "map_claims"] = m.n if m.fitted else 0
        out.loc[idx, "kind_claims"] = n_kind
    return out.astype({"map_claims": int, "kind_claims": int})
