"""The models: `registry` (`ModelSpec` and the registry), the built-ins (`catalogue`), how each
kind is fitted at one origin (`engines/`, `dispatch`), combinations (`ensemble`, `autocombo`),
guidance-aware models (`guided`) and conformal interval calibration (`calibration`).

Importing this subpackage registers the built-in models, so the registry is full whichever of
its modules is imported first (`forecasting.methods.registry.REGISTRY`, `get_spec`,
`registered`, `catalogue.resolve`). The registration lives here, not in `registry`: the
catalogue imports the registry, and the registry importing the catalogue was a cycle.
"""

from forecasting.methods import catalogue as _catalogue  # noqa: F401  (registers the built-in specs)
