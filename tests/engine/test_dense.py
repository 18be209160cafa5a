"""The busy-rows store and the zero-filled grid (SPEC §4 "Zero-fill", engine/tables/dense.py).

For any inputs and window, the builders' zero-filled table equals its busy rows filled again
over the same window, row for row (order and types included): storing busy rows loses nothing.
A dense table filled again is unchanged (a store written before keeps reading the same).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.interval import snap_window
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callvolume, retry_outcomes
from engine.tables.callback_requests import requests
from engine.tables.dense import busy, check_filled, fill, filled_size
from tests.engine.test_callback_properties import cases as callback_cases
from tests.strategies import build_settings, contact_rows, day_window


@st.composite
def volume_cases(
    draw: st.DrawFn,
) -> tuple[list[dict[str, object]], BuildSettings, tuple[datetime, datetime]]:
    tz, start, end = draw(day_window())
    settings = BuildSettings(**draw(build_settings(tz)))
    return draw(contact_rows(start, end)), settings, (start, end)


@given(volume_cases())
def test_the_volume_table_is_its_busy_rows_filled_again(case) -> None:  # type: ignore[no-untyped-def]
    rows, settings, window = case
    grid = settings.grid(window)
    contacts = pl.DataFrame(rows, schema=CONTACTS).lazy()
    built = callvolume.build(contacts, window=grid, settings=settings).collect()
    stored = built.filter(busy("callvolume"))
    assert stored.height == built.filter(pl.col("offered") > 0).height  # busy: something offered
    size = (built["interval_start_utc"].n_unique(), built.height)
    assert filled_size(stored, "callvolume", grid.frame) == size  # counted, not built
    # the builder's busy rows (no zero row built) are those rows, in that order
    assert_frame_equal(callvolume.busy_rows(contacts, window=grid, settings=settings).collect(),
                       stored)  # fmt: skip
    assert_frame_equal(fill(stored.lazy(), "callvolume", grid.frame).collect(), built)
    assert_frame_equal(fill(built.lazy(), "callvolume", grid.frame).collect(), built)


@given(callback_cases(), st.sampled_from([15, 30, 60]))
def test_the_callback_tables_are_their_busy_rows_filled_again(case, minutes: int) -> None:  # type: ignore[no-untyped-def]
    rows, start, end, tz = case
    settings = BuildSettings(interval_minutes=minutes, tz=tz)  # type: ignore[arg-type]
    grid = settings.grid(snap_window(start, end, minutes=minutes, tz=tz))
    reqs = requests(pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).lazy())
    ci = callback_intervals.build(reqs, window=grid, settings=settings).collect()
    ro = retry_outcomes.build(reqs, window=grid, settings=settings).collect()
    ci_stored = ci.filter(busy("callback_intervals"))
    ro_stored = ro.filter(busy("retry_outcomes"))
    assert ci_stored.height == ci.filter(pl.col("requests") > 0).height
    ci_size = (ci["interval_start_utc"].n_unique(), ci.height)
    assert filled_size(ci_stored, "callback_intervals", grid.frame) == ci_size
    ro_size = (ro["interval_start_utc"].n_unique(), ro.height)
    assert filled_size(ro_stored, "retry_outcomes", grid.frame, seen=ci_stored) == ro_size
    assert_frame_equal(fill(ci_stored.lazy(), "callback_intervals", grid.frame).collect(), ci)
    # retry rows of a target that never retried are all zero: its targets come from ci
    seen = ci_stored.lazy()
    assert_frame_equal(
        fill(ro_stored.lazy(), "retry_outcomes", grid.frame, seen=seen).collect(), ro
    )
    assert_frame_equal(fill(ro.lazy(), "retry_outcomes", grid.frame, seen=seen).collect(), ro)
    # the builders' busy rows (no zero row built) are those rows, in that order
    for module, stored in ((callback_intervals, ci_stored), (retry_outcomes, ro_stored)):
        assert_frame_equal(module.busy_rows(reqs, window=grid, settings=settings).collect(),
                           stored)  # fmt: skip


def test_an_empty_window_fills_to_an_empty_table() -> None:
    settings = BuildSettings()
    day = datetime(2026, 10, 1, tzinfo=UTC)
    grid = settings.grid((day, day.replace(hour=2)))
    empty = pl.DataFrame(schema=callvolume.SCHEMA)
    assert fill(empty.lazy(), "callvolume", grid.frame).collect().height == 0


def test_a_built_store_keeps_busy_rows_and_reads_back_dense(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``build`` stores busy rows; ``engine.read_table(..., dense=True)`` gives the builder's
    table of the window back (ratios included), and its exported CSV is that table too."""
    import engine
    from engine.demo.callbacks import generate_attempts
    from engine.demo.contacts import generate_contacts
    from engine.pipeline import build as pipeline
    from engine.pipeline.callbacks import build_callbacks

    settings = BuildSettings(tz="America/New_York")
    day = datetime(2026, 11, 1, tzinfo=UTC)  # a fall-back day in New York
    window = (day, day.replace(day=2))
    contacts = generate_contacts(seed=3, start=day, days=1, scale=0.2, time_zone=settings.tz)
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path, window=window)
    attempts = generate_attempts(seed=3, start=day, days=1, scale=0.2)
    build_callbacks(attempts.lazy(), settings=settings, out_dir=tmp_path, window=window)

    stored = engine.read_table(tmp_path, "callvolume").collect()
    assert stored.height > 0
    assert (stored["offered"] > 0).all()
    want = pipeline.volume_table(contacts, window=settings.grid(window), settings=settings)
    got = engine.read_table(tmp_path, "callvolume", window=window, dense=True).collect()
    assert got.height == want.height > stored.height
    assert_frame_equal(got.select(want.columns), want)
    exported = pl.read_csv(tmp_path / "exports" / "callvolume.csv", infer_schema_length=None)
    assert exported.height == want.height
    for name in ("callback_intervals", "retry_outcomes"):
        busy_only = engine.read_table(tmp_path, name).collect()
        full = engine.read_table(tmp_path, name, window=window, dense=True).collect()
        assert 0 < busy_only.height < full.height
        assert busy_only["requests"].sum() == full["requests"].sum()
        csv = pl.read_csv(tmp_path / "exports" / f"{name}.csv", infer_schema_length=None)
        assert full.height == csv.height


def test_a_dense_read_of_a_window_inside_intervals_widens_it_as_the_builder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A window starting and ending inside intervals reads the rows of those intervals, as the
    builder counts them over the same window (once: the first interval read as zeros)."""
    import engine
    from engine.demo.callbacks import generate_attempts
    from engine.demo.contacts import generate_contacts
    from engine.pipeline import build as pipeline
    from engine.pipeline.callbacks import build_callbacks

    settings = BuildSettings(tz="America/New_York", interval_minutes=30)
    day = datetime(2026, 11, 1, tzinfo=UTC)  # a fall-back day in New York
    contacts = generate_contacts(seed=4, start=day, days=1, scale=0.3, time_zone=settings.tz)
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path)
    attempts = generate_attempts(seed=4, start=day, days=1, scale=0.3)
    build_callbacks(attempts.lazy(), settings=settings, out_dir=tmp_path)
    inside = (day.replace(hour=13, minute=7), day.replace(hour=17, minute=52))
    grid = settings.grid(inside)
    got = engine.read_table(tmp_path, "callvolume", window=inside, dense=True).collect()
    want = pipeline.volume_table(contacts, window=grid, settings=settings)
    assert want.filter(pl.col("interval_start_utc") == grid.start)["offered"].sum() > 0
    assert_frame_equal(got.select(want.columns), want)
    reqs = engine.read_table(tmp_path, "callback_intervals", window=inside, dense=True)
    stored = engine.read_table(tmp_path, "callback_intervals").collect()
    at = pl.col("interval_start_utc")
    in_grid = stored.filter(at >= grid.start, at < grid.end)
    assert reqs.collect()["requests"].sum() == in_grid["requests"].sum() > 0


def test_callback_tables_read_dense_on_their_own_build_s_grid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Contacts built hourly and callbacks every 15 minutes into one folder: the callback
    tables read dense on the contacts' hourly grid, 120 of 167 requests dropped. Each table
    reads on the grid of the build that wrote it; and a window filters every table's rows by
    their start (staffing and the canonical tables were read whole)."""
    import engine
    from engine.demo.callbacks import generate_attempts
    from engine.demo.contacts import generate_contacts
    from engine.pipeline import build as pipeline
    from engine.pipeline.callbacks import build_callbacks

    day = datetime(2026, 11, 1, tzinfo=UTC)
    window = (day, day + timedelta(days=2))
    contacts = generate_contacts(seed=5, start=day, days=2, scale=0.2)
    hourly = BuildSettings(interval_minutes=60)
    pipeline.build_contacts(contacts.lazy(), settings=hourly, out_dir=tmp_path, window=window)
    attempts = generate_attempts(seed=5, start=day, days=2, scale=0.3)
    build_callbacks(attempts.lazy(), settings=BuildSettings(), out_dir=tmp_path, window=window)
    first = (day, day + timedelta(days=1))
    for name in ("callback_intervals", "retry_outcomes"):
        stored = engine.read_table(tmp_path, name, window=first).collect()
        full = engine.read_table(tmp_path, name, window=first, dense=True).collect()
        assert stored["requests"].sum() == full["requests"].sum() > 0, name
        length = full["interval_end_utc"] - full["interval_start_utc"]
        assert length.dt.total_minutes().unique().to_list() == [15], name  # the callbacks' grid
        assert full["interval_start_utc"].n_unique() == 96, name
    at = {"contacts": "offered_at", "callback_attempts": "created_at"}
    for name in ("contacts", "callback_attempts", "callvolume"):
        whole = engine.read_table(tmp_path, name).collect()
        starts = pl.col(at.get(name, "interval_start_utc"))
        want = whole.filter(starts >= first[0], starts < first[1])
        assert 0 < want.height < whole.height, name
        assert engine.read_table(tmp_path, name, window=first).collect().height == want.height
    with pytest.raises(ValueError, match="two aware instants in order"):
        engine.read_table(tmp_path, "contacts", window=(first[1], first[0]))


@pytest.mark.parametrize(("minutes", "tz"), [(0, "UTC"), (7, "UTC"), (2880, "UTC"),
                                             (15, "Asia/Almatyy")])  # fmt: skip
def test_a_grid_of_no_interval_or_no_zone_is_a_value_error(minutes: int, tz: str) -> None:
    """Polars' ComputeError ("interval must be positive", "did you mean Asia/Almaty") escaped
    ``snap_window``; a 7-minute or two-day interval was taken."""
    day = datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"minutes: a whole divisor|unknown IANA time zone"):
        snap_window(day, day + timedelta(days=1), minutes=minutes, tz=tz)


def test_a_parquet_only_build_stores_the_same_rows_and_reports_the_same_shape(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``build --format parquet`` builds no zero row (the store keeps busy rows); its store and
    its summary's numbers are those of a build that writes every format."""
    from engine.demo.contacts import generate_contacts
    from engine.pipeline import build as pipeline

    settings = BuildSettings(tz="Asia/Kolkata")
    day = datetime(2026, 11, 1, tzinfo=UTC)
    window = (day, day.replace(day=3))
    contacts = generate_contacts(seed=5, start=day, days=2, scale=0.2, time_zone=settings.tz)
    reports = {}
    for formats in (("parquet",), pipeline.FORMATS):
        out = tmp_path / "-".join(formats)
        reports[formats] = pipeline.build_contacts(
            contacts.lazy(), settings=settings, out_dir=out, window=window, formats=formats
        )
    only, every = (tmp_path / "parquet", tmp_path / "-".join(pipeline.FORMATS))
    for name in ("contacts", "callvolume"):
        assert_frame_equal(
            pl.read_delta(str(only / "store" / name)),
            pl.read_delta(str(every / "store" / name)),
            check_row_order=False,
        )
    a, b = (reports[f] for f in reports)
    assert (a.intervals, a.queue_channels, a.table_rows) == (b.intervals, b.queue_channels,
                                                             b.table_rows)  # fmt: skip
    assert a.table_rows > pl.read_delta(str(only / "store" / "callvolume")).height
    assert not (only / "exports").exists()


def test_parquet_only_callbacks_store_the_same_rows_and_report_the_same_shape(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``callbacks --format parquet`` builds no zero row; its store, document and summary
    numbers are those of a build that writes every format."""
    from engine.demo.callbacks import generate_attempts
    from engine.pipeline.callbacks import CALLBACK_FORMATS, build_callbacks

    settings = BuildSettings(tz="America/New_York")
    day = datetime(2026, 10, 31, tzinfo=UTC)  # the window crosses New York's fall-back
    window = (day, day.replace(month=11, day=3))
    attempts = generate_attempts(seed=9, start=day, days=3, scale=0.3)
    reports = {}
    for formats in (("parquet",), CALLBACK_FORMATS):
        out = tmp_path / "-".join(formats)
        reports[formats] = build_callbacks(
            attempts.lazy(), settings=settings, out_dir=out, window=window, formats=formats
        )
    only, every = (tmp_path / "-".join(f) for f in reports)
    for name in ("callback_attempts", "callback_intervals", "retry_outcomes"):
        assert_frame_equal(
            pl.read_delta(str(only / "store" / name)),
            pl.read_delta(str(every / "store" / name)),
            check_row_order=False,
        )
    a, b = (reports[f] for f in reports)
    shape = ("intervals", "combinations", "table_rows", "retry_rows", "requests", "gaps")
    assert [getattr(a, k) for k in shape] == [getattr(b, k) for k in shape]
    assert a.retry_rows > pl.read_delta(str(only / "store" / "retry_outcomes")).height > 0
    document = "exports/callback_metrics.json"
    assert (only / document).read_text() == (every / document).read_text()


@pytest.mark.parametrize(
    ("years", "groups", "rows", "refused"),
    [
        (126, 683, 1_240, True),  # a 1900-01-01 placeholder: ~3 billion rows
        (56, 7, 1_239, True),  # a 1970 epoch among 7 pairs: ~13.7 million rows, 11,000 a row
        (1, 1_000, 10_000_000, False),  # a busy year at 1,000 pairs: 35 million rows, 3.5 a row
        (10, 1, 73_000, False),  # one queue, 20 contacts a day for 10 years: 350,000 rows
        (0.25, 100, 1_000, False),  # sparse, but under 10 million rows however sparse
    ],
)
def test_a_window_from_the_data_is_refused_only_when_its_fill_is_huge_and_nearly_empty(
    years: float, groups: int, rows: int, refused: bool
) -> None:
    lo = datetime(2026, 10, 1, tzinfo=UTC) - timedelta(days=365 * years)
    hi = datetime(2026, 10, 1, tzinfo=UTC)
    what = ("contacts", "queue x channel pairs")
    if refused:
        with pytest.raises(ValueError, match="give --start and --end"):
            check_filled(lo, hi, groups, rows, minutes=15, what=what)
    else:
        check_filled(lo, hi, groups, rows, minutes=15, what=what)
