"""Callback tables and document: a hand-computed example, zero-fill, exact roll-ups, steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from engine import snap_window
from engine.demo.callbacks import generate_attempts
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, retry_outcomes
from engine.tables.callback_requests import requests

T9 = datetime(2026, 10, 1, 9, tzinfo=UTC)


def attempt(aid: str, oid: str, k: int, minute: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CALLBACK_ATTEMPTS)
    row |= {"source": "mindful", "attempt_id": aid, "original_id": oid, "retry_attempt": k}
    row |= {"created_at": T9 + timedelta(minutes=minute), "call_target_id": "ct-1"}
    row |= {"type": "asap", "first_party_called": "agent", "source_type": "voice"}
    return row | kw


ROWS = [
    attempt("a", "a", 0, 0, outcome="unavailable", callback_ms=10_000, estimated_callback_ms=9_000,
            punctuality_ms=1_000, customer_key="k1", customer_wait_ms=99_000),
    attempt("b", "a", 1, 5, outcome="successful", callback_ms=20_000, estimated_callback_ms=600_000,
            punctuality_ms=-5_000, customer_wait_ms=45_000, talk_ms=300_000, customer_key="zz"),
    attempt("c", "c", 0, 10, outcome="successful", callback_ms=30_000, estimated_callback_ms=29_000,
            punctuality_ms=1_000, customer_wait_ms=20_000, talk_ms=100_000, customer_key="k1",
            call_target_id="ct-2", type="scheduled", first_party_called="customer",
            source_type="digital"),
    attempt("d", "d", 0, 60, outcome="failure", callback_ms=1, customer_key="k2"),
]  # fmt: skip


def frame(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    return pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).lazy()


def test_hand_computed_document() -> None:
    data = callback_metrics.document(requests(frame(ROWS)), begin=T9, end=T9 + timedelta(hours=1))[
        "data"
    ]
    assert data["totalCallbacks"] == 2
    assert data["outcomes"] == {
        "totalAbandoned": 0, "totalCallbackASAP": 1, "totalCallbackScheduled": 1,
        "totalCanceled": 0, "totalFailure": 0, "totalSuccessful": 2, "totalUnavailable": 0,
    }  # fmt: skip
    perf = data["performance"]
    assert (perf["averageCallbackTime"], perf["maxCallbackTime"]) == (25.0, 30.0)  # finals
    assert (perf["averageEstimatedCallbackTime"], perf["maxEstimatedCallbackTime"]) == (19.0, 29.0)
    assert perf["averagePunctuality"] == 1.0  # first attempts only
    assert (perf["averageCustomerWaitTime"], perf["maxCustomerWaitTime"]) == (32.5, 45.0)
    assert (perf["averageTalkTime"], perf["maxTalkTime"]) == (200.0, 300.0)
    assert perf["rcsl"] == {"totalAbove60": 0, "totalBelow30": 1, "totalBetween31_60": 1}
    retries = perf["retries"]
    assert retries["'1'"]["totalSuccessful"] == 1
    assert sum(sum(retries[b].values()) for b in ("'2'", "'3'", "'4'", "'5'", "over5")) == 0
    assert (retries["totalCallbacksWithRetries"], retries["totalRetryAttempts"]) == (1, 1)
    assert (perf["totalUniqueCustomers"], perf["totalRepeatCustomers"]) == (1, 1)  # first's key


def test_filters_on_the_hand_example() -> None:
    def total(**flt: str) -> int:
        doc = callback_metrics.document(
            requests(frame(ROWS)), begin=T9, end=T9 + timedelta(hours=2), **flt
        )
        return int(doc["data"]["totalCallbacks"])

    assert total() == 3
    assert total(call_target_id="ct-2") == 1
    assert total(call_target_id="ct-1, ct-2") == 3
    assert total(first_party_called="agent_first", source_type="Phone", type="ASAP") == 2
    with pytest.raises(ValueError, match="sourceType"):
        total(source_type="fax")


def test_tables_of_the_hand_example() -> None:
    w = (T9, T9 + timedelta(hours=1))
    table = callback_intervals.build(
        requests(frame(ROWS)), window=w, settings=BuildSettings()
    ).collect()
    assert table.height == 2 * 4  # two combinations seen, four quarter-hours each
    busy = table.filter(pl.col("requests") > 0).sort("call_target_id")
    assert busy.select("interval_start_utc", "call_target_id", "attempts", "retries").rows() == [
        (T9, "ct-1", 2, 1),
        (T9, "ct-2", 1, 0),
    ]
    assert busy["call_target_name"].to_list() == ["ct-1", "ct-2"]  # no name: the id
    empty = table.filter(pl.col("requests") == 0)
    assert (empty.select(callback_intervals.ADDITIVE).sum_horizontal() == 0).all()
    retries = retry_outcomes.build(
        requests(frame(ROWS)), window=w, settings=BuildSettings()
    ).collect()
    assert retries.height == 2 * 6 * 4  # every bucket for every call target seen
    assert retries.filter(pl.col("requests") > 0).select(
        "call_target_id", "retry_bucket", "successful"
    ).rows() == [("ct-1", "1", 1)]


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kathmandu"])
def test_rollup_equals_a_direct_build(tz: str) -> None:
    start = datetime(2026, 10, 31, tzinfo=UTC)
    reqs = requests(generate_attempts(seed=8, start=start, days=3, scale=0.3).lazy())
    for module in (callback_intervals, retry_outcomes):
        for minutes in (30, 60):  # over whole coarse intervals (Kathmandu: +05:45)
            w = snap_window(start, start + timedelta(days=3), minutes=minutes, tz=tz)
            fine = module.build(reqs, window=w, settings=BuildSettings(tz=tz))
            direct = module.build(
                reqs,
                window=w,
                settings=BuildSettings(interval_minutes=minutes, tz=tz),  # type: ignore[arg-type]
            )
            rolled = module.rollup(fine, window=w, minutes=minutes, tz=tz)
            assert rolled.collect().equals(direct.collect())


def test_step_documents_add_up_to_the_window_document() -> None:
    attempts = generate_attempts(seed=9, days=2, scale=0.3).lazy()
    begin, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    whole = callback_metrics.document(requests(attempts), begin=begin, end=end)["data"]
    reqs = requests(attempts)
    parts = callback_metrics.document_intervals(reqs, begin=begin, end=end, step="1h")
    assert len(parts) == 24
    assert not any(p["partialInterval"] for p in parts)
    assert parts[0]["intervalBegin"] == "2026-10-01T00:00:00Z"
    assert parts[-1]["intervalEnd"] == "2026-10-02T00:00:00Z"
    for path in (
        ("totalCallbacks",),
        ("outcomes", "totalSuccessful"),
        ("outcomes", "totalCallbackScheduled"),
        ("performance", "rcsl", "totalBelow30"),
        ("performance", "retries", "'2'", "totalUnavailable"),
        ("performance", "retries", "totalRetryAttempts"),
    ):

        def leaf(d: dict[str, Any], path: tuple[str, ...] = path) -> Any:
            for key in path:
                d = d[key]
            return d

        assert sum(leaf(p["data"]) for p in parts) == leaf(whole), path
    unique = sum(p["data"]["performance"]["totalUniqueCustomers"] for p in parts)
    assert unique >= whole["performance"]["totalUniqueCustomers"]  # exact per part, not additive


def test_parse_time_forms() -> None:
    assert callback_metrics.parse_time("2026-10-01") == datetime(2026, 10, 1, tzinfo=UTC)
    assert callback_metrics.parse_time("2026-10-01T09:00:00Z") == T9
    bad_ones = ("2026-10-01T09:00:00", "2026-10-01 09:00:00Z", "01/10/2026", "", "2026-1-5",
                "\uff12\uff10\uff12\uff16-10-01", "2026-10-01T9:00:00Z", "2026-02-30")  # fmt: skip
    for bad in bad_ones:
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            callback_metrics.parse_time(bad)
