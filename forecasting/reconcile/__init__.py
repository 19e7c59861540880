"""Reconciliation: the segment tree's identities and reconciled forecasts (`hierarchy`), the
cash-flow identity FCF = OCF - capex (`cashflow`) and the operating-cash-flow bridge (`bridge`).

Matrix algebra over forecasts at one origin: it fits no model and runs no backtest."""
