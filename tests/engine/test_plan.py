"""What a run rebuilds (engine.pipeline.window.plan_run), from the digests of what landed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.interval import Grid
from engine.pipeline.window import (
    Canonical,
    RunPlan,
    after_until,
    fingerprints,
    plan_contacts,
    plan_run,
)
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


def _shifted(frame: pl.DataFrame, by: timedelta, n: int = 1) -> pl.DataFrame:
    """The first ``n`` rows of ``frame`` with every instant moved by ``by``."""
    instants = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    return frame.head(n).with_columns(pl.col(c) + by for c in instants)


def _full(
    contacts: pl.DataFrame, attempts: pl.DataFrame | None = None
) -> tuple[RunPlan, list[set[date]], list[set[date]]]:
    plan = plan_run(
        Canonical.of(
            (contacts, contacts.clear()),
            None if attempts is None else (attempts, attempts.clear()),
            None,
        ),
        settings=BuildSettings(),
        first_start=START,
        recent_start=None,
        given=(None, None),
        previous=None,
        now=NOW,
    )
    return plan, _covered(plan.volume), _covered(plan.callbacks)


def _covered(grids: list[Grid]) -> list[set[date]]:
    return [set(g.frame["interval_start_utc"].dt.date().to_list()) for g in grids]


def _span(first: date, last: date) -> set[date]:
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def test_a_full_rebuild_adds_the_day_of_a_row_years_before_the_first_start_not_every_day() -> None:
    """A call stamped eleven years before the sources' first start (an old record changed
    lately, or a vendor's bad date) is counted on its day; the run does not zero-fill the
    4,000 days between (at 1,000 queues, ~400 million empty rows in the exports)."""
    recent = contacts()
    old = _shifted(recent, timedelta(days=-4000))
    old_day = old["offered_at"][0].date()
    plan, volume, _ = _full(pl.concat([old, recent]))
    assert set().union(*volume) == {old_day} | _span(START.date(), NOW.date())
    assert plan.recent[0] == START  # what the reconciliations and the run state cover


def test_attempts_years_before_the_first_start_add_their_request_day() -> None:
    recent = contacts()
    attempts = generate_attempts(start=START, days=5, scale=0.02)
    old = _shifted(attempts, timedelta(days=-900), n=3)
    old_days = set(old["created_at"].dt.date().to_list())
    _, volume, callbacks = _full(recent, pl.concat([old, attempts]))
    assert set().union(*callbacks) == old_days | _span(START.date(), NOW.date())
    assert set().union(*volume) == _span(START.date(), NOW.date())


@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=6, unique=True))
def test_a_full_rebuild_covers_every_row_day_and_no_grids_share_a_day(back: list[int]) -> None:
    """Rows 1-60 days before the first start: the grids cover each one's day and every day
    from the first start to now, no two grids share a day (a partition), and a day covered
    is a needed day or a bridged one-day gap between two."""
    base = contacts()
    rows = pl.concat([_shifted(base.slice(i), timedelta(days=-d)) for i, d in enumerate(back)])
    needed = set(rows["offered_at"].dt.date().to_list()) | _span(START.date(), NOW.date())
    _, volume, _ = _full(pl.concat([rows, base]))
    covered = set().union(*volume)
    assert needed <= covered
    assert sum(len(days) for days in volume) == len(covered)
    one = timedelta(days=1)
    assert all({d - one, d + one} & needed for d in covered - needed)


def test_a_changed_day_after_an_explicit_end_is_rebuilt_not_only_committed() -> None:
    """``run --start/--end`` gives the recent window; the days whose content changed are
    rebuilt all the same, wherever they fall. A changed day after the given end was committed
    (its digest kept as built) but left out of the grids: no later run saw it as changed, and
    its intervals kept the old numbers for good unless a recent window came back over it."""
    before = contacts()
    later = START.date() + timedelta(days=3)
    changed = before.with_columns(
        pl.when(pl.col("offered_at").dt.date() == later)
        .then(pl.col("talk_ms") + 1_000)
        .otherwise(pl.col("talk_ms"))
        .alias("talk_ms")
    )
    plan = plan_run(
        canonical(changed),
        settings=BuildSettings(),
        first_start=START,
        recent_start=NOW - timedelta(hours=1),
        given=(START, START + timedelta(days=1)),
        previous=fingerprints(canonical(before)),
        now=NOW,
    )
    assert plan.commit_days["contacts"] == {later}
    covered = set().union(*_covered(plan.volume))
    assert {START.date(), later} <= covered


def test_a_full_rebuild_given_a_narrower_window_still_rebuilds_every_day() -> None:
    """A full rebuild (owed by new settings, a rebuild a kill left unfinished, a damaged table,
    or asked for) given ``--start/--end`` over a few hours: its grids were those hours only and
    the whole volume table was replaced by them (every other built day gone, exit 0), while
    every day's digest was kept as built. The window now only widens a full rebuild."""
    rows = contacts()
    narrow = (START + timedelta(days=2, hours=10), START + timedelta(days=2, hours=12))
    plans = [
        plan_run(
            canonical(rows),
            settings=BuildSettings(),
            first_start=START,
            recent_start=None,
            given=window,
            previous=None,
            now=NOW,
        )
        for window in [(None, None), narrow]
    ]
    assert plans[1].full
    assert _covered(plans[1].volume) == _covered(plans[0].volume)
    assert _covered(plans[1].callbacks) == _covered(plans[0].callbacks)
    assert plans[1].recent == plans[0].recent


@given(
    st.lists(st.integers(min_value=-3 * 24 * 60, max_value=80 * 24 * 60), min_size=1, max_size=8),
    st.sampled_from(["arrival", "end"]),
    st.booleans(),
    st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_rows_after_the_plan_are_counted_exactly(
    minutes: list[int], attribution: str, full: bool, clock_minute: int
) -> None:
    """``after_until`` against a plain count of every row: contacts moved to a random minute
    from 3 days before now to 80 days after (the day after ``until`` and beyond are counted
    from the digests, the rest from the rows), by offer or by end, on a full rebuild or not."""
    now = START + timedelta(days=5, minutes=clock_minute)
    base = contacts()
    moved = pl.concat(
        [
            _shifted(base.slice(i), now + timedelta(minutes=m) - base["offered_at"][i])
            for i, m in enumerate(minutes)
        ]
    ).with_columns(pl.concat_str(pl.lit("moved-"), "contact_id").alias("contact_id"))
    settings = BuildSettings(attribution=attribution)  # type: ignore[arg-type]
    after = canonical(pl.concat([base, moved]))
    plan = plan_run(
        after,
        settings=settings,
        first_start=START,
        recent_start=None if full else now - timedelta(hours=1),
        given=(None, None),
        previous=None if full else fingerprints(canonical(base)),
        now=now,
    )
    rows = plan_contacts(after, plan, settings)
    assert rows is not None
    at = "offered_at" if attribution == "arrival" else "ended_at"
    expected = sum(
        1 for row in rows.iter_rows(named=True) if (row[at] or row["offered_at"]) >= plan.until
    )
    assert after_until(plan, "contacts", rows, settings) == expected
    assert plan.until == settings.grid((now - timedelta(microseconds=1), now)).end
