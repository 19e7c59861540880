"""Scenarios: scenario files checked against a company profile (`file`) and applied to the
roll-up's sample paths beside the base case (`run`). Built on `forecasting.rollup`."""
