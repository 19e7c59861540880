"""Atomic writes (experiments/io.py): the failure branches, not only the happy path.

Each failure test leaves a previous file in place, makes the write fail in a different way
(an error half-way through the writer, a Ctrl-C inside it, a target that cannot be replaced)
and requires the previous file to be byte-identical and no temporary file to be left. They
catch an implementation that writes in place (``open(path, "w")`` truncates the previous file
before the first byte of the new one) or that leaves its temporary file behind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.io import atomic_write, write_csv, write_text

PREVIOUS = b"unit,value\nprevious,1\n\xe2\x82\xac tail without newline"


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "out" / "table.csv"
    path.parent.mkdir()
    path.write_bytes(PREVIOUS)
    return path


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "table.csv")


def test_writer_failing_half_way_leaves_the_previous_file_byte_identical(target):
    def half(path):
        with open(path, "wb") as f:
            f.write(b"new,header\n" + b"x" * 100_000)
            f.flush()
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, half)
    assert target.read_bytes() == PREVIOUS
    assert leftovers(target.parent) == []


def test_interrupt_inside_the_writer_leaves_the_previous_file_byte_identical(target):
    def interrupted(path):
        path.write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_bytes() == PREVIOUS
    assert leftovers(target.parent) == []


class Unprintable:
    """A cell whose text cannot be produced (pandas fails on it mid-file)."""

    def __str__(self):
        raise ValueError("cell 110000 cannot be formatted")


def test_write_csv_failing_after_many_rows_leaves_the_previous_file(target):
    n = 120_000  # more rows than one pandas write chunk, so the temporary file really is half-written
    col = np.arange(n).astype(object)
    col[110_000] = Unprintable()
    df = pd.DataFrame({"i": np.arange(n), "v": col})
    with pytest.raises(ValueError, match="cannot be formatted"):
        write_csv(df, target)
    assert target.read_bytes() == PREVIOUS
    assert leftovers(target.parent) == []


def test_target_that_cannot_be_replaced_keeps_it_and_cleans_up(tmp_path):
    """The rename fails (the target is a non-empty folder): the folder is untouched."""
    folder = tmp_path / "table.csv"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    with pytest.raises(OSError):
        write_text("new", folder)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_success_replaces_the_file_in_one_rename(target):
    """A reader that opened the previous file before the write still reads all of it; the path
    then holds all of the new one (writing in place would show the reader a truncated file)."""
    with open(target, "rb") as reader:
        write_csv(pd.DataFrame({"unit": ["new"], "value": [2]}), target)
        assert reader.read() == PREVIOUS
    assert target.read_text() == "unit,value\nnew,2\n"
    assert leftovers(target.parent) == []


def test_the_replaced_file_keeps_its_permissions_and_a_new_file_gets_the_usual_ones(target, tmp_path):
    """Catches the temporary file's owner-only mode (mkstemp's 0600) ending up on the target:
    a shared data file rewritten by `fcf data update` would no longer be readable by the group."""
    import os
    import stat

    target.chmod(0o644)
    write_text("new", target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    mask = os.umask(0o022)
    try:
        fresh = write_text("x", tmp_path / "fresh.txt")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
