"""The volume table against the independent oracle, plus its algebraic properties."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import InputSchemaError
from engine.interval import snap_window
from engine.schema import CONTACTS
from engine.settings import SL_FORMULAS, BuildSettings
from engine.tables.callvolume import ADDITIVE, KEYS, build, derive, rollup, rollup_window
from tests import oracle
from tests.strategies import build_settings, contact_rows, day_window


def _frame(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    return pl.DataFrame(rows, schema=CONTACTS).lazy()


def _engine(rows: list[dict[str, Any]], start: datetime, end: datetime, kw: dict[str, Any]):
    return build(_frame(rows), window=(start, end), settings=BuildSettings(**kw)).collect()


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], datetime, datetime, dict[str, Any]]:
    tz, start, end = draw(day_window())
    return draw(contact_rows(start, end)), start, end, draw(build_settings(tz))


@given(cases())
def test_engine_equals_oracle_exactly(case) -> None:
    rows, start, end, kw = case
    assert _engine(rows, start, end, kw).to_dicts() == oracle.callvolume(rows, start, end, kw)


@given(cases(), st.sampled_from(SL_FORMULAS))
def test_derived_ratios_equal_oracle(case, formula: str) -> None:
    rows, start, end, kw = case
    settings = BuildSettings(**kw, sl_formula=formula)
    table = derive(build(_frame(rows), window=(start, end), settings=settings), settings=settings)
    got = table.collect().to_dicts()
    want = oracle.callvolume(rows, start, end, kw)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        a = w["answered"]
        assert g["aht_ms"] == (w["handle_ms"] / a if a else None)
        assert g["asa_ms"] == (w["wait_answered_ms"] / a if a else None)
        assert g["abandon_rate"] == (w["abandoned"] / w["offered"] if w["offered"] else None)
        assert g["service_level"] == oracle.service_level(w, formula)


@given(cases())
def test_offered_is_answered_abandoned_flow_out_open(case) -> None:
    rows, start, end, kw = case
    t = _engine(rows, start, end, kw)
    parts = t["answered"] + t["abandoned"] + t["flow_out"] + t["open"]
    assert (t["offered"] == parts).all()
    assert (t["short_abandoned"] <= t["abandoned"]).all()
    assert (t["handle_ms"] == t["talk_ms"] + t["hold_ms"] + t["acw_ms"]).all()


@given(cases())
def test_every_inbound_segment_lands_in_exactly_one_interval(case) -> None:
    rows, start, end, kw = case
    kw = {**kw, "attribution": "arrival"}
    t = _engine(rows, start, end, kw)
    lo, hi = snap_window(start, end, minutes=kw["interval_minutes"], tz=kw["tz"])
    inside = [r for r in rows if r["direction"] == "inbound" and lo <= r["offered_at"] < hi]
    assert t["offered"].sum() == len(inside)


@given(cases(), st.sampled_from([30, 60]))
def test_rollup_equals_direct_build_at_coarser_length(case, coarser: int) -> None:
    rows, start, end, kw = case
    # Roll-ups equal direct builds over the same span: a window of whole local days.
    start, end = snap_window(start, end, minutes=1440, tz=kw["tz"])
    kw = {**kw, "interval_minutes": 15}
    fine = build(_frame(rows), window=(start, end), settings=BuildSettings(**kw))
    rolled = rollup(fine, window=(start, end), minutes=coarser, tz=kw["tz"]).collect()
    direct = _engine(rows, start, end, {**kw, "interval_minutes": coarser})
    assert rolled.equals(direct)
    # ... and to local days, against the oracle at 1440 minutes.
    day = rollup(fine, window=(start, end), minutes=1440, tz=kw["tz"]).collect()
    assert day.to_dicts() == oracle.callvolume(rows, start, end, {**kw, "interval_minutes": 1440})
    # ... and to the whole window.
    total = rollup_window(fine).collect()
    direct_total = rollup_window(direct.lazy()).collect()
    assert total.drop("interval_start_utc", "interval_end_utc").equals(
        direct_total.drop("interval_start_utc", "interval_end_utc")
    )
    sums = [c for c in ADDITIVE if not c.endswith("max_ms")]
    assert total.select(sums).sum().row(0) == direct.select(sums).sum().row(0)


@given(cases(), st.randoms(use_true_random=False), st.integers(1, 5))
def test_row_order_and_chunking_change_nothing(case, rnd: random.Random, chunks: int) -> None:
    rows, start, end, kw = case
    want = _engine(rows, start, end, kw)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    cut = sorted(rnd.randint(0, len(shuffled)) for _ in range(chunks - 1))
    parts = [shuffled[a:b] for a, b in zip([0, *cut], [*cut, len(shuffled)], strict=True)]
    frame = pl.concat([pl.DataFrame(p, schema=CONTACTS) for p in parts], rechunk=False)
    got = build(frame.lazy(), window=(start, end), settings=BuildSettings(**kw)).collect()
    assert got.equals(want)


def test_keys_are_unique_and_every_pair_has_every_interval() -> None:
    rows = oracle_rows()
    start, end = rows[0]["offered_at"], rows[-1]["offered_at"]
    t = _engine(rows, start, end, {"tz": "Europe/London"})
    assert t.select(KEYS).is_unique().all()
    per_pair = t.group_by("queue_id", "channel").len()["len"].unique()
    assert per_pair.len() == 1


def oracle_rows() -> list[dict[str, Any]]:
    from datetime import UTC, timedelta

    t0 = datetime(2026, 10, 24, 22, tzinfo=UTC)
    base = {
        "source": "s", "segment_no": 1, "direction": "inbound", "queue_name": None,
        "answered_at": None, "ended_at": None, "outcome": "open", "wait_ms": 0, "talk_ms": 0,
        "hold_ms": 0, "acw_ms": 0, "sl_threshold_ms": None, "messages": 0, "csat_responses": 0,
        "csat_score": 0, "updated_at": None,
    }  # fmt: skip
    return [
        {**base, "contact_id": f"c{i}", "queue_id": q, "channel": ch,
         "offered_at": t0 + timedelta(minutes=37 * i)}
        for i, (q, ch) in enumerate([("a", "voice"), ("b", "chat"), ("a", "chat")] * 20)
    ]  # fmt: skip


@pytest.mark.parametrize(("attribution", "expected_interval_minute"), [("arrival", 0), ("end", 15)])
def test_attribution_moves_a_segment_to_its_end_interval(attribution, expected_interval_minute):
    from datetime import UTC, timedelta

    t0 = datetime(2026, 10, 1, 9, 10, tzinfo=UTC)
    row = {**oracle_rows()[0], "offered_at": t0, "outcome": "abandoned", "wait_ms": 600_000,
           "ended_at": t0 + timedelta(minutes=10)}  # fmt: skip
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    t = _engine([row], start, start + timedelta(hours=1), {"attribution": attribution})
    hit = t.filter(pl.col("offered") == 1)["interval_start_utc"].dt.minute().to_list()
    assert hit == [expected_interval_minute]


def test_every_table_builder_returns_its_declared_schema() -> None:
    from datetime import UTC, timedelta

    from engine.demo.callbacks import generate_attempts
    from engine.demo.contacts import generate_contacts
    from engine.tables import callback_intervals, retry_outcomes
    from engine.tables.callback_requests import requests
    from engine.tables.callvolume import SCHEMA

    start = datetime(2026, 10, 1, tzinfo=UTC)
    window = (start, start + timedelta(days=1))
    s = BuildSettings()
    contacts = generate_contacts(start=start, days=1, scale=0.1).lazy()
    reqs = requests(generate_attempts(start=start, days=1, scale=0.1).lazy())
    for module, frame in ((callback_intervals, reqs), (retry_outcomes, reqs)):
        built = module.build(frame, window=window, settings=s)
        assert built.collect_schema() == pl.Schema(module.SCHEMA)
        assert built.collect().schema == pl.Schema(module.SCHEMA)
    volume = build(contacts, window=window, settings=s)
    assert volume.collect_schema() == pl.Schema(SCHEMA)
    assert volume.collect().schema == pl.Schema(SCHEMA)


_INSTANTS = ("offered_at", "answered_at", "ended_at", "updated_at")


@given(cases(), st.sampled_from([("ns", "UTC"), ("us", "Europe/Paris"), ("ns", "Asia/Kolkata")]))
def test_instants_in_another_unit_or_zone_give_the_oracles_table(case, form) -> None:
    """A notebook's frame from pandas holds nanoseconds: read as microseconds, its intervals
    fell outside the grid and the table was empty, silently; another zone was a raw Polars
    SchemaError. The same instants in any unit or zone give the same table."""
    rows, start, end, kw = case
    unit, zone = form
    frame = _frame(rows).with_columns(
        pl.col(c).dt.cast_time_unit(unit).dt.convert_time_zone(zone) for c in _INSTANTS
    )
    table = build(frame, window=(start, end), settings=BuildSettings(**kw)).collect()
    assert table.to_dicts() == oracle.callvolume(rows, start, end, kw)


def test_naive_instants_are_refused_by_name() -> None:
    frame = (
        pl.DataFrame(schema=CONTACTS)
        .lazy()
        .with_columns(pl.col("offered_at").dt.replace_time_zone(None))
    )
    window = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))
    with pytest.raises(InputSchemaError, match=r"^offered_at: Datetime\(.*not an aware instant"):
        build(frame, window=window, settings=BuildSettings())
