"""The test suite (a package, so `python -m tests.mutants` finds it before the `tests` package
some dependencies install into site-packages)."""
