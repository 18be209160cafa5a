"""Callback tables and document against the independent oracle (docs/callbacks.md)."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from engine.interval import snap_window
from engine.output.inputs import read_table
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, retry_outcomes
from engine.tables.callback_requests import requests
from tests import oracle_callbacks
from tests.strategies import INTERESTING_DAYS

TARGETS = ("ct-1", "ct-2", "ct-3")
OUTCOMES = ("successful", "unavailable", "failure", "canceled", "abandoned", "other")
SEED_000_KEYS = {
    "data", "outcomes", "performance", "totalCallbacks", "totalAbandoned", "totalCallbackASAP",
    "totalCallbackScheduled", "totalCanceled", "totalFailure", "totalSuccessful",
    "totalUnavailable", "averageCallbackTime", "averageCustomerWaitTime",
    "averageEstimatedCallbackTime", "averagePunctuality", "averageTalkTime", "maxCallbackTime",
    "maxCustomerWaitTime", "maxEstimatedCallbackTime", "maxTalkTime", "rcsl", "totalAbove60",
    "totalBelow30", "totalBetween31_60", "retries", "'1'", "'2'", "'3'", "'4'", "'5'", "over5",
    "totalCallbacksWithRetries", "totalRetryAttempts", "totalRepeatCustomers",
    "totalUniqueCustomers",
}  # fmt: skip

durations = st.one_of(st.none(), st.sampled_from([0, 30_000, 30_001, 60_000, 60_001]),
                      st.integers(0, 3_600_000))  # fmt: skip


@st.composite
def chains(draw: st.DrawFn, start: datetime, span_ms: int, max_chains: int = 12) -> list[dict]:
    """Attempts of random callback chains (with gaps, repeat customers, every outcome)."""
    rows: list[dict[str, Any]] = []
    for c in range(draw(st.integers(0, max_chains))):
        created = start + timedelta(milliseconds=draw(st.integers(-3_600_000, span_ms + 3_600_000)))
        retries = sorted(set(draw(st.lists(st.integers(0, 8), min_size=1, max_size=4))))
        original = f"cb{c}"
        attrs = {
            "call_target_id": draw(st.sampled_from(TARGETS)),
            "type": draw(st.sampled_from(["asap", "scheduled"])),
            "first_party_called": draw(st.sampled_from(["agent", "customer"])),
            "source_type": draw(st.sampled_from(["voice", "digital"])),
            "customer_key": draw(st.sampled_from([None, "k1", "k2", "k3", "k4"])),
        }
        for i, n in enumerate(retries):
            at = created + timedelta(minutes=20 * i)
            rows.append({
                "source": "mindful",
                "attempt_id": original if i == 0 else f"{original}-r{n}",
                "original_id": original,
                "retry_attempt": n,
                "has_retry": i < len(retries) - 1,
                **attrs,
                "call_target_name": f"Target {attrs['call_target_id']}",
                "created_at": at,
                "processed_at": at + timedelta(seconds=5),
                "estimated_for": at + timedelta(minutes=5),
                "ended_at": at + timedelta(minutes=9),
                "outcome": draw(st.sampled_from(OUTCOMES)),
                "callback_ms": draw(durations),
                "estimated_callback_ms": draw(durations),
                "customer_wait_ms": draw(durations),
                "talk_ms": draw(durations),
                "punctuality_ms": draw(st.one_of(st.none(), st.integers(-600_000, 600_000))),
                "was_punctual": draw(st.booleans()),
            })  # fmt: skip
    return rows


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict], datetime, datetime, str]:
    tz, (y, m, d) = draw(st.sampled_from(INTERESTING_DAYS))
    start = datetime(y, m, d, tzinfo=UTC)
    span = draw(st.integers(1, 2 * 86_400_000))
    end = start + timedelta(milliseconds=span)
    return draw(chains(start, span)), start, end, tz


def frame(rows: list[dict]) -> pl.LazyFrame:
    return pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).lazy()


filters = st.fixed_dictionaries(
    {},
    optional={
        "call_target_id": st.sampled_from(["ct-1", "ct-2", "ct-1,ct-3", "ct-9"]),
        "first_party_called": st.sampled_from(["agent", "customer"]),
        "source_type": st.sampled_from(["voice", "digital"]),
        "type": st.sampled_from(["asap", "scheduled"]),
    },
)


def keys_of(doc: Any) -> set[str]:
    if not isinstance(doc, dict):
        return set()
    return set(doc) | {k for v in doc.values() for k in keys_of(v)}


@given(cases(), filters)
def test_document_equals_oracle_exactly(case, flt) -> None:
    rows, start, end, _ = case
    got = callback_metrics.document(requests(frame(rows)), begin=start, end=end, **flt)
    assert got == oracle_callbacks.document(rows, start, end, **flt)
    assert keys_of(got) == SEED_000_KEYS


@given(cases())
def test_requests_are_conserved(case) -> None:
    rows, start, end, _ = case
    data = callback_metrics.document(requests(frame(rows)), begin=start, end=end)["data"]
    reqs = oracle_callbacks._selected(oracle_callbacks.requests(rows), start, end, {})
    other = sum(1 for r in reqs if r["outcome"] == "other")
    o = data["outcomes"]
    five = (
        "totalSuccessful",
        "totalUnavailable",
        "totalFailure",
        "totalCanceled",
        "totalAbandoned",
    )
    assert data["totalCallbacks"] == sum(o[k] for k in five) + other
    assert data["totalCallbacks"] == o["totalCallbackASAP"] + o["totalCallbackScheduled"]


def test_empty_window_gives_zeros_not_nulls() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    doc = callback_metrics.document(requests(frame([])), begin=start, end=start + timedelta(days=1))
    assert doc == oracle_callbacks.document([], start, start + timedelta(days=1))

    def leaves(d: Any) -> list[Any]:
        return [x for v in d.values() for x in leaves(v)] if isinstance(d, dict) else [d]

    assert set(leaves(doc)) == {0}


@given(cases(), st.sampled_from([15, 30, 60]))
def test_interval_tables_equal_oracle_and_sum_to_the_document(case, minutes: int) -> None:
    rows, start, end, tz = case
    start, end = snap_window(start, end, minutes=minutes, tz=tz)
    settings = BuildSettings(interval_minutes=minutes, tz=tz)  # type: ignore[arg-type]
    ci = callback_intervals.build(
        requests(frame(rows)), window=(start, end), settings=settings
    ).collect()
    ro = retry_outcomes.build(
        requests(frame(rows)), window=(start, end), settings=settings
    ).collect()
    keys = ["call_target_id", "type", "first_party_called", "source_type"]
    additive = [c for c in ci.columns if ci[c].dtype.is_integer() and c != "utc_offset_min"]
    nonzero = ci.filter(pl.col("requests") > 0)
    got = {
        (r["interval_start_utc"], *(r[k] for k in keys)): {c: r[c] for c in additive if r[c]}
        for r in nonzero.iter_rows(named=True)
    }
    want = oracle_callbacks.callback_intervals(rows, start, end, minutes, tz)
    assert got == {k: {c: n for c, n in v.items() if n} for k, v in want.items()}
    ro_got = {
        (r["interval_start_utc"], r["call_target_id"], r["retry_bucket"]): {
            c: r[c]
            for c in ro.columns
            if ro[c].dtype.is_integer() and c != "utc_offset_min" and r[c]
        }
        for r in ro.filter(pl.col("requests") > 0).iter_rows(named=True)
    }
    ro_want = oracle_callbacks.retry_outcomes(rows, start, end, minutes, tz)
    assert ro_got == {k: {c: n for c, n in v.items() if n} for k, v in ro_want.items()}
    # Summed over the window, the interval table gives the document's additive fields.
    doc = callback_metrics.document(requests(frame(rows)), begin=start, end=end)["data"]
    total = ci.select(pl.col(additive).sum()).row(0, named=True) if ci.height else {}
    assert total.get("requests", 0) == doc["totalCallbacks"]
    assert total.get("successful", 0) == doc["outcomes"]["totalSuccessful"]
    assert total.get("retries", 0) == doc["performance"]["retries"]["totalRetryAttempts"]
    rcsl = doc["performance"]["rcsl"]
    assert total.get("rcsl_below30", 0) == rcsl["totalBelow30"]
    assert total.get("rcsl_above60", 0) == rcsl["totalAbove60"]


@given(cases(), st.randoms(use_true_random=False))
def test_splitting_attempts_into_two_files_changes_nothing(case, rnd: random.Random) -> None:
    rows, start, end, _ = case
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    cut = rnd.randint(0, len(shuffled))
    with tempfile.TemporaryDirectory() as tmp:
        for i, part in enumerate((shuffled[:cut], shuffled[cut:])):
            pl.DataFrame(part, schema=CALLBACK_ATTEMPTS).write_parquet(Path(tmp) / f"{i}.parquet")
        both = read_table(Path(tmp))  # a directory of Parquet files, as the CLI reads it
        got = callback_metrics.document(requests(both), begin=start, end=end)
    assert got == callback_metrics.document(requests(frame(rows)), begin=start, end=end)
