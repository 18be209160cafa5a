"""Instants the Python API takes are instants, in whichever zone they are written.

A notebook user writes a local day as ``datetime(2026, 12, 5, tzinfo=ZoneInfo(...))``; the
store's instants are UTC. A window or cut-off in another zone means the same instants (compared
here with Python's own aware comparison); a naive one is refused at the call, in one line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

import engine
from engine.demo.contacts import generate_contacts
from engine.pipeline.build import build_contacts

NY = ZoneInfo("America/New_York")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
SETTINGS = engine.BuildSettings(tz="America/New_York")
WINDOW = (datetime(2026, 12, 4, 5, tzinfo=UTC), datetime(2026, 12, 7, 5, tzinfo=UTC))


@pytest.fixture(scope="module")
def contacts() -> pl.DataFrame:
    return generate_contacts(seed=5, start=WINDOW[0], days=3, scale=0.05, time_zone=SETTINGS.tz)


@pytest.fixture(scope="module")
def store(contacts: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store")
    build_contacts(contacts.lazy(), settings=SETTINGS, out_dir=out, window=WINDOW)
    return out


@pytest.mark.parametrize(("name", "at"), [("contacts", "offered_at"),
                                          ("callvolume", "interval_start_utc")])  # fmt: skip
@pytest.mark.parametrize("zone", [NY, KATHMANDU])
def test_a_window_in_any_zone_reads_the_rows_starting_in_it(
    store: Path, name: str, at: str, zone: ZoneInfo
) -> None:
    lo = datetime(2026, 12, 5, tzinfo=zone)
    hi = lo + timedelta(days=1, hours=7)
    every = engine.read_table(store, name).collect()
    want = [r for r in every.iter_rows(named=True) if lo <= r[at] < hi]
    got = engine.read_table(store, name, window=(lo, hi)).collect()
    assert 0 < got.height == len(want) < every.height
    assert sorted(got[at].to_list()) == sorted(r[at] for r in want)


def test_a_cut_off_in_any_zone_publishes_what_had_closed_by_that_instant(
    contacts: pl.DataFrame,
) -> None:
    table = engine.callvolume.build(
        engine.validate_contacts(contacts.lazy())[0], window=WINDOW, settings=SETTINGS
    )
    rows = table.collect()
    for closed in (
        datetime(2026, 12, 5, 12, 10, tzinfo=NY),
        datetime(2026, 12, 5, 20, 30, tzinfo=KATHMANDU),
    ):
        want = {
            r["interval_start_utc"]
            for r in rows.iter_rows(named=True)
            if r["interval_end_utc"] <= closed
        }
        got = engine.forecast.long_format(table, closed=closed).collect()
        assert 0 < len(want) < rows["interval_start_utc"].n_unique()
        assert set(got["ds"].dt.replace_time_zone("UTC")) == want
        local = engine.forecast.long_format(table, time="local", closed=closed, tz=SETTINGS.tz)
        assert local.collect().height > 0


def test_a_naive_cut_off_or_an_unknown_zone_is_refused_at_the_call(contacts: pl.DataFrame) -> None:
    table = engine.callvolume.build(
        engine.validate_contacts(contacts.lazy())[0], window=WINDOW, settings=SETTINGS
    )
    naive = datetime(2026, 12, 5, 12)  # noqa: DTZ001 (the mistake under test)
    with pytest.raises(ValueError, match=r"^closed 2026-12-05T12:00:00 is naive: give an aware"):
        engine.forecast.long_format(table, closed=naive)
    with pytest.raises(ValueError, match=r"^unknown IANA time zone 'localtime'$"):  # Polars' error
        engine.forecast.long_format(table, time="local", tz="localtime")  # once, at collect


def test_a_store_is_read_from_a_string_path_as_from_a_path(store: Path) -> None:
    want = engine.read_table(store, "callvolume").collect()
    got = engine.read_table(str(store), "callvolume", window=WINDOW).collect()
    assert 0 < got.height == want.height
    assert got.equals(want)
