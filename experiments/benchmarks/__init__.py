"""Benchmarks run by ``fcf benchmark``: `m3` (external accuracy) and `speed`.

Both log to MLflow through `experiments.track_runs.log_benchmark` (``--no-track`` to skip);
`tracking_uri_or_fail` checks the store before a long run, so a dead server fails in seconds.
"""

from __future__ import annotations


def tracking_uri_or_fail(no_track: bool) -> str | None:
    """The checked tracking URI, None with ``--no-track``; a dead store exits with code 3."""
    from experiments.cli import checked_tracking_uri

    return checked_tracking_uri(no_track)


def log(uri: str | None, name: str, table, params: dict, metrics: dict | None = None) -> str | None:
    """Log one benchmark run to `uri` (None: skip); returns the run id."""
    if uri is None:
        return None
    from experiments.cli import EXIT_TRACKING, CommandError
    from experiments.track_runs import BENCHMARK_EXPERIMENT, log_benchmark
    from experiments.tracking import TrackingError

    try:
        run_id = log_benchmark(name, table, params, metrics, uri=uri)
    except TrackingError as exc:
        raise CommandError(str(exc), EXIT_TRACKING) from exc
    print(f"logged MLflow run {run_id} (experiment '{BENCHMARK_EXPERIMENT}', {uri})")
    return run_id
