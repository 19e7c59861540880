"""`Rollup`: the FCF roll-up as an estimator with a scikit-learn shape.

``Rollup(company, config).fit()`` computes the roll-up's pipeline (node forecasts, champions,
reconciliation at every cutoff) once and keeps it in ``pipeline_``; `forecast`, `backtest`,
`scenarios` and `claims` reuse it, with the same company, guidance and settings, so the caller
plumbs no ``(df, profile, config, guidance, pipeline)``. The horizon is one setting,
``config.h``, for the forecast, the scenarios and the claims alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from features.company import Company
from features.errors import InputError
from forecasting.rollup.config import RollupConfig

__all__ = ["NotFittedError", "Rollup"]


class NotFittedError(InputError):
    """A `Rollup` was asked for results before `fit`."""


class Rollup:
    """The company's consolidated FCF roll-up.

    Args:
        company: a `features.company.Company` (`forecasting.load_company`).
        config: `forecasting.rollup.config.RollupConfig` (None: the defaults, the company's
            first cutoff); ``h`` is the horizon of every answer.
    Attributes (after `fit`):
        config_: the settings used (the company's defaults filled in, and its revenue
            categories among the ``extra`` series, for category scenarios).
        pipeline_: the computed `forecasting.rollup.pipeline.Pipeline`.
    """

    def __init__(self, company: Company, config: RollupConfig | None = None):
        self.company = company
        self.config = config

    def fit(self) -> Rollup:
        from forecasting.rollup.pipeline import prepare_pipeline

        c = self.company
        config = (self.config or RollupConfig()).for_company(c.profile)
        # the revenue categories a scenario of the company may grow (advertising) are forecast
        # with the pipeline, so `scenarios` answers every driver the profile allows
        have = set(c.data["unique_id"])
        categories = [cat.series for cat in c.profile.categories.values() if cat.series in have]
        self.config_ = config.replace(extra=tuple(dict.fromkeys([*config.extra, *categories])))
        self.pipeline_ = prepare_pipeline(c.data, c.profile, self.config_, c.guidance)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "pipeline_"):
            raise NotFittedError("this Rollup is not fitted yet: call .fit() first")

    def forecast(self):
        """`forecasting.rollup.paths.RollupResult`: FCF quantiles, ``config.h`` quarters ahead."""
        from forecasting.rollup.paths import rollup

        self._check_fitted()
        c = self.company
        return rollup(c.data, c.profile, self.config_, c.guidance, pipeline=self.pipeline_)

    def backtest(self, scoring=None):
        """`forecasting.rollup.backtest.RollupBacktest` at past cutoffs (`scoring`: a
        `RollupBacktestConfig`, default its defaults)."""
        from forecasting.rollup.backtest import RollupBacktestConfig, backtest_rollup

        self._check_fitted()
        c = self.company
        return backtest_rollup(c.data, c.profile, self.config_, c.guidance, scoring or RollupBacktestConfig(),
                               pipeline=self.pipeline_)

    def scenarios(self, files: Iterable):
        """`forecasting.scenarios.run.ScenarioResult` of scenario files (paths, dicts or
        `Scenario` objects) beside the base case, ``config.h`` quarters ahead."""
        from forecasting.scenarios.run import run_scenarios

        self._check_fitted()
        c = self.company
        return run_scenarios(c.data, c.profile, list(files), h=self.config_.h, config=self.config_,
                             guidance=c.guidance, pipeline=self.pipeline_)

    def claims(self, file, scenarios: Iterable = ()):
        """`forecasting.claims.run.ClaimsReport` of a claims file (path or `ClaimSet`)."""
        from forecasting.claims.file import ClaimSet, load_claims
        from forecasting.claims.run import run_claims

        self._check_fitted()
        c = self.company
        claims = file if isinstance(file, ClaimSet) else load_claims(file, self.company.profile.calendar)
        return run_claims(c.data, c.profile, claims, self.config_, c.guidance, scenarios=tuple(scenarios),
                          pipeline=self.pipeline_, consensus=c.consensus)
