"""The Kore.ai row mapping: the exact inverse of our Contact Volume export, and its quarantine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors.vendors.kore.rows import KORE_CALLVOLUME, kore_rows_to_callvolume, validate_rows
from engine.demo.contacts import generate_contacts
from engine.output.files import callvolume_document
from engine.settings import BuildSettings
from engine.tables.callvolume import SCHEMA, build, derive

START = datetime(2026, 10, 1, tzinfo=UTC)
UNSENT = ("open", "abandoned_within_sl")  # no field of the document carries them
SENT = [c for c in SCHEMA if c not in UNSENT]


def our_table(seed: int, tz: str = "UTC") -> pl.DataFrame:
    contacts = generate_contacts(start=START, days=1, scale=0.03, seed=seed).lazy()
    window = (START, START + timedelta(days=1))
    return build(contacts, window=window, settings=BuildSettings(tz=tz)).collect().cast(SCHEMA)


def document(table: pl.DataFrame, unit: str = "ms") -> list[dict[str, Any]]:
    derived = derive(table.lazy(), settings=BuildSettings()).collect()
    rows = callvolume_document(derived, org_id="o-1", unit=unit)["CallVolumeUpdate"]  # type: ignore[arg-type]
    return json.loads(json.dumps(rows))  # exactly what goes over the wire


def imported(rows: list[dict[str, Any]], **kw: Any) -> pl.DataFrame:
    out = kore_rows_to_callvolume(pl.DataFrame(rows, infer_schema_length=None), **kw).collect()
    return out.sort("queue_id", "channel", "interval_start_utc")


@settings(max_examples=5)
@given(seed=st.integers(0, 10_000))
def test_our_export_reads_back_exactly(seed: int) -> None:
    table = our_table(seed)
    back = imported(document(table))
    assert back.schema == pl.Schema(KORE_CALLVOLUME)
    assert_frame_equal(back.select(SENT), table.select(SENT))
    assert back["source"].unique().to_list() == ["kore"]
    assert back.select(UNSENT).null_count().row(0) == (back.height, back.height)


def test_seconds_read_back_within_half_a_second() -> None:
    table = our_table(1)
    back = imported(document(table, unit="s"), unit="s")
    durations = [c for c in SENT if c.endswith("_ms")]
    counts = [c for c in SENT if not c.endswith("_ms")]
    assert_frame_equal(back.select(counts), table.select(counts))
    worst = (back.select(durations) - table.select(durations)).select(pl.all().abs().max())
    assert max(worst.row(0)) <= 500
    assert all(v % 1000 == 0 for v in back["talk_ms"])


def test_another_time_zone_keeps_the_utc_key() -> None:
    table = our_table(2, tz="Asia/Kolkata")
    back = imported(document(table)).sort("queue_id", "channel", "interval_start_utc")
    keyed = [c for c in SENT if c not in ("interval_start_local", "utc_offset_min")]
    assert_frame_equal(back.select(keyed), table.select(keyed))
    assert (back["utc_offset_min"] == 0).all()


def vendor(**kw: Any) -> dict[str, Any]:
    row = {
        "_id": "647868bfc0cf4c7b7671aaaa",
        "intervalStartTimeStamp": "2023-06-01T09:45:00.000Z",
        "orgId": "o-1",
        "queueId": "qu-1",
        "source": "voice",
        "__v": 0,
        "intervalEndTimeStamp": "2023-06-01T10:00:00.000Z",
        "offeredContacts": 1,
        "answeredContacts": 1,
        "maxQueueHoldTimeAnswered": 34035,
        "queueHoldTimeAnswered": 34035,
        "acwDuration": 3949,
        "completedContacts": 1,
        "conversationHandleTime": 68043,
        "conversationTalkTime": 64094,
        "holdDuration": 0,
        "messageCount": 0,
        "savedMessageCount": 0,
        "csatResponses": 1,
        "csatScore": 1,
        "abandonedContacts": 1,
        "maxqueueHoldTimeAbandoned": 180150,
        "queueHoldTimeAbandoned": 180150,
        "iId": "st-b6ff0557",
        "queueName": "custom day",
    }
    return row | kw


def landed(rows: list[dict[str, Any]], **at: Any) -> pl.LazyFrame:
    n = len(rows)
    fetched = at.get("fetched", [START] * n)
    return pl.LazyFrame(rows).with_columns(
        pl.Series("record_id", [str(i) for i in range(n)]),
        pl.Series("raw", [json.dumps(r) for r in rows]),
        pl.Series("fetched_at", fetched, dtype=pl.Datetime("us", "UTC")),
        pl.Series("batch_id", at.get("batch", ["b"] * n)),
        pl.Series("page_no", at.get("page", [1] * n), dtype=pl.Int32),
    )


def test_the_seed_sample_row_maps_field_by_field() -> None:
    row = imported([vendor()]).row(0, named=True)
    assert row["interval_start_utc"] == datetime(2023, 6, 1, 9, 45, tzinfo=UTC)
    assert row["interval_end_utc"] == datetime(2023, 6, 1, 10, 0, tzinfo=UTC)
    assert (row["queue_id"], row["queue_name"], row["channel"]) == ("qu-1", "custom day", "voice")
    assert (row["wait_answered_max_ms"], row["wait_abandoned_ms"]) == (34035, 180150)
    assert (row["handle_ms"], row["talk_ms"], row["acw_ms"]) == (68043, 64094, 3949)
    assert (row["short_abandoned"], row["flow_out"], row["answered_within_sl"]) == (None,) * 3


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"queueId": None}, "missing_id"),
        ({"source": None}, "missing_id"),
        ({"intervalStartTimeStamp": None}, "missing_timestamp"),
        ({"intervalEndTimeStamp": "soon"}, "unparsable_timestamp"),
        ({"intervalEndTimeStamp": "2023-06-01T10:15:00.000Z"}, "bad_interval"),
        ({"intervalEndTimeStamp": "2023-06-01T09:30:00Z"}, "bad_interval"),
        ({"source": "rtm"}, "unknown_channel"),
        ({"holdDuration": 1.5}, "wrong_type"),
        ({"offeredContacts": -1}, "negative_value"),
        ({"acwDuration": -3}, "negative_value"),
    ],
)
def test_bad_rows_are_quarantined_with_their_reason(change: dict[str, Any], reason: str) -> None:
    rows, bad = validate_rows(
        landed([vendor(), vendor(_id="x2", **({"queueId": "qu-2"} | change))])
    )
    assert rows.collect()["queue_id"].to_list() == ["qu-1"]
    out = bad.collect()
    assert out.select("reason", "record_id", "table").rows() == [(reason, "1", "callvolume_kore")]
    assert json.loads(out["raw"][0])["_id"] == "x2"


def test_channel_map_and_seconds() -> None:
    rows, bad = validate_rows(
        landed([vendor(source="rtm", holdDuration=1.5)]), unit="s", channel_map={"rtm": "voice"}
    )
    assert bad.collect().height == 0
    assert rows.collect().select("channel", "hold_ms").row(0) == ("voice", 1500)


def test_one_row_per_interval_queue_channel_latest_landed_wins() -> None:
    old, new = vendor(_id="a", offeredContacts=1), vendor(_id="b", offeredContacts=2)
    later = [START, START + timedelta(minutes=5)]
    rows, bad = validate_rows(landed([new, old], fetched=later[::-1]))
    assert rows.collect()["offered"].to_list() == [2]
    assert bad.collect().height == 0
    same_page = validate_rows(landed([new, old]))
    assert same_page[0].collect().height == 0
    assert same_page[1].collect()["reason"].to_list() == ["conflicting_duplicate"] * 2
    twins = validate_rows(landed([new, vendor(_id="c", offeredContacts=2)]))
    assert twins[0].collect()["offered"].to_list() == [2]  # identical content: no conflict
