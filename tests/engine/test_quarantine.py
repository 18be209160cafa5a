"""Every quarantine reason, one hand-made row each, plus de-duplication rules (SPEC §7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputSchemaError
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, QUARANTINE
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.validate.callback_attempts import validate_callback_attempts
from engine.validate.contacts import REASONS, validate_contacts

T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)


def good(**changes: Any) -> dict[str, Any]:
    """One valid row as text, the way a CSV delivers it."""
    row: dict[str, Any] = {
        "source": "ujet", "contact_id": "c1", "segment_no": "1", "channel": "voice",
        "direction": "inbound", "queue_id": "q1", "queue_name": "Sales",
        "offered_at": "2026-10-01T09:00:00.000Z", "answered_at": "2026-10-01T09:00:10.000Z",
        "ended_at": "2026-10-01T09:05:00.000Z", "outcome": "answered", "wait_ms": "10000",
        "talk_ms": "250000", "hold_ms": "0", "acw_ms": "40000", "sl_threshold_ms": None,
        "messages": "0", "csat_responses": "0", "csat_score": "0",
        "updated_at": "2026-10-01T09:06:00.000Z",
    }  # fmt: skip
    row.update(changes)
    return row


def run(*rows: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    frame = pl.DataFrame(list(rows), schema=dict.fromkeys(rows[0], pl.String))
    clean, bad = validate_contacts(frame.lazy())
    return clean.collect(), bad.collect()


CASES = [
    ("missing_id", {"contact_id": None}),
    ("missing_id", {"queue_id": None}),
    ("missing_timestamp", {"offered_at": None}),
    ("unparsable_timestamp", {"offered_at": "2026-13-45T99:00"}),
    ("unparsable_timestamp", {"ended_at": "yesterday"}),
    ("unparsable_timestamp", {"offered_at": "2026-10-01 09:00:00"}),  # no offset: not UTC-safe
    ("wrong_type", {"talk_ms": "12.5s"}),
    ("wrong_type", {"segment_no": "one"}),
    ("unknown_channel", {"channel": "fax"}),
    ("unknown_direction", {"direction": "sideways"}),
    ("unknown_outcome", {"outcome": "lost"}),
    ("end_before_offer", {"ended_at": "2026-10-01T08:59:59.999Z"}),
    ("answer_before_offer", {"answered_at": "2026-10-01T08:00:00Z"}),
    ("negative_duration", {"wait_ms": "-1"}),
    ("negative_duration", {"acw_ms": "-40000"}),
    ("implausible_duration", {"talk_ms": str(2**62)}),  # would wrap a sum to -9.2e18
    ("implausible_duration", {"wait_ms": "604800001"}),  # a week and a millisecond
    ("implausible_duration", {"answered_at": "2031-10-01T09:00:00Z", "wait_ms": None}),  # derived
    ("implausible_count", {"messages": "1000001"}),
]


@pytest.mark.parametrize(("reason", "change"), CASES)
def test_each_reason_is_quarantined_with_its_raw_payload(reason: str, change: dict[str, Any]):
    clean, bad = run(good(contact_id="ok"), good(**{"contact_id": "bad", **change}))
    assert clean["contact_id"].to_list() == ["ok"]
    assert bad.schema == pl.Schema(QUARANTINE)
    assert bad["reason"].to_list() == [reason]
    raw = json.loads(bad["raw"][0])
    column = next(iter(change))
    assert raw[column] == change[column]  # the payload as received, not as parsed


def test_every_reason_has_a_case() -> None:
    assert {r for r, _ in CASES} | {"conflicting_duplicate"} == set(REASONS)


def test_conflicting_duplicate_quarantines_both_rows() -> None:
    clean, bad = run(good(), good(talk_ms="1"), good(contact_id="c2"))
    assert clean["contact_id"].to_list() == ["c2"]
    assert bad["reason"].to_list() == ["conflicting_duplicate"] * 2
    assert bad["record_id"].to_list() == ["c1:1", "c1:1"]


def test_exact_duplicates_collapse_and_latest_update_wins() -> None:
    older = good(outcome="open", answered_at=None, ended_at=None, updated_at="2026-10-01T09:01Z")
    clean, bad = run(older, good(), good(), good())
    assert bad.height == 0
    assert clean.height == 1
    assert clean["outcome"].to_list() == ["answered"]


def test_null_updated_at_is_older_than_any_other() -> None:
    clean, _ = run(good(updated_at=None, outcome="open", answered_at=None, ended_at=None), good())
    assert clean["outcome"].to_list() == ["answered"]


def test_clean_rows_have_the_canonical_schema_and_defaults() -> None:
    row = good(hold_ms=None, messages=None, wait_ms=None, direction=None)
    clean, bad = run(row)
    assert bad.height == 0
    assert clean.schema == pl.Schema(CONTACTS)
    r = clean.row(0, named=True)
    assert (r["hold_ms"], r["messages"], r["direction"]) == (0, 0, "inbound")
    assert r["wait_ms"] == 10_000  # derived from answered_at - offered_at
    assert r["offered_at"] == T0
    assert r["ended_at"] - r["offered_at"] == timedelta(minutes=5)


def test_optional_columns_may_be_absent() -> None:
    row = {k: v for k, v in good().items() if k in {
        "source", "contact_id", "segment_no", "channel", "queue_id", "offered_at", "outcome",
        "answered_at"}}  # fmt: skip
    clean, bad = run(row)
    assert bad.height == 0
    r = clean.row(0, named=True)
    assert (r["wait_ms"], r["talk_ms"], r["direction"], r["sl_threshold_ms"]) == (
        10_000,
        0,
        "inbound",
        None,
    )


def test_typed_input_passes_through_and_offsets_are_converted_to_utc() -> None:
    clean, _ = run(good(offered_at="2026-10-01T11:00:00+02:00"))
    assert clean["offered_at"][0] == T0
    typed = clean.lazy()
    again, bad = validate_contacts(typed)
    assert again.collect().equals(clean)
    assert bad.collect().height == 0


def test_missing_required_column_is_a_clear_error() -> None:
    frame = pl.DataFrame([good()]).drop("queue_id")
    with pytest.raises(InputSchemaError, match="queue_id"):
        validate_contacts(frame.lazy())


def test_naive_datetime_columns_are_refused() -> None:
    frame = pl.DataFrame([good()]).with_columns(
        pl.col("offered_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ")
    )
    with pytest.raises(InputSchemaError, match="naive"):
        validate_contacts(frame.lazy())


def test_validation_of_dirty_synthetic_data_recovers_the_clean_frame() -> None:
    from engine.demo.contacts import generate_contacts, make_dirty

    clean_in = generate_contacts(seed=3, days=2)
    dirty, injected = make_dirty(clean_in, seed=3, fraction=0.05)
    clean, bad = validate_contacts(dirty.lazy())
    got = bad.collect().group_by("reason").len()
    assert dict(got.iter_rows()) == {k: v for k, v in injected.items() if v}
    key = ["source", "contact_id", "segment_no"]
    assert clean.collect().sort(key).equals(clean_in.sort(key))


def _two_plan_split(frame: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The rules as the previous implementation wrote them: clean rows and quarantine as two
    plans that share nothing (group-by of repeated identities, anti and semi joins)."""
    from engine.validate.contacts import _quarantine_rows, conform_contacts

    conformed = conform_contacts(frame)
    failed = conformed.filter(pl.col("__reason").is_not_null())
    passed = conformed.filter(pl.col("__reason").is_null()).select(list(CONTACTS))
    key = ["source", "contact_id", "segment_no"]
    repeated = passed.group_by(key).len().filter(pl.col("len") > 1).select(key)
    single = passed.join(repeated, on=key, how="anti")
    stamp = pl.col("updated_at").fill_null(datetime(1, 1, 1, tzinfo=UTC))
    versions = passed.join(repeated, on=key, how="semi").unique(keep="any")
    latest = versions.filter(stamp == stamp.max().over(key))
    clashes = pl.len().over(key) > 1
    conflicts = latest.filter(clashes).with_columns(
        pl.lit("conflicting_duplicate").alias("__reason"),
        pl.lit("updated_at").alias("__detail"),
        pl.struct(list(CONTACTS)).alias("__raw"),
    )
    clean = pl.concat([single, latest.filter(~clashes).select(list(CONTACTS))])
    return clean, pl.concat([_quarantine_rows(failed), _quarantine_rows(conflicts)])


_STAMPS = [None, "2026-10-01T09:06:00.000Z", "2026-10-01T09:07Z", "2026-10-01T11:07+02:00", "soon"]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "contact_id": st.sampled_from(["c1", "c2", "c3", None]),
                "segment_no": st.sampled_from(["1", "2", "x"]),
                "talk_ms": st.sampled_from(["250000", "1", "-1", "2.5"]),
                "offered_at": st.sampled_from([*_STAMPS, "2026-10-01T09:00Z"]),
                "updated_at": st.sampled_from(_STAMPS),
                "outcome": st.sampled_from(["answered", "answered", "lost"]),
            }
        ),
        min_size=1,
        max_size=30,
    )
)
def test_one_pass_split_equals_the_two_plan_rules(rows: list[dict[str, Any]]) -> None:
    """Duplicates, conflicts and invalid rows mixed: the same rows and quarantine as before."""
    frame = pl.DataFrame([good(**r) for r in rows], schema=dict.fromkeys(good(), pl.String))
    got = pl.collect_all(validate_contacts(frame.lazy()))
    want = pl.collect_all(_two_plan_split(frame.lazy()))
    for g, w in zip(got, want, strict=True):
        assert g.schema == w.schema
        assert g.sort(pl.all(), nulls_last=True).equals(w.sort(pl.all(), nulls_last=True))


@given(
    texts=st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(["2026-10-01T09:01Z", "2026-10-01T09:01+02:00", "2026-10-01 09:01"]),
            st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat()),
            st.datetimes(timezones=st.just(UTC)).map(lambda t: t.strftime("%Y-%m-%dT%H:%M%z")),
            st.text(max_size=25),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_masked_second_timestamp_format_equals_parsing_every_value_twice(
    texts: list[str | None],
) -> None:
    """The short format (no seconds) only sees what the long one refused: same values, flags."""
    from engine.validate.contacts import conform_contacts

    rows = [good(offered_at=t, updated_at=t) for t in texts]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(good(), pl.String))
    got = conform_contacts(frame.lazy()).collect()

    def both(name: str) -> pl.Expr:  # the previous expression: both formats on every value
        return pl.coalesce(
            pl.col(name).str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False)
            for f in ("%+", "%Y-%m-%dT%H:%M%#z")
        )

    want = frame.select(both("offered_at"), both("updated_at"))
    assert got.select("offered_at", "updated_at").equals(want)
    bad = (frame["updated_at"].is_not_null() & want["updated_at"].is_null()) | want[
        "offered_at"
    ].is_null()  # the same text in both columns: one fails if the other does
    expected = frame["offered_at"].is_not_null() & bad
    assert (got["__reason"] == "unparsable_timestamp").fill_null(value=False).equals(expected)


EIGHT_DAYS_MS = 8 * 24 * 3_600_000  # docs/metrics.md: at most 8 days, so no sum overflows


@pytest.mark.parametrize("bound", [2**63 - 1, 2**62, EIGHT_DAYS_MS + 1, 0, -1])
def test_a_duration_bound_above_8_days_is_refused_by_both_validators(bound: int) -> None:
    frame = pl.DataFrame([good()], schema=dict.fromkeys(good(), pl.String)).lazy()
    with pytest.raises(ValueError, match=rf"^max_duration_ms {bound}: from 1 to 691,200,000 ms"):
        validate_contacts(frame, max_duration_ms=bound)
    with pytest.raises(ValueError, match=rf"^max_duration_ms {bound}: from 1 to 691,200,000 ms"):
        validate_callback_attempts(pl.LazyFrame(schema=CALLBACK_ATTEMPTS), max_duration_ms=bound)


def test_at_the_8_day_bound_no_talk_time_sum_overflows() -> None:
    rows = [good(contact_id=f"c{i}", talk_ms=str(t)) for i, t in enumerate([2**62, 2**62, 7])]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String)).lazy()
    clean, bad = validate_contacts(frame, max_duration_ms=EIGHT_DAYS_MS)
    assert bad.collect()["reason"].to_list() == ["implausible_duration"] * 2
    window = (T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1))
    table = callvolume.build(clean, window=window, settings=BuildSettings()).collect()
    assert table["talk_ms"].sum() == 7
