"""Claims: the claims-file format (`file`), their quantities and probabilities on paths
(`evaluate`), their reliability at past cutoffs (`calibration`) and the run against the
roll-up's distribution (`run`). The highest subpackage: built on the roll-up and scenarios."""
