"""A run's exports a part at a time: the same text as from the whole zero-filled volume table."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from engine.app.config import OutputSettings
from engine.demo.contacts import generate_contacts
from engine.interval import interval_grid
from engine.output.files import write_csv, write_document, write_ndjson
from engine.pipeline.export import export_tables, fill_parts, volume_parts
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import busy, fill

START = datetime(2026, 10, 1, tzinfo=UTC)
SETTINGS = BuildSettings(tz="America/New_York")
ORDER = ["queue_id", "channel", "interval_start_utc"]


def _busy(days: int, *, start: datetime = START) -> pl.DataFrame:
    """The stored (busy) volume rows of ``days`` days, a queue renamed on the last day."""
    grid = SETTINGS.grid((start, start + timedelta(days=days)))
    contacts = generate_contacts(seed=5, start=start, days=days).lazy()
    rows = callvolume.build(contacts, window=grid, settings=SETTINGS).collect()
    renamed = (pl.col("queue_id") == rows["queue_id"].min()) & (
        pl.col("interval_start_utc") >= start + timedelta(days=days - 1)
    )
    name = pl.when(renamed).then(pl.lit("Renamed")).otherwise(pl.col("queue_name"))
    return rows.filter(busy("callvolume")).with_columns(name.alias("queue_name"))


@pytest.fixture(scope="module")
def stored() -> pl.DataFrame:
    return _busy(3)


@pytest.mark.parametrize("part_rows", [1, 50, 1_000, 10**7])
def test_the_parts_sorted_are_the_filled_table(stored: pl.DataFrame, part_rows: int) -> None:
    grid = interval_grid(START, START + timedelta(days=3), minutes=15, tz=SETTINGS.tz)
    whole = fill(stored.lazy(), "callvolume", grid).collect()
    parts = list(fill_parts(stored, "callvolume", grid, part_rows=part_rows))
    assert len(parts) >= 1
    starts = [p["interval_start_utc"] for p in parts]
    assert all(a.max() < b.min() for a, b in itertools.pairwise(starts))  # in turn
    assert pl.concat(parts).sort(ORDER, nulls_last=False).equals(whole)
    renamed = whole.filter(pl.col("queue_name") == "Renamed")  # the window's latest name
    assert renamed["interval_start_utc"].min() == START  # on every interval of the window


def test_text_files_written_in_slices_are_the_same_bytes(
    stored: pl.DataFrame, tmp_path: Path
) -> None:
    for chunk in (1, 7, 10**6):
        one, many = tmp_path / "one", tmp_path / str(chunk)
        write_csv(stored, one.with_suffix(".csv"), chunk_rows=10**9)
        write_csv(stored, many.with_suffix(".csv"), chunk_rows=chunk)
        assert one.with_suffix(".csv").read_bytes() == many.with_suffix(".csv").read_bytes()
        write_ndjson(stored, one.with_suffix(".ndjson"), chunk_rows=10**9)
        write_ndjson(stored, many.with_suffix(".ndjson"), chunk_rows=chunk)
        assert one.with_suffix(".ndjson").read_bytes() == many.with_suffix(".ndjson").read_bytes()
    empty = write_csv(stored.clear(), tmp_path / "empty.csv")
    assert empty.read_text(encoding="utf-8").count("\n") == 1  # the header alone
    assert write_ndjson(stored.clear(), tmp_path / "empty.ndjson").read_bytes() == b""


def test_the_document_in_parts_is_the_same_text(stored: pl.DataFrame, tmp_path: Path) -> None:
    grid = interval_grid(START, START + timedelta(days=3), minutes=15, tz=SETTINGS.tz)
    table = callvolume.derive(fill(stored.lazy(), "callvolume", grid), settings=SETTINGS)
    whole = write_document(table.collect(), tmp_path / "whole.json", org_id="o-1")
    parts = (callvolume.derive(p.lazy(), settings=SETTINGS).collect() for p in
             fill_parts(stored, "callvolume", grid, part_rows=100))  # fmt: skip
    parted = write_document(parts, tmp_path / "parts.json", org_id="o-1")
    assert parted.read_bytes() == whole.read_bytes()
    assert json.loads(whole.read_text(encoding="utf-8"))["totalCount"] == table.collect().height


@pytest.mark.parametrize("forecast", [True, False])
def test_the_exports_of_busy_rows_are_the_filled_table(tmp_path: Path, forecast: bool) -> None:
    # two grids apart (two windows to fill), the second ending mid-day; with the forecast the
    # filled rows are kept from the parts; the dumps are written from the parts either way
    first = SETTINGS.grid((START, START + timedelta(days=2)))
    later = START + timedelta(days=5)
    second = SETTINGS.grid((later, later + timedelta(hours=13)))
    at = pl.col("interval_start_utc")
    rows = pl.concat([_busy(2), _busy(1, start=later).filter(second.holds(at))])
    output = OutputSettings(dir=tmp_path, forecast=forecast)
    parted = tmp_path / "parted"
    export_tables(parted, output, {"callvolume": rows}, grids=[first, second], build=SETTINGS,
                  now=later + timedelta(days=1))  # fmt: skip
    whole = pl.concat(  # the filled table as a run built it before: window by window
        callvolume.derive(fill(rows.lazy(), "callvolume", g.frame), settings=SETTINGS).collect()
        for g in (first, second)
    )
    assert whole.height > rows.height
    by_parts = pl.concat([p for _, p in volume_parts(rows, [first, second], SETTINGS)])
    assert by_parts.height == whole.height
    ref = tmp_path / "whole"  # the filled table given whole, in the dumps' order: as it is
    by_interval = whole.sort("interval_start_utc", "queue_id", "channel")
    export_tables(ref, output, {"callvolume": by_interval}, now=later + timedelta(days=1))
    names = sorted(p.name for p in (ref / "exports").iterdir())
    assert names == sorted(p.name for p in (parted / "exports").iterdir())
    assert ("forecast.parquet" in names) == forecast
    assert "callvolume_document.json" in names
    for name in names:
        assert (parted / "exports" / name).read_bytes() == (ref / "exports" / name).read_bytes()
