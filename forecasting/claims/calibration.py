"""Do the claim probabilities mean something? Claims made at past cutoffs, scored when reported.

At each past cutoff c of a roll-up `forecasting.rollup.pipeline.Pipeline`, the same kinds of claims a
claims file holds are generated from what was known at c (`auto_claims`), with thresholds
from the reported quarters up to c and the guidance known on the day c was reported:

- ``growth_above_last_year``: S grows faster year over year in quarter c+k than it did in
  the same quarter a year earlier (k = 1..h; k <= 4 so that threshold is reported);
- ``growth_above_latest``: S grows faster in c+k than in the latest reported quarter c;
- ``margin_above_last_year``: a segment's operating margin in c+k is above its margin in
  the same quarter a year earlier;
- ``ttm_above_current``: the trailing-twelve-month sum of S at c+k is above its value at c;
- ``fy_growth_above_last_year``: the fiscal year of c+1, when it ends within h quarters,
  grows faster than the fiscal year before;
- ``inside_guided_range`` / ``above_guided_range``: quarter c+1 lands inside / above the
  range management guided for it;
- ``beats_consensus``: S in quarter c+1 is above the street's consensus estimate for it
  (`features.consensus.ConsensusBook.select`: the estimate that stood on c+1's report day,
  published after c; the probability is still the roll-up's at c, which knows nothing of it).

Each claim gets a probability from the roll-up's paths at c, as the roll-up would have made
them then (`forecasting.rollup.paths.build_inputs` and `simulate`, the spread calibrated by
`forecasting.rollup.paths.calibrate` as the config says, i.e. exactly what
`forecasting.rollup.backtest` scores), that probability recalibrated on the claims resolved
by c (`forecasting.claims.recalibrate`), and three baselines: the raw (uncalibrated) paths, seasonal naive (each
quarter = the same quarter a year earlier: a 0/1 probability), and the base rate (the share
of claims of the same kind resolved by c that held; 0.5 before any). `reliability` bins the
probabilities (of the claims given 0.7-0.8, how many came true) with a bootstrap interval
over cutoffs, since the claims of one cutoff share its paths and are far from independent.

`guidance_outcomes` is the same question asked of management: where reported quarters
landed against the ranges guided for them (below, inside, above).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar, quarter
from forecasting.claims.file import CONSENSUS, Claim, Condition, fiscal_year
from forecasting.claims.evaluate import NotEvaluable, Outcomes, claim_holds, claim_values, quantity
from forecasting.claims.recalibrate import recalibrate
from forecasting.core.provenance import outcomes_read
from forecasting.rollup.paths import build_inputs, calibrate, simulate
from forecasting.rollup.config import RollupSeries
from forecasting.rollup.pipeline import Pipeline

__all__ = ["auto_claims", "base_rates", "brier_scores", "calibration_claims", "claims_at_cutoffs",
           "decomposition", "decompositions", "default_subjects", "FORECASTERS", "guidance_outcomes",
           "KINDS", "reliability", "seasonal_naive_paths", "Subjects"]

KINDS = ("growth_above_last_year", "growth_above_latest", "margin_above_last_year", "ttm_above_current",
         "fy_growth_above_last_year", "inside_guided_range", "above_guided_range", "beats_consensus")
FORECASTERS = {"probability_recal": "Rollup (recalibrated)", "probability": "Rollup (calibrated)",
               "probability_raw": "Rollup (raw spread)",
               "probability_sn": "SeasonalNaive (0/1)", "probability_base_rate": "Base rate of the kind"}


@dataclass(frozen=True)
class Subjects:
    """The series claims are generated about (a company's profile, passed in).

    Attributes:
        growth: positive series whose growth is claimed (sales, capex).
        margins: (numerator, denominator) pairs (operating income over net sales).
        ttm: series whose trailing-twelve-month sum is claimed (FCF, OCF, capex).
        guided: series management guides a range for next quarter.
        street: series whose next quarter is claimed against the consensus.
    """

    growth: tuple[str, ...]
    margins: tuple[tuple[str, str], ...]
    ttm: tuple[str, ...]
    guided: tuple[str, ...] = ()
    street: tuple[str, ...] = ()

    @property
    def series(self) -> list[str]:
        s = [*self.growth, *[x for m in self.margins for x in m], *self.ttm, *self.guided]
        return list(dict.fromkeys(s))


def default_subjects(series: RollupSeries) -> Subjects:
    """The roll-up's own tree (its segments and the totals of the bridge's sales and operating
    income) and cash-flow series."""
    cash, tree = series.cash, series.tree
    sales = next(m.name for m in tree.measures if m.total == cash.sales)
    oi = next((m.name for m in tree.measures if m.total == cash.operating_income), None)
    seg_sales = [s.series[sales] for s in tree.segments]
    margins = [(s.series[oi], s.series[sales]) for s in tree.segments] if oi else []
    return Subjects(growth=(*seg_sales, cash.sales, cash.capex),
                    margins=(*margins, (cash.operating_income, cash.sales)),
                    ttm=(cash.free_cash_flow, cash.operating_cash_flow, cash.capex),
                    guided=(cash.sales, cash.operating_income),
                    street=(*seg_sales, cash.sales, cash.operating_income))


def _claim(kind: str, series: str, periods, cond: Condition, measure: str, over: str | None = None,
           relative_to=None) -> Claim:
    label = "..".join(str(p) for p in (periods[0], periods[-1])) if len(periods) > 1 else str(periods[0])
    return Claim(id=f"{kind}.{series}.{label}", text=kind.replace("_", " "), source="generated",
                 series=series, measure=measure, periods=tuple(periods), condition=cond, over=over,
                 relative_to=relative_to)


def _known(o: Outcomes, series: str, measure: str, period, over: str | None = None) -> float | None:
    """A quantity on the reported quarters of `o` (None where it cannot be computed)."""
    probe = Claim(id="probe", text="", source="", series=series, measure=measure, periods=(period,),
                  condition=Condition(">", low=0.0), over=over)
    try:
        return float(quantity(probe, o, period)[0])
    except NotEvaluable:
        return None


def auto_claims(reported: pd.DataFrame, cutoff, h: int, subjects: Subjects, guidance=None,
                consensus: Mapping | None = None, calendar: FiscalCalendar | None = None) -> list[tuple]:
    """Claims at `cutoff` with thresholds from `reported` quarters up to it (later rows are
    ignored) and `guidance` (a `GuidanceBook`; its ranges known at the cutoff are used);
    `consensus` ((series, quarter) -> estimate, `consensus_values`) adds ``beats_consensus``;
    quarters and fiscal years are `calendar`'s (default calendar quarters).

    Returns:
        ``(kind, step, claim)`` per claim; step = quarters from the cutoff to the last
        quarter the claim needs.
    """
    cal = calendar or FiscalCalendar()
    c = cal.period(cutoff)
    o = Outcomes(reported, origin=c, calendar=cal)
    out = []
    ge = lambda t: Condition(">", low=t)  # noqa: E731  (strictly above: a tie is not "above")
    for k in range(1, h + 1):
        q = c + k
        for s in subjects.growth:
            last_year = _known(o, s, "yoy_growth", q - 4) if k <= 4 else None
            if last_year is not None:
                out.append(("growth_above_last_year", k, _claim("growth_above_last_year", s, (q,), ge(last_year),
                                                                "yoy_growth")))
            latest = _known(o, s, "yoy_growth", c)
            if latest is not None:
                out.append(("growth_above_latest", k, _claim("growth_above_latest", s, (q,), ge(latest),
                                                             "yoy_growth")))
        for num, den in subjects.margins:
            last_year = _known(o, num, "ratio", q - 4, over=den) if k <= 4 else None
            if last_year is not None:
                out.append(("margin_above_last_year", k, _claim("margin_above_last_year", num, (q,), ge(last_year),
                                                                "ratio", over=den)))
        for s in subjects.ttm:
            t = _known(o, s, "ttm", c)
            if t is not None:
                out.append(("ttm_above_current", k, _claim("ttm_above_current", s, (q,), ge(t), "ttm")))
    year = (c + 1).qyear
    end = quarter(year, 4, cal.year_end_month)
    if end <= c + h:
        for s in subjects.growth:
            last = _known(o, s, "yoy_growth", fiscal_year(year - 1, cal))
            if last is not None:
                out.append(("fy_growth_above_last_year", int((end - c).n),
                            _claim("fy_growth_above_last_year", s, (fiscal_year(year, cal),), ge(last), "yoy_growth")))
    if guidance is not None:
        book = guidance.at_cutoff(pd.Timestamp(cutoff))
        for s in subjects.guided:
            rng = book.range_for(s, (c + 1).end_time.normalize())
            if rng is None:
                continue
            lo, hi = rng
            out.append(("inside_guided_range", 1, _claim("inside_guided_range", s, (c + 1,),
                                                         Condition("between", lo, hi), "value")))
            out.append(("above_guided_range", 1, _claim("above_guided_range", s, (c + 1,),
                                                        Condition(">", low=hi), "value")))
    for s in subjects.street if consensus else ():
        if (s, c + 1) in consensus:
            out.append(("beats_consensus", 1, _claim("beats_consensus", s, (c + 1,), Condition(">", low=1.0),
                                                     "value", relative_to=CONSENSUS)))
    return out


def seasonal_naive_paths(reported: pd.DataFrame, series: Iterable[str], cutoff, h: int) -> dict:
    """series -> (1, h): each quarter after `cutoff` = the same quarter of the last reported year."""
    c = pd.Timestamp(cutoff)
    out = {}
    for s in series:
        y = reported[reported["unique_id"] == s].set_index("ds")["y"]  # only quarters up to c are read
        vals = []
        for k in range(1, h + 1):
            src = c + pd.offsets.QuarterEnd(k, startingMonth=c.month)
            while src > c:
                src = src - pd.offsets.QuarterEnd(4, startingMonth=c.month)
            vals.append(float(y.get(src, np.nan)))
        if np.isfinite(vals).all():
            out[s] = np.array([vals])
    return out


def _probabilities(claims: Sequence[tuple], o: Outcomes) -> list[float]:
    out = []
    for _, _, cl in claims:
        try:
            out.append(float(claim_holds(cl, claim_values(cl, o)).mean()))
        except NotEvaluable:
            out.append(np.nan)
    return out


def claims_at_cutoffs(pipe: Pipeline, guidance=None, h: int = 4, cutoffs: Sequence | None = None,
                      subjects: Subjects | None = None,
                      progress: Callable[[Iterable], Iterable] | None = None,
                      consensus: Mapping | None = None) -> pd.DataFrame:
    """Claims generated at past cutoffs with the probabilities known there (no outcomes).

    Args:
        pipe: a computed roll-up pipeline (`forecasting.rollup.pipeline.prepare_pipeline`); its
            config says whether and how the spread is calibrated.
        guidance: the `GuidanceBook` (ranges known at each cutoff only) or None.
        h: quarters ahead claims reach.
        consensus: (series, quarter) -> the consensus estimate (`beats_consensus`) or None.
        cutoffs: default: every pipeline cutoff before the newest quarter with at least two
            past error windows of h quarters reported.
    Returns:
        ``cutoff, kind, step, id, series, claim (the `Claim`), probability, probability_raw,
        probability_sn, error_scale``; a probability is NaN where the claim cannot be
        evaluated on those paths.
    """
    subjects = subjects or default_subjects(pipe.series)
    fiscal = pipe.series.calendar
    newest = pipe.history["ds"].max()
    todo = [pd.Timestamp(c) for c in (cutoffs if cutoffs is not None else pipe.cutoffs) if pd.Timestamp(c) < newest]
    rows = []
    sims: dict = {}  # raw simulations shared by the cutoffs' calibrations (`raw_simulation`)
    for c in (progress(todo) if progress is not None else todo):
        try:
            inputs = build_inputs(pipe, c, h)
        except ValueError:  # too few past windows reported at this cutoff
            continue
        known = pipe.history[pipe.history["ds"] <= c]
        outcomes_read("claims.history", c, known["ds"])
        claims = auto_claims(known, c, h, subjects, guidance, consensus, fiscal)
        if not claims:
            continue
        raw = simulate(inputs)
        cal = simulate(calibrate(inputs, pipe, c, h, sims))
        p_cal = _probabilities(claims, Outcomes(known, cal.paths, cal.ds, consensus=consensus, calendar=fiscal))
        p_raw = _probabilities(claims, Outcomes(known, raw.paths, raw.ds, consensus=consensus, calendar=fiscal))
        sn = seasonal_naive_paths(known, subjects.series, c, h)
        p_sn = _probabilities(claims, Outcomes(known, sn, inputs.ds, consensus=consensus, calendar=fiscal))
        rows += [{"cutoff": c, "kind": kind, "step": step, "id": cl.id, "series": cl.series, "claim": cl,
                  "probability": pc, "probability_raw": pr, "probability_sn": ps, "error_scale": inputs.spread_scale}
                 for (kind, step, cl), pc, pr, ps in zip(claims, p_cal, p_raw, p_sn)]
    cols = ["cutoff", "kind", "step", "id", "series", "claim", "probability", "probability_raw", "probability_sn",
            "error_scale"]
    return pd.DataFrame(rows, columns=cols)


def calibration_claims(pipe: Pipeline, guidance=None, h: int = 4, cutoffs: Sequence | None = None,
                       subjects: Subjects | None = None,
                       progress: Callable[[Iterable], Iterable] | None = None,
                       consensus: Mapping | None = None) -> pd.DataFrame:
    """`claims_at_cutoffs` scored against the reported quarters (arguments as there).

    Returns:
        ``cutoff, kind, step, id, series, probability_recal, probability, probability_raw,
        probability_sn, probability_base_rate, map_claims, kind_claims, held, resolved,
        error_scale``, one row per claim whose outcome is reported (``resolved``: the end of
        the last quarter it needs); ``probability_recal`` is ``probability_raw`` recalibrated
        by the map learnt at the row's cutoff on the claims resolved by it
        (`forecasting.claims.recalibrate.recalibrate`; ``map_claims``, ``kind_claims``: how many
        it rests on, of them of the row's kind).
    """
    made = claims_at_cutoffs(pipe, guidance, h, cutoffs, subjects, progress, consensus)
    made = made.dropna(subset=["probability"]).reset_index(drop=True)
    realised = Outcomes(pipe.history, consensus=consensus, calendar=pipe.series.calendar)
    held, resolved = [], []
    for cl in made["claim"]:
        try:
            held.append(bool(claim_holds(cl, claim_values(cl, realised))[0]))
        except NotEvaluable:  # not reported yet
            held.append(None)
        resolved.append(max(cl.quarters_needed()).end_time.normalize())
    out = made.drop(columns="claim").assign(held=held, resolved=resolved)
    out = out[out["held"].notna()].reset_index(drop=True)
    out["held"] = out["held"].astype(bool)
    out["probability_base_rate"] = base_rates(out)
    out = out.join(recalibrate(out))
    return out[["cutoff", "kind", "step", "id", "series", "probability_recal", "probability", "probability_raw",
                "probability_sn", "probability_base_rate", "map_claims", "kind_claims", "held", "resolved",
                "error_scale"]]


def base_rates(rows: pd.DataFrame) -> np.ndarray:
    """Per row, the share of claims of its kind resolved by its cutoff that held (0.5 before any)."""
    out = np.full(len(rows), 0.5)
    for _, g in rows.groupby("kind"):
        res = g["resolved"].to_numpy()
        held = g["held"].to_numpy(dtype=float)
        for i, c in zip(g.index, g["cutoff"]):
            known = res <= c
            outcomes_read("claims.base_rate", c, res[known])
            if known.any():
                out[rows.index.get_loc(i)] = held[known].mean()
    return out


def _bootstrap_weights(cutoffs: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cutoff codes per row and (n_boot, n_cutoffs) resampling counts."""
    uniq, code = np.unique(cutoffs, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    w = np.stack([np.bincount(d, minlength=len(uniq)) for d in draws])
    return code, w


def reliability(rows: pd.DataFrame, column: str = "probability", bins: int = 10, n_boot: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """Reliability table: per probability bin, how many claims and how many came true.

    Returns:
        ``bin, n, mean_probability, observed, observed_lo, observed_hi`` (``observed``: the
        share that held; ``_lo``/``_hi``: 5% and 95% quantiles over a bootstrap of cutoffs).
    """
    p = rows[column].to_numpy(dtype=float)
    held = rows["held"].to_numpy(dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    code, w = _bootstrap_weights(rows["cutoff"].to_numpy(), n_boot, seed)
    n_c = np.zeros((w.shape[1], bins))
    h_c = np.zeros((w.shape[1], bins))
    np.add.at(n_c, (code, b), 1)
    np.add.at(h_c, (code, b), held)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ h_c) / (w @ n_c)
    out = []
    for j in range(bins):
        sel = b == j
        lo, hi = (np.nanquantile(boot[:, j], [0.05, 0.95]) if sel.any() and np.isfinite(boot[:, j]).any()
                  else (np.nan, np.nan))
        out.append({"bin": f"{edges[j]:.1f}-{edges[j + 1]:.1f}", "n": int(sel.sum()),
                    "mean_probability": float(p[sel].mean()) if sel.any() else np.nan,
                    "observed": float(held[sel].mean()) if sel.any() else np.nan,
                    "observed_lo": float(lo), "observed_hi": float(hi)})
    return pd.DataFrame(out)


def decomposition(rows: pd.DataFrame, column: str = "probability", bins: int = 10) -> dict:
    """Brier score of ``rows[column]`` and its Murphy (1973) decomposition over `bins` equal
    probability bins, with the expected calibration error.

    ``brier = reliability - resolution + uncertainty + within``: ``reliability`` =
    sum_k n_k/N (mean p_k - observed_k)^2 (0 when calibrated), ``resolution`` = sum_k n_k/N
    (observed_k - observed)^2 (higher: the bins separate what happens from what does not),
    ``uncertainty`` = observed (1 - observed); ``within`` is the spread of the probabilities
    inside the bins (the part the binned decomposition does not see). ``ece`` = sum_k n_k/N
    |mean p_k - observed_k|.
    """
    p = rows[column].to_numpy(dtype=float)
    y = rows["held"].to_numpy(dtype=float)
    n = len(p)
    if n == 0:
        return {k: np.nan for k in ("n", "brier", "reliability", "resolution", "uncertainty", "within", "ece")}
    b = np.clip(np.digitize(p, np.linspace(0, 1, bins + 1)[1:-1], right=False), 0, bins - 1)
    cnt = np.bincount(b, minlength=bins).astype(float)
    used = cnt > 0
    pk = np.bincount(b, weights=p, minlength=bins)[used] / cnt[used]
    ok = np.bincount(b, weights=y, minlength=bins)[used] / cnt[used]
    wk = cnt[used] / n
    obar = y.mean()
    brier = float(np.mean((p - y) ** 2))
    rel, res, unc = float(wk @ (pk - ok) ** 2), float(wk @ (ok - obar) ** 2), float(obar * (1 - obar))
    return {"n": n, "brier": brier, "reliability": rel, "resolution": res, "uncertainty": unc,
            "within": brier - (rel - res + unc), "ece": float(wk @ np.abs(pk - ok))}


def decompositions(rows: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """`decomposition` of every forecaster of `FORECASTERS` present in `rows`."""
    return pd.DataFrame([{"forecaster": name, **decomposition(rows, col, bins)}
                         for col, name in FORECASTERS.items() if col in rows.columns])


def brier_scores(rows: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Brier score of each forecaster (`FORECASTERS`) over all claims and per kind, with a
    bootstrap interval over cutoffs. Lower is better; a constant 0.5 scores 0.25.

    Returns:
        ``kind (all or a kind), forecaster, n, brier, brier_lo, brier_hi, mean_probability, observed``.
    """
    out = []
    for kind, g in [("all", rows), *rows.groupby("kind")]:
        held = g["held"].to_numpy(dtype=float)
        code, w = _bootstrap_weights(g["cutoff"].to_numpy(), n_boot, seed)
        n_c = np.bincount(code, minlength=w.shape[1]).astype(float)
        for col, name in FORECASTERS.items():
            if col not in g.columns:
                continue
            p = g[col].to_numpy(dtype=float)
            se = (p - held) ** 2
            boot = (w @ np.bincount(code, weights=se, minlength=w.shape[1])) / (w @ n_c)
            out.append({"kind": kind, "forecaster": name, "n": len(g), "brier": float(se.mean()),
                        "brier_lo": float(np.quantile(boot, 0.05)), "brier_hi": float(np.quantile(boot, 0.95)),
                        "mean_probability": float(p.mean()), "observed": float(held.mean())})
    return pd.DataFrame(out)


def guidance_outcomes(book, reported: pd.DataFrame, last: int | None = None) -> pd.DataFrame:
    """Where reported quarters landed against management's guided ranges.

    Args:
        book: a `features.guidance.GuidanceBook` (the latest range per quarter is used).
        reported: reported long frame ``unique_id, ds, y``.
        last: only the most recent `last` guided quarters of each metric (None: all).
    Returns:
        ``metric, first, last, n, below, inside, above, share_below, share_inside, share_above``.
    """
    from forecasting.methods.guided import positions

    pos = positions(book, reported)
    rows = []
    for metric, g in pos.groupby("unique_id"):
        g = g.sort_values("ds")
        if last is not None:
            g = g.iloc[-last:]
        below = int((g["position"] < 0).sum())
        above = int((g["position"] > 1).sum())
        inside = len(g) - below - above
        rows.append({"metric": metric, "first": str(pd.Period(g["ds"].iloc[0], freq="Q")),
                     "last": str(pd.Period(g["ds"].iloc[-1], freq="Q")), "n": len(g), "below": below,
                     "inside": inside, "above": above, "share_below": below / len(g),
                     "share_inside": inside / len(g), "share_above": above / len(g)})
    return pd.DataFrame(rows)
