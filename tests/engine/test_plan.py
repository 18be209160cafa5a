"""What a run rebuilds (engine.pipeline.window.plan_run), from the digests of what landed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from engine.demo.contacts import generate_contacts
from engine.pipeline.window import Canonical, fingerprints, plan_run
from engine.settings import BuildSettings

START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = START + timedelta(days=5, hours=6)


def canonical(contacts: pl.DataFrame) -> Canonical:
    return Canonical.of((contacts, contacts.clear()), None, None)


def plan_after(before: pl.DataFrame, after: pl.DataFrame) -> set[date]:
    """The UTC days the volume grids of the next run cover."""
    plan = plan_run(
        canonical(after),
        settings=BuildSettings(),
        first_start=START,
        recent_start=NOW - timedelta(hours=1),
        given=(None, None),
        previous=fingerprints(canonical(before)),
        now=NOW,
    )
    days: set[date] = set()
    for grid in plan.volume:
        days |= set(grid.frame["interval_start_utc"].dt.date().to_list())
    return days


def contacts() -> pl.DataFrame:
    return generate_contacts(start=START, days=5, scale=0.02)


def test_nothing_changed_rebuilds_only_the_recent_window() -> None:
    same = contacts()
    assert plan_after(same, same) == {NOW.date()}


def test_a_contact_moved_to_another_day_rebuilds_both_days() -> None:
    before = contacts()
    first = before.row(0, named=True)
    moved = before.with_columns(
        pl.when(pl.col("contact_id") == first["contact_id"])
        .then(pl.col("offered_at") + timedelta(days=2))
        .otherwise(pl.col("offered_at"))
        .alias("offered_at")
    )
    old, new = first["offered_at"].date(), (first["offered_at"] + timedelta(days=2)).date()
    assert {old, new} <= plan_after(before, moved)


def test_a_day_whose_contacts_all_went_is_rebuilt() -> None:
    before = contacts()
    gone = START.date() + timedelta(days=1)
    after = before.filter(pl.col("offered_at").dt.date() != gone)
    assert gone in plan_after(before, after)
    assert START.date() not in plan_after(before, after)  # untouched days stay as they are
