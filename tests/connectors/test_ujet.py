"""The UJET mapping on hand-made records: segments, transfers, outcomes, chats, PII, quarantine.

Records are written as the seed shows them, landed through the real landing store (prepare,
PII scrub, Parquet), normalised, and validated at the pipeline edge
(:func:`engine.pipeline.sources.validated`, the one place the canonical rules apply); a property
checks the mapping against the emulator's canonical truth for random input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal
from pydantic import SecretStr

from connectors.emulator import UjetEmulator
from connectors.landing import PiiScrubber, RecordKey, land_page, pii_hash, scan_landed
from connectors.normalise import normalise_stream
from connectors.source import shape_error
from connectors.vendors.ujet.client import (
    PII_DROP,
    PII_HASH,
    RECORD_DTYPE,
    UJET,
    prepare,
)
from engine.pipeline.sources import validated
from engine.schema import CONTACTS, QUARANTINE
from tests.connectors.test_emulator_ujet import loose_contacts

SECRET = SecretStr("test-hmac-key")
SCRUB = PiiScrubber(drop=PII_DROP, hash_paths=PII_HASH, secret=SECRET)
T = "2026-10-01T09:{:02d}:{:02d}.000Z"


def at(minute: int, second: int = 0) -> str:
    return T.format(minute, second)


def queue(menu: int, event: str | None, start: int, end: int | None, wait: int, **kw: Any) -> dict:
    return {
        "agent_id": 1001,
        "queue_duration": wait,
        "menu_path_id": menu,
        "lang": "en",
        "transfer": False,
        "started_at": at(start),
        "ended_at": None if end is None else at(end),
        "service_level_abandon_time_threshold": 10,
        "service_level_event": "in_sla",
        "service_level_target_percent": 80,
        "service_level_target_time": 20,
        "event": event,
    } | kw


def handle(talk: int, acw: int, start: int, end: int, unit: str = "call") -> dict:
    return {
        "agent_id": 1001,
        "acw_duration": acw,
        f"{unit}_duration": talk,
        "menu_path_id": 0,
        "wait_duration": 0,
        "started_at": at(start),
        "ended_at": at(end),
        "event": f"{unit}_finished",
    }


def agent(hold: int) -> dict:
    return {
        "id": 9,
        "type": "agent",
        "status": "finished",
        "user_id": 1001,
        "end_user_id": None,
        "call_duration": 60,
        "hold_duration": hold,
    }


def menu(menu_id: int, name: str) -> dict:
    return {"items_count": 2, "name": name, "materialized_path": f"10/{menu_id}"}


def call(rid: int, queues: list[dict], **kw: Any) -> dict:
    """A call record shaped like seed 002 (PII included, as the vendor sends it)."""
    first = queues[0]["menu_path_id"] if queues else 3001
    last = queues[-1]["menu_path_id"] if queues else 3001
    return {
        "id": rid,
        "call_type": "Voice Inbound (IVR)",
        "status": "finished",
        "fail_reason": "nothing",
        "updated_at": at(59),
        "rating": None,
        "recording_url": f"https://media.ujet.example/rec/{rid}.mp3",
        "selected_menu": {"id": first, "name": NAMES[first], "output_msg": "hi"},
        "menu_path": menu(last, NAMES[last]),
        "agent_info": {
            "id": 1001,
            "name": "Alex Rivera",
            "first_name": "Alex",
            "last_name": "Rivera",
            "agent_number": "A1001",
        },
        "end_user": {"id": 700001, "identifier": "+1 555 0100 123", "out_contact_id": "crm-1"},
        "photos": [{"id": 1, "photo_type": "photo", "url": "https://media.ujet.example/p.jpg"}],
        "videos": [],
        "transfers": [],
        "queue_durations": queues,
        "handle_durations": [],
        "participants": [
            {
                "id": 8,
                "type": "end_user",
                "user_id": None,
                "end_user_id": 700001,
                "hold_duration": 0,
            }
        ],
        "outbound_number": None,
    } | kw


NAMES = {3001: "Sales", 3002: "Billing", 3003: "Retention", 3100: "Web"}


def land(tmp_path: Path, stream: str, records: list[dict], *, decoded: bool = True) -> pl.LazyFrame:
    """Land one page as the sync does (decoded too, unless ``decoded`` is false: a store landed
    before records were landed decoded) and scan it as the rebuild does."""
    dtype = UJET.stream(stream).landed_dtype if decoded else None
    land_page(
        tmp_path,
        "ujet",
        stream,
        [prepare(r) for r in records],
        key=RecordKey("id", "updated_at"),
        scrubber=SCRUB,
        fetched_at=datetime(2026, 10, 2, tzinfo=UTC),
        batch_id="t",
        record_dtype=dtype,
    )
    return scan_landed(tmp_path, "ujet", stream, record_dtype=dtype)


def run(
    tmp_path: Path, records: list[dict], stream: str = "calls", *, decoded: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame]:
    landed = land(tmp_path, stream, records, decoded=decoded)
    return edge(landed, stream)


def edge(landed: pl.LazyFrame, stream: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One stream's landed records mapped and validated, as a run does."""
    out = validated(normalise_stream(UJET, UJET.stream(stream), landed), "contacts")
    rows, quarantine = pl.collect_all(list(out))
    return rows.sort("contact_id", "segment_no"), quarantine.sort("record_id")


def test_answered_call_maps_every_column(tmp_path: Path) -> None:
    record = call(
        1,
        [queue(3001, "answered", 0, 1, 12)],
        handle_durations=[handle(300, 45, 1, 7)],
        participants=[agent(30)],
        rating=4,
    )
    rows, quarantine = run(tmp_path, [record])
    assert quarantine.height == 0
    assert rows.schema == pl.Schema(CONTACTS)
    row = rows.row(0, named=True)
    assert row["contact_id"] == "call-1"
    assert row["segment_no"] == 1
    assert (row["channel"], row["direction"], row["queue_id"], row["queue_name"]) == (
        "voice",
        "inbound",
        "3001",
        "Sales",
    )
    assert row["offered_at"] == datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    assert row["answered_at"] == datetime(2026, 10, 1, 9, 1, tzinfo=UTC)
    assert row["ended_at"] == datetime(2026, 10, 1, 9, 7, tzinfo=UTC)
    assert (row["outcome"], row["wait_ms"], row["talk_ms"], row["hold_ms"], row["acw_ms"]) == (
        "answered",
        12_000,
        300_000,
        30_000,
        45_000,
    )
    assert (row["sl_threshold_ms"], row["csat_responses"], row["csat_score"], row["messages"]) == (
        20_000,
        1,
        4,
        0,
    )
    assert row["updated_at"] == datetime(2026, 10, 1, 9, 59, tzinfo=UTC)


def test_transfer_is_one_segment_per_queue_with_names_from_the_transfer(tmp_path: Path) -> None:
    queues = [
        queue(3001, "transferred", 0, 1, 60),
        queue(3002, "answered", 1, 2, 50),
        queue(3003, "answered", 9, 10, 40, service_level_target_time=None),
    ]
    transfers = [
        {
            "id": 1,
            "from_menu": menu(3001, "Sales"),
            "to_menu": menu(3002, "Billing"),
            "from_agent": None,
            "to_agent": {"id": 1002, "name": "Sam Chen"},
        },
        {
            "id": 2,
            "from_menu": menu(3002, "Billing"),
            "to_menu": menu(3003, "Retention"),
            "from_agent": {"id": 1002, "name": "Sam Chen"},
            "to_agent": None,
        },
    ]
    record = call(
        2,
        queues,
        transfers=transfers,
        rating=5,
        handle_durations=[handle(400, 20, 2, 9), handle(100, 10, 10, 12)],
        participants=[agent(5), {"type": "end_user", "hold_duration": 99}, agent(7)],
    )
    rows, _ = run(tmp_path, [record])
    assert rows["queue_name"].to_list() == ["Sales", "Billing", "Retention"]
    assert rows["outcome"].to_list() == ["flow_out", "answered", "answered"]
    assert rows["talk_ms"].to_list() == [0, 400_000, 100_000]  # rank-matched, not cross-joined
    assert rows["hold_ms"].to_list() == [0, 5_000, 7_000]
    assert rows["acw_ms"].to_list() == [0, 20_000, 10_000]
    assert rows["ended_at"][0] == datetime(2026, 10, 1, 9, 1, tzinfo=UTC)  # the queue's end
    assert rows["sl_threshold_ms"].to_list() == [20_000, 20_000, None]
    assert rows["csat_responses"].to_list() == [0, 0, 1]  # on the last answered segment only
    assert rows.height == 3


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        ("abandoned", "abandoned"),
        ("deflected", "flow_out"),
        ("voicemail", "flow_out"),
        ("scheduled", "flow_out"),
        ("expired", "flow_out"),
        ("transferred", "flow_out"),
    ],
)
def test_queue_events(tmp_path: Path, event: str, outcome: str) -> None:
    rows, _ = run(tmp_path, [call(3, [queue(3001, event, 0, 2, 120)], status="failed")])
    assert rows.select("outcome", "answered_at", "talk_ms", "wait_ms").row(0) == (
        outcome,
        None,
        0,
        120_000,
    )


@pytest.mark.parametrize(
    ("status", "fail_reason", "outcome"),
    [
        ("queued", "nothing", "open"),
        ("failed", "eu_abandoned", "abandoned"),
        ("voicemail_received", "nothing", "flow_out"),
        ("scheduled", "nothing", "flow_out"),
        ("failed", "voip_conn_timeout", "flow_out"),
        (None, None, "open"),
    ],
)
def test_last_entry_without_event_takes_the_record_status(
    tmp_path: Path, status: str | None, fail_reason: str | None, outcome: str
) -> None:
    record = call(4, [queue(3001, None, 0, None, 7)], status=status, fail_reason=fail_reason)
    rows, quarantine = run(tmp_path, [record])
    assert quarantine.height == 0
    assert rows["outcome"].to_list() == [outcome]
    assert rows["ended_at"].to_list() == [None]


def test_never_offered_records_yield_no_segment(tmp_path: Path) -> None:
    menu_abandon = call(
        5,
        [],
        status="failed",
        fail_reason="eu_in_menu_abandoned",
        selected_menu=None,
        menu_path=None,
    )
    dial_out = call(6, [], call_type="Voice Outbound", handle_durations=[handle(60, 5, 0, 1)])
    queued_outbound = call(
        7,
        [queue(3001, "answered", 0, 1, 3)],
        call_type="Voice Outbound",
        handle_durations=[handle(60, 5, 1, 2)],
    )
    rows, quarantine = run(tmp_path, [menu_abandon, dial_out, queued_outbound])
    assert quarantine.height == 0
    assert rows.select("contact_id", "direction").rows() == [("call-7", "outbound")]


def test_chat_messages_and_rating_on_the_carrier(tmp_path: Path) -> None:
    chat = call(
        8,
        [queue(3100, "answered", 0, 1, 30), queue(3100, "abandoned", 5, 6, 15)],
        handle_durations=[handle(240, 10, 1, 5, unit="chat")],
        message_count=14,
        rating=3,
        call_type=None,
        chat_type="Messaging Inbound (Web Chat)",
    )
    rows, _ = run(tmp_path, [chat], stream="chats")
    assert rows["contact_id"].to_list() == ["chat-8", "chat-8"]
    assert rows["channel"].to_list() == ["chat", "chat"]
    assert rows["talk_ms"].to_list() == [240_000, 0]
    assert rows["messages"].to_list() == [14, 0]  # the last answered segment carries them
    assert rows.select("csat_responses", "csat_score").rows() == [(1, 3), (0, 0)]


def test_unrated_and_zero_rating_are_no_survey(tmp_path: Path) -> None:
    records = [
        call(9, [queue(3001, "abandoned", 0, 1, 5)], rating=0),
        call(10, [queue(3001, "abandoned", 0, 1, 5)]),
    ]
    rows, _ = run(tmp_path, records)
    assert rows["csat_responses"].to_list() == [0, 0]


def test_pii_is_dropped_and_the_phone_hashed_before_landing(tmp_path: Path) -> None:
    email_user = {"id": 2, "identifier": "jamie.kim@example.com", "out_contact_id": "crm-2"}
    landed = land(tmp_path, "calls", [call(11, []), call(12, [], end_user=email_user)]).collect()
    payloads = {rid: json.loads(p) for rid, p in landed.select("record_id", "payload").rows()}
    text = " ".join(landed["payload"])
    for value in (
        "Alex",
        "Rivera",
        "A1001",
        "+1 555",
        "crm-",
        "media.ujet",
        "700001",
        "example.com",
    ):
        assert value not in text
    assert payloads["11"]["caller_phone_hmac"] == pii_hash("15550100123", SECRET)
    assert payloads["12"]["caller_phone_hmac"] is None
    assert "end_user" not in payloads["11"]
    assert "photos" not in payloads["11"]
    assert payloads["11"]["agent_info"] == {"id": 1001}


def test_the_stream_lands_decoded() -> None:
    assert [s.landed_dtype for s in UJET.streams] == [RECORD_DTYPE, RECORD_DTYPE]


@pytest.mark.parametrize("decoded", [True, False], ids=["decoded", "json-only"])
def test_bad_records_are_quarantined_whole_with_their_payload(
    tmp_path: Path, decoded: bool
) -> None:
    good = call(20, [queue(3001, "abandoned", 0, 1, 5)])
    no_handle = call(21, [queue(3001, "transferred", 0, 1, 5), queue(3002, "answered", 1, 2, 5)])
    negative = call(22, [queue(3001, "abandoned", 0, 1, -5)])
    bad_time = call(23, [queue(3001, "abandoned", 0, 1, 5, started_at="yesterday")])
    unknown = call(24, [queue(3001, "teleported", 0, 1, 5)])
    finished = call(25, [queue(3001, None, 0, None, 5)], status="finished")
    backwards = call(26, [queue(3001, "abandoned", 30, 1, 5)])
    # seconds no integer millisecond holds (the rebuild failed, every night, naming no record)
    huge = call(27, [queue(3001, "abandoned", 0, 1, 10**30)])
    huge_back = call(28, [queue(3001, "abandoned", 0, 1, -1e300)])
    # a call type the seed does not list: once counted as inbound, whatever it was
    teleport = call(29, [queue(3001, "abandoned", 0, 1, 5)], call_type="Voice Teleport")
    rows, quarantine = run(
        tmp_path,
        [good, no_handle, negative, bad_time, unknown, finished, backwards, huge, huge_back,
         teleport],
        decoded=decoded,
    )  # fmt: skip
    assert rows["contact_id"].to_list() == ["call-20"]
    assert quarantine.schema == pl.Schema(QUARANTINE)
    assert quarantine.select("record_id", "reason", "detail").rows() == [
        ("call-21", "inconsistent_record", "handle_durations"),
        ("call-22", "negative_duration", "wait_ms"),
        ("call-23", "unparsable_timestamp", "offered_at"),
        ("call-24", "unknown_outcome", "outcome"),
        ("call-25", "unknown_outcome", "outcome"),
        ("call-26", "end_before_offer", "ended_at"),
        ("call-27", "implausible_duration", "wait_ms"),
        ("call-28", "negative_duration", "wait_ms"),
        ("call-29", "unknown_direction", "call_type"),
    ]
    raw = json.loads(quarantine["raw"][0])
    assert raw["id"] == 21
    assert "end_user" not in raw
    assert set(quarantine["source"]) == {"ujet"}
    assert set(quarantine["table"]) == {"contacts"}


@pytest.mark.parametrize(
    ("call_type", "direction"),
    [("Voice Outbound", "outbound"), ("OutboundCall", "outbound"), ("IvrCall", "inbound"),
     ("Voice Scheduled (Web)", "inbound"), (None, "inbound")],
)  # fmt: skip
def test_call_types_of_the_seed_give_the_direction(
    tmp_path: Path, call_type: str | None, direction: str
) -> None:
    """The seed's display names and the class names of its ``call_type[]`` filter (the probe's
    ``OutboundCall`` was taken for inbound); a call without one is inbound."""
    rows, quarantine = run(tmp_path, [call(30, [queue(3001, "abandoned", 0, 1, 5)],
                                           call_type=call_type)])  # fmt: skip
    assert quarantine.height == 0
    assert rows["direction"].to_list() == [direction]


def test_shape_check_finds_what_the_decoder_cannot_take() -> None:
    record = call(30, [queue(3001, "answered", 0, 1, 12)])
    assert shape_error(prepare(record), RECORD_DTYPE) is None
    assert shape_error(record | {"x_new": {"deep": [1]}}, RECORD_DTYPE) is None  # unknown keys
    bad: list[tuple[dict[str, Any], str]] = [
        (record | {"queue_durations": {"a": 1}}, "$.queue_durations"),
        (record | {"rating": "5"}, "$.rating"),
        (record | {"rating": 4.5}, "$.rating"),
        (record | {"rating": True}, "$.rating"),
        (record | {"menu_path": [1]}, "$.menu_path"),
        (
            record | {"queue_durations": [queue(1, "answered", 0, 1, 1, queue_duration="9")]},
            "$.queue_durations[0].queue_duration",
        ),
        (record | {"status": {"nested": 1}}, "$.status"),
    ]
    for value, where in bad:
        assert shape_error(value, RECORD_DTYPE) == where


def test_declaration() -> None:
    assert [s.name for s in UJET.streams] == ["calls", "chats"]
    calls = UJET.stream("calls")
    assert (calls.cursor_param, calls.primary_key, calls.paging) == (
        "updated_at[from]",
        "id",
        "cursor_tail",
    )
    assert calls.params == {"sort_column": "updated_at", "sort_direction": "ASC"}


def _served(
    emu: UjetEmulator, tmp_path: Path, *, decoded: bool = True
) -> Callable[[str], pl.LazyFrame]:
    def landed(stream: str) -> pl.LazyFrame:
        records = json.loads(json.dumps(emu.records(stream)))
        if records:
            return land(tmp_path, stream, records, decoded=decoded)
        return scan_landed(tmp_path, "ujet", stream)

    return landed


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contacts=loose_contacts())
def test_mapping_inverts_the_emulator(
    tmp_path_factory: pytest.TempPathFactory, contacts: pl.DataFrame
) -> None:
    emu = UjetEmulator(contacts, rate_limit_per_s=None, extra_menu_abandons=1, extra_outbound=1)
    for decoded in (True, False):  # landed decoded (as now), and JSON only (stores from before)
        landed = _served(emu, tmp_path_factory.mktemp("land"), decoded=decoded)
        outs = [edge(landed(s), s) for s in ("calls", "chats")]
        rows = pl.concat([o[0] for o in outs]).sort("contact_id", "segment_no")
        assert pl.concat([o[1] for o in outs]).height == 0
        assert_frame_equal(rows, emu.expected_contacts())
