"""Callback attempt validation: every quarantine reason, vendor spellings, non-callbacks, gaps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.demo.callbacks import generate_attempts
from engine.errors import InputSchemaError
from engine.schema import CALLBACK_ATTEMPTS, CALLBACK_OUTCOMES, QUARANTINE
from engine.validate.callback_attempts import (
    REASONS,
    callback_gaps,
    not_callbacks,
    validate_callback_attempts,
)
from engine.validate.spelling import (
    FIRST_PARTY_SPELLINGS,
    OUTCOME_SPELLINGS,
    SPELLINGS,
    normalised,
    per_distinct,
)

T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)


def good(**changes: Any) -> dict[str, Any]:
    """One valid attempt as text, the way a CSV delivers it."""
    row: dict[str, Any] = {
        "source": "mindful", "attempt_id": "a1", "original_id": "a1", "retry_attempt": "0",
        "has_retry": "false", "call_target_id": "5298", "call_target_name": "Calls test",
        "type": "asap", "first_party_called": "customer", "source_type": "digital",
        "created_at": "2026-10-01T09:00:00.000Z", "processed_at": "2026-10-01T09:00:10.000Z",
        "estimated_for": "2026-10-01T09:00:09.000Z", "ended_at": "2026-10-01T09:01:18.000Z",
        "outcome": "unavailable", "callback_ms": "10000", "estimated_callback_ms": "9000",
        "customer_wait_ms": None, "talk_ms": None, "punctuality_ms": "1000",
        "was_punctual": "true", "customer_key": "ab" * 32,
    }  # fmt: skip
    row.update(changes)
    return row


def run(*rows: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    frame = pl.DataFrame(list(rows), schema=dict.fromkeys(rows[0], pl.String))
    clean, bad = validate_callback_attempts(frame.lazy())
    return clean.collect(), bad.collect()


CASES = [
    ("missing_id", {"attempt_id": None}),
    ("missing_id", {"original_id": None}),
    ("missing_id", {"source": None}),
    ("missing_timestamp", {"created_at": None}),
    ("unparsable_timestamp", {"created_at": "2026-13-45T99:00"}),
    ("unparsable_timestamp", {"ended_at": "yesterday"}),
    ("unparsable_timestamp", {"processed_at": "2026-10-01 09:00:10"}),  # no offset
    ("wrong_type", {"retry_attempt": "1.5"}),
    ("wrong_type", {"retry_attempt": "two"}),
    ("wrong_type", {"retry_attempt": None}),
    ("wrong_type", {"talk_ms": "12s"}),
    ("wrong_type", {"was_punctual": "maybe"}),
    ("negative_retry_attempt", {"retry_attempt": "-1"}),
    ("negative_duration", {"callback_ms": "-1"}),
    ("negative_duration", {"estimated_callback_ms": "-9000"}),
    ("negative_duration", {"customer_wait_ms": "-5"}),
    ("negative_duration", {"talk_ms": "-1000"}),
    ("implausible_duration", {"talk_ms": str(2**62)}),
    ("implausible_duration", {"punctuality_ms": "-604800001"}),
    ("end_before_start", {"ended_at": "2026-10-01T08:59:59.999Z"}),
    ("unknown_type", {"type": "callback-ish"}),
    ("unknown_type", {"type": None}),
    ("unknown_outcome", {"outcome": "exploded"}),
    ("unknown_outcome", {"outcome": None}),
    ("unknown_first_party", {"first_party_called": "robot"}),
    ("unknown_source_type", {"source_type": "carrier pigeon"}),
]


@pytest.mark.parametrize(("reason", "change"), CASES)
def test_each_reason_is_quarantined_with_its_raw_payload(reason: str, change: dict[str, Any]):
    clean, bad = run(
        good(attempt_id="ok", original_id="ok"), good(**{"attempt_id": "bad", **change})
    )
    assert clean["attempt_id"].to_list() == ["ok"]
    assert bad.schema == pl.Schema(QUARANTINE)
    assert bad["reason"].to_list() == [reason]
    assert bad["table"].to_list() == ["callback_attempts"]
    column = next(iter(change))
    assert bad["detail"].to_list() == [column]
    raw = json.loads(bad["raw"][0])
    assert raw[column] == change[column]  # the payload as received, not as parsed


def test_every_reason_has_a_case() -> None:
    assert {r for r, _ in CASES} | {"conflicting_duplicate"} == set(REASONS)


def test_punctuality_is_signed() -> None:
    clean, bad = run(good(punctuality_ms="-42000"))
    assert bad.height == 0
    assert clean["punctuality_ms"].to_list() == [-42_000]


def test_the_first_failing_rule_is_reported() -> None:
    _, bad = run(good(attempt_id=None, created_at=None, outcome="exploded"))
    assert bad["reason"].to_list() == ["missing_id"]
    assert bad["record_id"].to_list() == ["?"]


def test_conflicting_duplicate_quarantines_both_versions() -> None:
    clean, bad = run(good(), good(talk_ms="1000"), good(attempt_id="a2"))
    assert clean["attempt_id"].to_list() == ["a2"]
    assert bad["reason"].to_list() == ["conflicting_duplicate"] * 2
    assert bad["record_id"].to_list() == ["a1", "a1"]
    assert sorted(json.loads(r)["talk_ms"] or "" for r in bad["raw"]) == ["", "1000"]


def test_same_id_in_another_source_is_not_a_duplicate() -> None:
    clean, bad = run(good(), good(source="other", talk_ms="1000"))
    assert bad.height == 0
    assert clean.height == 2


def test_exact_duplicates_and_respellings_of_one_attempt_collapse() -> None:
    respelt = good(outcome="Unavailable", type="ASAP", first_party_called="Customer First")
    clean, bad = run(good(), good(), respelt, good(source_type="CBWidget:dc4e66dd"))
    assert bad.height == 0
    assert clean.height == 1


@pytest.mark.parametrize(
    ("column", "spelling", "canonical"),
    [
        ("outcome", "Success", "successful"),
        ("outcome", "successful", "successful"),
        ("outcome", "Unavailable", "unavailable"),
        ("outcome", "Failure", "failure"),
        ("outcome", "Failed", "failure"),
        ("outcome", "Canceled", "canceled"),
        ("outcome", "Cancelled", "canceled"),
        ("outcome", "Abandoned", "abandoned"),
        ("outcome", "Not Completed", "other"),
        ("outcome", "not_completed", "other"),
        ("outcome", "Chose Hold", "other"),
        ("outcome", "Chose Messaging", "other"),
        ("outcome", "Text Scheduling", "other"),
        ("outcome", "Unknown", "other"),
        ("first_party_called", "customer_first", "customer"),
        ("first_party_called", "customer", "customer"),
        ("first_party_called", "Customer First", "customer"),
        ("first_party_called", "CUSTOMER-FIRST", "customer"),
        ("first_party_called", "agent", "agent"),
        ("first_party_called", "agent_first", "agent"),
        ("first_party_called", "Agent First", "agent"),
        ("type", " ASAP ", "asap"),
        ("type", "Scheduled", "scheduled"),
        ("source_type", "Phone", "voice"),
        ("source_type", "Phone:8525550917", "voice"),
        ("source_type", "CBWidget:dc4e66dd30d813202f6ccd7c20542525", "digital"),
        ("source_type", "widget", "digital"),
        ("source_type", "Digital", "digital"),
    ],
)
def test_vendor_spellings_are_normalised(column: str, spelling: str, canonical: str) -> None:
    clean, bad = run(good(**{column: spelling}))
    assert bad.height == 0
    assert clean[column].cast(pl.String).to_list() == [canonical]
    assert pl.select(normalised(column, spelling)).item() == canonical


_SPELLING_TEXT = st.one_of(
    st.none(),
    st.sampled_from([k for table in SPELLINGS.values() for k in table]),
    st.text(alphabet=" _-:aAbcdeEfhilnoprsStuwy0", max_size=12),
)


@given(
    column=st.sampled_from(sorted(SPELLINGS)),
    values=st.lists(_SPELLING_TEXT, max_size=30),
    as_enum=st.booleans(),
)
def test_folding_distinct_values_gives_each_row_what_folding_it_would(
    column: str, values: list[str | None], as_enum: bool
) -> None:
    # per_distinct folds each distinct value once and maps it back: row for row the same as
    # normalising every row (the plain rule), whatever the order, repeats, nulls or dtype.
    rows = pl.DataFrame({column: values}, schema={column: pl.String})
    if as_enum:
        rows = rows.with_columns(
            pl.col(column).cast(pl.Enum(sorted({v for v in values if v is not None})))
        )
    expected = [None if v is None else pl.select(normalised(column, v)).item() for v in values]
    folded = rows.select(per_distinct(column, lambda d: normalised(column, d), pl.String()))
    assert folded[column].to_list() == expected


def test_spelling_tables_only_name_canonical_values() -> None:
    assert set(OUTCOME_SPELLINGS.values()) == set(CALLBACK_OUTCOMES.categories)
    assert set(FIRST_PARTY_SPELLINGS.values()) == {"agent", "customer"}


def test_optional_attributes_may_be_null() -> None:
    row = good(first_party_called=None, source_type=None, call_target_id=None, customer_key=None)
    clean, bad = run(row)
    assert bad.height == 0
    assert clean.select("first_party_called", "source_type", "customer_key").row(0) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("kind", ["unknown", "Unknown", "hold", "Chose Hold"])
def test_non_callbacks_are_set_aside_not_quarantined(kind: str) -> None:
    hold = good(attempt_id="h1", original_id="h1", type=kind, outcome="Chose Hold")
    broken_hold = good(attempt_id="h2", type=kind, created_at=None, retry_attempt="x")
    frame = pl.DataFrame([good(), hold, broken_hold], schema=dict.fromkeys(good(), pl.String))
    clean, bad = run(good(), hold, broken_hold)
    assert clean["attempt_id"].to_list() == ["a1"]
    assert bad.height == 0
    skipped = not_callbacks(frame.lazy()).collect()
    assert sorted(skipped["attempt_id"].to_list()) == ["h1", "h2"]


def test_typed_input_passes_through_unchanged() -> None:
    attempts = generate_attempts(seed=4, days=1, scale=0.2)
    clean, bad = validate_callback_attempts(attempts.lazy())
    assert bad.collect().height == 0
    got = clean.collect()
    assert got.schema == pl.Schema(CALLBACK_ATTEMPTS)
    assert got.sort("attempt_id").equals(attempts.sort("attempt_id"))
    assert not_callbacks(attempts.lazy()).collect().height == 0


def test_optional_columns_may_be_absent() -> None:
    minimal = {k: good()[k] for k in ("source", "attempt_id", "original_id", "retry_attempt")}
    minimal |= {"type": "asap", "outcome": "Success", "created_at": "2026-10-01T09:00:00Z"}
    clean, bad = run(minimal)
    assert bad.height == 0
    assert clean.schema == pl.Schema(CALLBACK_ATTEMPTS)
    assert clean.row(0, named=True)["created_at"] == T0


def test_missing_required_column_is_a_clear_error() -> None:
    frame = pl.DataFrame([good()]).drop("original_id")
    with pytest.raises(InputSchemaError, match="original_id"):
        validate_callback_attempts(frame.lazy())


def test_naive_datetime_columns_are_refused() -> None:
    frame = pl.DataFrame([good()]).with_columns(
        pl.col("created_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ")
    )
    with pytest.raises(InputSchemaError, match="naive"):
        validate_callback_attempts(frame.lazy())


def _chains(*chains: tuple[str, str, list[int]]) -> pl.LazyFrame:
    rows = [
        {"source": source, "original_id": oid, "retry_attempt": k}
        for source, oid, retries in chains
        for k in retries
    ]
    return pl.DataFrame(rows, schema_overrides={"retry_attempt": pl.Int32}).lazy()


def test_gaps_list_the_missing_retry_numbers_per_chain() -> None:
    frame = _chains(
        ("m", "whole", [0, 1, 2]),
        ("m", "middle", [0, 2, 3, 5]),
        ("m", "no_first", [1, 2]),
        ("n", "middle", [0, 1, 2]),
        ("m", "twice", [0, 1, 1]),
    )
    gaps = callback_gaps(frame).collect()
    assert gaps.to_dicts() == [
        {"source": "m", "original_id": "middle", "missing": [1, 4]},
        {"source": "m", "original_id": "no_first", "missing": [0]},
    ]


@pytest.mark.parametrize("highest", [2_147_483_647, 50_000_000])
def test_a_chain_far_from_whole_lists_its_first_missing_numbers_only(highest: int) -> None:
    """Retry 0 and retry 2147483647 (32 bits, accepted): the range's end wrapped round and the
    chain was not reported at all; retry 50,000,000 built a list of 50 million numbers (one
    record exhausted the memory). The first 1,000 are listed."""
    gaps = callback_gaps(_chains(("m", "far", [0, 3, highest]))).collect()
    assert gaps["original_id"].to_list() == ["far"]
    assert gaps["missing"].to_list() == [[1, 2, *range(4, 1002)]]


@given(
    chains=st.dictionaries(
        st.tuples(st.sampled_from(["m", "n"]), st.sampled_from(["a", "b", "c", "d", "e"])),
        st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=6),
        max_size=8,
    )
)
def test_gaps_are_the_numbers_below_each_chains_highest_that_it_lacks(
    chains: dict[tuple[str, str], list[int]],
) -> None:
    # The plain rule: a chain's missing numbers are those of 0..max that none of its rows has.
    expected = [
        {"source": s, "original_id": o, "missing": sorted(set(range(max(r) + 1)) - set(r))}
        for (s, o), r in sorted(chains.items())
        if set(range(max(r) + 1)) - set(r)
    ]
    frame = _chains(*((s, o, r) for (s, o), r in chains.items())) if chains else None
    got = [] if frame is None else callback_gaps(frame).collect().to_dicts()
    assert got == expected
