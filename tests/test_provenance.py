"""The provenance record (`forecasting.core.provenance`): off by default, exact when on."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting.core.provenance import active, outcomes_read, recording

Q = pd.offsets.QuarterEnd


def test_nothing_is_recorded_outside_a_recording_block():
    assert not active()
    outcomes_read("step", "2024-12-31", ["2025-03-31"])  # no block: a no-op, no error
    with recording() as reads:
        assert active()
    assert not active() and reads == []


def test_a_read_after_the_cutoff_is_reported_and_one_at_it_is_not():
    cut = pd.Timestamp("2024-12-31")
    with recording() as reads:
        outcomes_read("ok", cut, pd.to_datetime(["2024-06-30", "2024-12-31"]))
        outcomes_read("leak", cut, pd.to_datetime(["2024-09-30", "2025-03-31", "2024-12-31"]))
        outcomes_read("empty", cut, pd.to_datetime([]))
    assert [r.step for r in reads] == ["ok", "leak", "empty"]
    assert reads.of("ok")[0].latest == cut and reads.of("ok")[0].n == 2
    assert [r.step for r in reads.after_cutoff()] == ["leak"]
    assert reads.of("leak")[0].latest == pd.Timestamp("2025-03-31")
    assert reads.steps() == {"ok", "leak"} and pd.isna(reads.of("empty")[0].latest)


def test_per_row_cutoffs_report_the_row_read_furthest_past_its_own_cutoff():
    """Ensembles learn per series: series b's row one quarter past b's cutoff is the leak,
    although a's later cutoff is after that date."""
    at = pd.to_datetime(["2025-06-30", "2024-12-31", "2024-12-31"])
    ds = pd.to_datetime(["2025-06-30", "2024-12-31", "2025-03-31"])
    with recording() as reads:
        outcomes_read("weights", at, ds)
        outcomes_read("weights", at[:2], ds[:2])
    leak, clean = reads
    assert leak.after_cutoff and (leak.at, leak.latest) == (pd.Timestamp("2024-12-31"), pd.Timestamp("2025-03-31"))
    assert not clean.after_cutoff
    with pytest.raises(ValueError, match="2 cutoffs for 3 dates"), recording():
        outcomes_read("weights", at[:2], ds)


def test_nested_blocks_record_separately():
    with recording() as outer:
        outcomes_read("a", "2024-12-31", ["2024-12-31"])
        with recording() as inner:
            outcomes_read("b", "2024-12-31", ["2024-12-31"])
        outcomes_read("c", "2024-12-31", ["2024-12-31"])
    assert [r.step for r in outer] == ["a", "c"] and [r.step for r in inner] == ["b"]
