"""A dense read makes zeros only where the store's builds counted.

``engine.read_table(out, name, window=..., dense=True)`` zero-filled every interval of any
window: a day before the first build read as "0 offered" in every queue, a count nobody took.
The exports and ``serve`` zero-fill the span the builds covered (the stored rows and the
recorded build windows); a dense read of a window reaching outside it is now refused, naming
that span.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import engine
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.errors import StoreError
from engine.pipeline.build import build_contacts
from engine.pipeline.callbacks import build_callbacks

DAY = datetime(2026, 10, 1, tzinfo=UTC)
BUILT = "2026-10-01T08:00:00Z .. 2026-10-01T11:00:00Z"


def _hours(a: int, b: int) -> tuple[datetime, datetime]:
    return DAY + timedelta(hours=a), DAY + timedelta(hours=b)


@pytest.fixture
def morning(tmp_path: Path) -> Path:
    """Contacts built over 08:00-11:00Z (quiet at both ends, busy in between)."""
    contacts = generate_contacts(seed=2, start=DAY, days=1, scale=0.05)
    contacts = contacts.filter(contacts["offered_at"].dt.hour().is_between(9, 9))
    build_contacts(contacts.lazy(), settings=engine.BuildSettings(), out_dir=tmp_path,
                   window=_hours(8, 11))  # fmt: skip
    return tmp_path


@pytest.mark.parametrize(("a", "b"), [(7, 11), (8, 12), (0, 24), (12, 13)])
def test_a_dense_window_outside_the_build_is_refused_naming_what_was_built(
    morning: Path, a: int, b: int
) -> None:
    with pytest.raises(StoreError, match=f"reaches outside what the builds of callvolume "
                                         f"covered \\({BUILT}\\)"):  # fmt: skip
        engine.read_table(morning, "callvolume", window=_hours(a, b), dense=True)


def test_a_dense_window_inside_the_build_is_zero_filled_as_before(morning: Path) -> None:
    stored = engine.read_table(morning, "callvolume").collect()
    pairs = stored.select("queue_id", "channel").n_unique()
    assert stored["interval_start_utc"].dt.hour().unique().to_list() == [9]
    full = engine.read_table(morning, "callvolume", window=_hours(8, 11), dense=True).collect()
    assert full.height == 12 * pairs  # the quiet hours the build counted are zeros
    assert full["offered"].sum() == stored["offered"].sum() > 0
    part = engine.read_table(morning, "callvolume", window=_hours(10, 11), dense=True)
    assert part.collect()["offered"].sum() == 0
    # busy rows as stored, any window: nothing is made up there
    assert engine.read_table(morning, "callvolume", window=_hours(0, 24)).collect().equals(stored)


def test_each_table_reads_within_its_own_build_s_windows(morning: Path) -> None:
    """Callbacks built over 08:00-14:00Z: their tables read dense to 14:00, the volume table
    (its contacts built to 11:00) does not."""
    attempts = generate_attempts(seed=2, start=DAY, days=1, scale=0.3)
    build_callbacks(attempts.lazy(), settings=engine.BuildSettings(), out_dir=morning,
                    window=_hours(8, 14))  # fmt: skip
    for name in ("callback_intervals", "retry_outcomes"):
        full = engine.read_table(morning, name, window=_hours(8, 14), dense=True).collect()
        assert full["interval_start_utc"].n_unique() == 24, name
        with pytest.raises(StoreError, match=r"covered \(2026-10-01T08:00:00Z \.\. 2026-10-01T14"):
            engine.read_table(morning, name, window=_hours(8, 15), dense=True)
    with pytest.raises(StoreError, match=f"covered \\({BUILT}\\)"):
        engine.read_table(morning, "callvolume", window=_hours(8, 14), dense=True)


def test_a_dense_read_of_a_build_longer_than_max_window_days_is_not_refused(
    tmp_path: Path,
) -> None:
    """A build given no window took its data's 450 days; a dense read of that span was
    refused by the typed-window limit (``max_window_days``, 400), with a fix it cannot take
    (``read_table`` takes no settings). It is held to what the store's builds covered."""
    first, last = DAY - timedelta(days=449), DAY + timedelta(hours=12)
    contacts = generate_contacts(seed=4, start=DAY, days=1, scale=0.02)
    early = contacts.head(1).with_columns(offered_at=pl.lit(first + timedelta(hours=10)))
    both = pl.concat([early.with_columns(contact_id=pl.lit("early")), contacts])
    build_contacts(both.lazy(), settings=engine.BuildSettings(), out_dir=tmp_path)
    window = (first + timedelta(hours=10), last)  # inside the data's span, its first row on
    full = engine.read_table(tmp_path, "callvolume", window=window, dense=True).collect()
    at = pl.col("interval_start_utc")
    stored = engine.read_table(tmp_path, "callvolume").filter(at >= window[0], at < last)
    assert full["offered"].sum() == stored.collect()["offered"].sum() > 0
    assert full["interval_start_utc"].n_unique() > 400 * 96
