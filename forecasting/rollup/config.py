"""What a roll-up works with: the company's roll-up series (`RollupSeries`, from its profile)
and the roll-up's settings (`RollupConfig`, logged as run parameters)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from features.calendar import FiscalCalendar
from features.profile import CashFlow, CompanyProfile, Hierarchy
from forecasting.reconcile.cashflow import METHODS as CASHFLOW_METHODS
from forecasting.core.frames import MAX_HORIZON, check_horizon
from forecasting.reconcile.hierarchy import DEFAULT_METHOD, ERROR_METHODS, METHODS
from forecasting.rollup.selection import SelectionSettings
from forecasting.rollup.simulate import DEFAULT_PATHS, SMOOTHING
from features.errors import OptionError

__all__ = ["CANDIDATES", "GUIDED_CANDIDATES", "MIN_FIRST_CUTOFF_QUARTERS", "NODE_HORIZON", "RollupConfig",
           "RollupSeries"]

#: Candidate models of every node, in tie-break order (the first is used while too few past
#: windows exist to choose).
CANDIDATES = ("AutoETS", "Foster", "StatsCombo", "AutoARIMALog", "SeasonalNaive", "RandomWalkWithDrift",
              "StatsMLCombo")


#: Guided candidates, run on the nodes the guidance covers.
GUIDED_CANDIDATES = ("GuidedFoster", "GuidedStatsCombo", "GuidedAutoARIMALog", "GuidedStatsMLCombo")


#: Steps every node is forecast (fiscal-year scoring needs up to two fiscal years).
NODE_HORIZON = MAX_HORIZON


#: Quarters the shortest node needs before the first cutoff when neither the configuration nor
#: the profile names one.
MIN_FIRST_CUTOFF_QUARTERS = 8


@dataclass(frozen=True)
class RollupSeries:
    """The series a roll-up works with, read from a company profile.

    Attributes:
        tree: the segment hierarchy; cash: the cash-flow bridge's series; calendar: the fiscal
            calendar (fiscal years of the fiscal-year tables, quarters of the bridge).
    """

    tree: Hierarchy
    cash: CashFlow
    calendar: FiscalCalendar = field(default_factory=FiscalCalendar)

    @classmethod
    def of(cls, profile: CompanyProfile) -> RollupSeries:
        if not profile.has_rollup:
            raise OptionError(f"company profile '{profile.name}' has no roll-up: it needs a hierarchy and "
                             "cash_flow series (see features/profile.py)")
        return cls(profile.hierarchy, profile.cash_flow, profile.calendar)

    @property
    def fcf(self) -> str:
        return self.cash.free_cash_flow

    @property
    def fcf_ttm(self) -> str:
        return self.cash.fcf_ttm

    @property
    def cash_nodes(self) -> list[str]:
        return [self.cash.capex, self.cash.operating_cash_flow, self.cash.free_cash_flow]

    @property
    def nodes(self) -> list[str]:
        """Every forecast node: the hierarchy's, then capex, OCF and FCF."""
        return [*self.tree.nodes(), *self.cash_nodes]

    @property
    def simulated(self) -> tuple[str, ...]:
        """The series simulated path by path: the bottom of the tree, capex and OCF (totals,
        FCF and TTM are derived)."""
        return (*self.tree.bottom_series(), self.cash.capex, self.cash.operating_cash_flow)

    def scale_of(self, series: str) -> str:
        """The series whose level scales `series`' errors: operating income passes near zero, so
        its errors are scaled by its sales (margin points); OCF's by total sales."""
        if series == self.cash.operating_cash_flow:
            return self.cash.sales
        return self.tree.scale_of(series)

    def nonnegative(self, series: str) -> bool:
        """Sales and capex paths are floored at zero; income and cash flow are not."""
        return series == self.cash.capex or self.tree.is_nonnegative(series)


#: How the roll-up's spread is calibrated (`RollupConfig.calibrate_by`).
CALIBRATE_BY = ("fcf", "node")


@dataclass(frozen=True)
class RollupConfig:
    """Settings of a roll-up (logged as run parameters).

    Attributes:
        h: quarters ahead (1-8).
        candidates, guided: node models the per-node choice picks from.
        selection: the nested choice (window, lambdas of the intercept correction, ...).
        method: segment reconciliation: ``MinTrace-wls_var`` (default: weights from the
            champions' past errors, so a guided total weighs more than the segments' sum),
            ``MinTrace-mint_shrink``, a `forecasting.reconcile.hierarchy.METHODS` name, or ``"base"``.
        cashflow: reconciliation across FCF = OCF - capex (`forecasting.reconcile.cashflow.METHODS`),
            or ``"bridge"``: FCF = bridged OCF - capex (no direct forecasts), ``"direct"``:
            the OCF and capex models only.
        error_windows: past windows drawn by the bootstrap (the most recent ones).
        centre: centre the drawn errors on zero (paths centred on the point forecasts, whose
            intercept correction already answers recent bias); False adds the past windows'
            mean error to every path.
        calibrate: scale the spread by the roll-up's own past misses.
        calibrate_by: ``fcf``: one factor from FCF's misses scales every path; ``node``: a
            factor per simulated node (segments, capex, OCF) and step from that node's own
            misses (`forecasting.rollup.paths.node_factors`); totals, FCF and TTM stay sums.
        calibration_window: the most recent past cutoffs whose misses (the quarters reported
            by the origin, `recent_misses`) set that scale, so it follows a change of regime.
        first_cutoff: earliest node cutoff, a quarter label of the company's calendar (selection
            needs a few years before the roll-up's); None: the profile's ``rollup.first_cutoff``,
            else the quarter by which every node has `MIN_FIRST_CUTOFF_QUARTERS` quarters.
        extra: more series forecast by AutoETS for scenarios (e.g. advertising).
    """

    h: int = 4
    candidates: tuple[str, ...] = CANDIDATES
    guided: tuple[str, ...] = GUIDED_CANDIDATES
    selection: SelectionSettings = SelectionSettings(window=16)
    method: str = DEFAULT_METHOD
    cashflow: str = "wls_var"
    bridge_window: int = 16
    n_paths: int = DEFAULT_PATHS
    seed: int = 0
    smoothing: float = SMOOTHING
    error_windows: int = 8
    centre: bool = True
    calibrate: bool = True
    calibrate_by: str = "fcf"
    calibration_window: int = 4
    first_cutoff: str | None = None
    extra: tuple[str, ...] = ()

    def __post_init__(self):
        check_horizon(self.h, "roll-up horizon h", NODE_HORIZON)
        if self.method not in ("base", *METHODS, *ERROR_METHODS):
            raise OptionError(f"unknown reconciliation method '{self.method}'; "
                             f"choose from {['base', *METHODS, *ERROR_METHODS]}")
        if self.cashflow not in (*CASHFLOW_METHODS, "bridge", "direct"):
            raise OptionError(f"cashflow must be one of {[*CASHFLOW_METHODS, 'bridge', 'direct']}, "
                             f"got '{self.cashflow}'")
        if self.calibrate_by not in CALIBRATE_BY:
            raise OptionError(f"calibrate_by must be one of {list(CALIBRATE_BY)}, got '{self.calibrate_by}'")
        if self.n_paths < 1:
            raise OptionError(f"n_paths must be >= 1, got {self.n_paths}")

    def for_company(self, profile: CompanyProfile) -> RollupConfig:
        """The configuration with the profile's roll-up settings where this one has none."""
        first = self.first_cutoff or profile.rollup.get("first_cutoff")
        return self.replace(first_cutoff=str(first)) if first and first != self.first_cutoff else self

    def for_company_of(self, other: RollupConfig) -> RollupConfig:
        """This configuration with `other`'s first cutoff where this one names none (`other`
        already resolved for a company by `for_company`)."""
        return self if self.first_cutoff else self.replace(first_cutoff=other.first_cutoff)

    def replace(self, **changes) -> RollupConfig:
        return RollupConfig(**{**asdict(self), "selection": self.selection, **changes})

    def as_params(self) -> dict:
        d = asdict(self)
        sel = d.pop("selection")
        d.update({f"selection_{k}": v for k, v in sel.items()})
        return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in d.items()}
