"""The Dixa emulator over real loopback sockets: auth, catalogues, paging, periods, limits, faults.

The round-trip tests decode the served records with a small reference decoder written from the
mapping table in ``connectors.emulator.dixa.record`` and check it rebuilds the canonical input.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors.emulator import DixaEmulator, Fault, Faults
from connectors.emulator.dixa.app import BurstLimiter
from engine.clock import sleep as clock_sleep
from engine.schema import CONTACTS

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
FAST = None  # no limiter: the tests that are not about it
CLIENT = httpx.Client(timeout=5)
RECORDS = "/v1/analytics/records"
CHANNEL = {
    "PSTN_PHONE": "voice",
    "CALLBACK": "callback",
    "WIDGET_CHAT": "chat",
    "EMAIL": "email",
    "CONTACT_FORM": "email",
    "WHATSAPP": "messaging",
    "FACEBOOK_MESSENGER": "messaging",
    "SMS": "messaging",
}
OUTCOME = {"ANSWERED": "answered", "ABANDONED": "abandoned", "WAITING": "open"}


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    CLIENT.close()


def seg(cid: str, n: int, *, at: float = 0, outcome: str = "answered", **kw: Any) -> dict[str, Any]:
    """A canonical segment already in the emulator's normal form (so it round-trips as is)."""
    offered = T0 + timedelta(seconds=at)
    wait, talk = kw.pop("wait", 12.5), kw.pop("talk", 90.25)
    answered = offered + timedelta(seconds=wait) if outcome == "answered" else None
    ended = answered + timedelta(seconds=talk) if answered else offered + timedelta(seconds=wait)
    row = {
        "source": "dixa",
        "contact_id": cid,
        "segment_no": n,
        "channel": "voice",
        "direction": "inbound",
        "queue_id": "q-sales",
        "queue_name": "Sales",
        "offered_at": offered,
        "answered_at": answered,
        "ended_at": None if outcome == "open" else ended,
        "outcome": outcome,
        "wait_ms": int(wait * 1000),
        "talk_ms": int(talk * 1000) if answered else 0,
        "hold_ms": 0,
        "acw_ms": 20_001 if answered else 0,
        "sl_threshold_ms": 20_000,
        "messages": 0,
        "csat_responses": 0,
        "csat_score": 0,
        "updated_at": T0 + timedelta(hours=1),
    }
    return row | kw


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CONTACTS).sort("contact_id", "segment_no")


MIXED = [
    seg("101", 1, csat_responses=1, csat_score=5, hold_ms=15_000),
    seg("102", 1, outcome="flow_out", wait=30),
    seg("102", 2, at=30, queue_id="q-billing", queue_name="Billing", sl_threshold_ms=None),
    seg("103", 1, at=60, outcome="abandoned", wait=41.999),
    seg("104", 1, at=61, outcome="open", wait=7),
    seg("105", 1, at=62, direction="outbound", talk=33),
    seg("106", 1, at=63, ended_at=None),  # answered, still talking
    seg("201", 1, at=70, channel="chat", queue_id="q-web", queue_name="Web", messages=14),
    seg("202", 1, at=80, channel="email", queue_id="q-mail", queue_name="Mail", wait=3600),
    seg("203", 1, at=90, channel="messaging", queue_id="q-msg", queue_name="Msg", messages=3),
    seg("204", 1, at=99, channel="callback", queue_id="q-cb", queue_name="CB", csat_responses=2),
]


def many(n: int) -> pl.DataFrame:
    return frame([seg(str(1000 + i), 1, at=i * 60) for i in range(n)])


@pytest.fixture
def emu() -> Iterator[DixaEmulator]:
    with DixaEmulator(frame(MIXED), rate_limit_per_s=FAST) as e:
        yield e


def body(record_id: str = "conversations", **kw: Any) -> dict[str, Any]:
    period = {"_type": "Interval", "start": "2024-05-01T00:00:00Z", "end": "2024-05-02T00:00:00Z"}
    return {"id": record_id, "periodFilter": period, "timezone": "Europe/Copenhagen"} | kw


def post(emu: DixaEmulator, payload: Any, path: str = RECORDS, **params: Any) -> httpx.Response:
    return CLIENT.post(emu.base_url + path, json=payload, params=params, headers=emu.headers)


def get(emu: DixaEmulator, path: str, **params: Any) -> httpx.Response:
    return CLIENT.get(emu.base_url + path, params=params, headers=emu.headers)


def next_key(doc: dict[str, Any]) -> str | None:
    meta = doc.get("meta") or {}
    key = meta.get("next") or doc.get("pageKey")
    if key and key.startswith("/"):
        key = httpx.URL(key).params["pageKey"]
    return key


def fetch_all(emu: DixaEmulator, payload: dict[str, Any], limit: int = 3) -> list[dict[str, Any]]:
    out, params = [], {"pageLimit": limit}
    while True:
        response = post(emu, payload, **params)
        assert response.status_code == 200, response.text
        out += response.json()["data"]
        if (key := next_key(response.json())) is None:
            return out
        params = {"pageKey": key}


def ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def decode(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A reference inverse of the mapping in ``dixa_record`` (what the connector must do)."""
    rows = []
    for r in records:
        f = {x["name"]: x["field"] for x in r["fields"]}

        def value(name: str, f: dict[str, Any] = f) -> Any:
            return f[name]["value"] if name in f else None

        def ms(name: str, f: dict[str, Any] = f) -> int | None:
            return None if name not in f else round(f[name]["value"] * 1000)

        outcome = value("queue_outcome")
        rows.append(
            {
                "source": "dixa",
                "contact_id": str(value("csid")),
                "segment_no": value("offer_number"),
                "channel": CHANNEL[value("initial_channel")],
                "direction": value("initial_direction").lower(),
                "queue_id": value("queue_id"),
                "queue_name": f["queue_id"]["label"],
                "offered_at": ts(value("offered_at")),
                "answered_at": ts(value("answered_at")),
                "ended_at": ts(value("ended_at")),
                "outcome": OUTCOME.get(outcome, "flow_out"),
                "wait_ms": ms("queue_time"),
                "talk_ms": ms("talk_time"),
                "hold_ms": ms("hold_time"),
                "acw_ms": ms("wrap_up_time"),
                "sl_threshold_ms": ms("sla_threshold"),
                "messages": value("message_count"),
                "csat_responses": value("rating_count"),
                "csat_score": value("rating_score"),
                "updated_at": ts(value("updated_at")),
            }
        )
    return rows


def test_round_trip_is_exact(emu: DixaEmulator) -> None:
    rebuilt = frame(decode(fetch_all(emu, body())))
    assert_frame_equal(rebuilt, emu.expected_contacts())
    assert_frame_equal(rebuilt, frame(MIXED))  # MIXED is already in normal form
    assert emu.errors == []


@st.composite
def loose_contacts(draw: st.DrawFn) -> pl.DataFrame:
    """Random canonical input: odd ids, sub-millisecond times, nulls, every channel."""
    ms, rows = st.integers(0, 10**8), []
    for c in range(draw(st.integers(1, 5))):
        cid = draw(st.sampled_from([f"c{c}", str(c + 1), f"0{c}"]))
        for n in draw(st.lists(st.integers(-3, 99), min_size=1, max_size=3, unique=True)):
            offered = T0 + timedelta(microseconds=draw(st.integers(0, 10**10)))
            maybe_at = st.one_of(
                st.none(), ms.map(lambda d, o=offered: o + timedelta(milliseconds=d))
            )
            rows.append(
                {
                    "source": "x",
                    "contact_id": cid,
                    "segment_no": n,
                    "channel": draw(
                        st.sampled_from(["voice", "chat", "email", "callback", "messaging"])
                    ),
                    "direction": draw(st.sampled_from([None, "inbound", "outbound"])),
                    "queue_id": draw(st.sampled_from(["q1", "q2", "3"])),
                    "queue_name": draw(st.sampled_from([None, "Sales", "Billing"])),
                    "offered_at": offered,
                    "answered_at": draw(maybe_at),
                    "ended_at": draw(maybe_at),
                    "outcome": draw(st.sampled_from(["answered", "abandoned", "flow_out", "open"])),
                    **{k: draw(st.one_of(st.none(), ms)) for k in ("wait_ms", "talk_ms", "acw_ms")},
                    "hold_ms": draw(ms),
                    "sl_threshold_ms": draw(st.one_of(st.none(), ms)),
                    "messages": draw(st.integers(0, 50)),
                    "csat_responses": draw(st.integers(0, 2)),
                    "csat_score": draw(st.integers(0, 10)),
                    "updated_at": draw(maybe_at),
                }
            )
    return pl.DataFrame(rows, schema=CONTACTS)


@given(loose_contacts())
def test_round_trip_property(contacts: pl.DataFrame) -> None:
    emu = DixaEmulator(contacts, rate_limit_per_s=None)  # rendering needs no socket
    expected = emu.expected_contacts()
    served = json.loads(json.dumps(emu.records("conversations")))
    assert_frame_equal(frame(decode(served)), expected)
    assert expected.height == contacts.height
    again = DixaEmulator(expected, rate_limit_per_s=None).expected_contacts()
    assert_frame_equal(again, expected)  # the normal form is a fixed point


def test_normalisation_of_loose_input() -> None:
    loose = [
        seg("abc", 7, wait_ms=None, queue_name=None, updated_at=None),
        seg("abc", 9, at=30, outcome="abandoned", queue_name="Late name"),
        seg("42", 1, direction=None),
    ]
    loose[0]["offered_at"] += timedelta(microseconds=123_456)
    with DixaEmulator(pl.DataFrame(loose, schema=CONTACTS), rate_limit_per_s=None) as emu:
        out = emu.expected_contacts()
        fresh = emu.canonical_id("abc")
        assert (fresh, emu.canonical_id("42")) == ("100001", "42")
        first = out.filter(pl.col("contact_id") == fresh)
        assert first["segment_no"].to_list() == [1, 2]
        assert first["offered_at"][0].microsecond == 123_000
        assert first["wait_ms"][0] == 12_377  # derived from the truncated times, like the validator
        assert first["updated_at"][0] == first["ended_at"][0]
        assert set(out["queue_name"]) == {"Late name"}
        assert out.filter(pl.col("contact_id") == "42")["direction"].to_list() == ["inbound"]
        assert_frame_equal(frame(decode(fetch_all(emu, body()))), out)


def test_auth_is_required_and_never_echoed(emu: DixaEmulator) -> None:
    anonymous = CLIENT.get(emu.base_url + RECORDS)
    wrong = CLIENT.get(emu.base_url + RECORDS, headers={"Authorization": "s3cr3t-guess"})
    bearer = CLIENT.get(emu.base_url + RECORDS, headers={"Authorization": f"Bearer {emu.token}"})
    assert anonymous.status_code == wrong.status_code == bearer.status_code == 401
    assert "s3cr3t-guess" not in wrong.text + str(wrong.headers)
    assert get(emu, RECORDS).status_code == 200
    assert emu.stats.unauthorized_401 == 3


def test_catalogues_page_by_key_and_describe(emu: DixaEmulator) -> None:
    ids, params = [], {"pageLimit": 1}
    while True:
        doc = get(emu, RECORDS, **params).json()
        ids += [r["id"] for r in doc["data"]]
        if (key := next_key(doc)) is None:
            break
        params = {"pageKey": key}
    assert ids == ["ratings", "closed_conversations", "conversations"]
    entry = get(emu, f"{RECORDS}/conversations").json()["data"]
    assert entry["fieldsMetadata"][0] == {
        "field": "csid",
        "description": "Conversation ID",
        "nullable": False,
    }
    ratings = get(emu, f"{RECORDS}/ratings").json()["data"]
    assert [m["field"] for m in ratings["fieldsMetadata"]] == [
        "conversation_id",
        "agent_id",
        "queue_id",
    ]
    metrics = get(emu, "/v1/analytics/metrics").json()["data"]
    assert [m["id"] for m in metrics] == ["csat", "closed_conversations", "offered_conversations"]
    assert get(emu, "/v1/analytics/metrics/csat").json()["data"]["relatedRecordIds"] == ["ratings"]
    assert get(emu, f"{RECORDS}/nope").status_code == 400
    assert get(emu, "/v1/agents").status_code == 404


@pytest.mark.parametrize("where", ["meta", "meta_url", "top"])
def test_next_key_locations_and_last_page(where: str) -> None:
    with DixaEmulator(many(7), rate_limit_per_s=FAST, next_key=where) as emu:  # type: ignore[arg-type]
        first = post(emu, body(), pageLimit=3).json()
        if where == "top":
            assert "meta" not in first
            assert isinstance(first["pageKey"], str)
        else:
            assert "pageKey" not in first
            assert first["meta"]["next"].startswith(RECORDS + "?pageKey=") == (where == "meta_url")
        pages = []
        params: dict[str, Any] = {"pageLimit": 3}
        while True:
            doc = post(emu, body(), **params).json()
            pages.append(len(doc["data"]))
            if (key := next_key(doc)) is None:
                assert "meta" not in doc
                assert "pageKey" not in doc
                break
            params = {"pageKey": key}
        assert pages == [3, 3, 1]


def test_page_key_is_opaque_bound_to_the_query_and_limit_can_change() -> None:
    with DixaEmulator(many(10), rate_limit_per_s=FAST) as emu:
        key = next_key(post(emu, body(), pageLimit=4).json())
        assert key is not None
        assert json.loads(base64.b64decode(key))["offset"] == 4
        same = post(emu, body(), pageKey=key).json()["data"]
        assert len(same) == 4
        assert len(post(emu, body(), pageKey=key, pageLimit=5).json()["data"]) == 5
        other = post(emu, body(timezone="UTC"), pageKey=key)
        assert other.status_code == 400
        assert "pageKey" in other.json()["message"]
        assert post(emu, body(), pageKey="not-base64!").status_code == 400
        for bad in ("0", "301", "ten"):
            assert post(emu, body(), pageLimit=bad).status_code == 400
        assert len(post(emu, body(), pageLimit=300).json()["data"]) == 10


def test_bad_bodies_are_400(emu: DixaEmulator) -> None:
    assert post(emu, body(timezone="Mars/Olympus")).status_code == 400
    assert post(emu, body(id="nope")).status_code == 400
    assert post(emu, {"id": "conversations", "timezone": "UTC"}).status_code == 400
    assert post(emu, body(periodFilter={"_type": "Interval", "start": "x"})).status_code == 400
    assert (
        post(emu, body(periodFilter={"_type": "Preset", "value": {"_type": "Soon"}})).status_code
        == 400
    )
    assert post(emu, body(filters=[{"attribute": "channel", "values": []}])).status_code == 400
    raw = CLIENT.post(emu.base_url + RECORDS, content=b"{", headers=emu.headers)
    assert raw.status_code == 400
    assert CLIENT.put(emu.base_url + RECORDS, headers=emu.headers).status_code == 501


def test_interval_is_half_open_and_naive_times_are_local(emu: DixaEmulator) -> None:
    def csids(payload: dict[str, Any]) -> list[int]:
        records = post(emu, payload, pageLimit=300).json()["data"]
        return [r["fields"][0]["field"]["value"] for r in records]

    exact = {"_type": "Interval", "start": "2024-05-01T09:01:00Z", "end": "2024-05-01T09:01:02Z"}
    assert csids(body(periodFilter=exact)) == [103, 104]  # offered at +60 s and +61 s, not +62 s
    local = {"_type": "Interval", "start": "2024-05-01T11:01:00", "end": "2024-05-01T11:01:02"}
    assert csids(body(periodFilter=local)) == [103, 104]  # Copenhagen is UTC+2 in May
    assert csids(body(periodFilter=local, timezone="UTC")) == []


def test_presets_follow_the_clock_in_the_timezone() -> None:
    now = datetime(2024, 5, 8, 12, tzinfo=UTC)  # a Wednesday
    with DixaEmulator(frame(MIXED), rate_limit_per_s=FAST, clock=lambda: now) as emu:
        week = {"_type": "Preset", "value": {"_type": "PreviousWeek"}}
        assert len(post(emu, body(periodFilter=week)).json()["data"]) == len(MIXED)
        today = {"_type": "Preset", "value": {"_type": "Today"}}
        assert post(emu, body(periodFilter=today)).json()["data"] == []
        month = {"_type": "Preset", "value": {"_type": "ThisMonth"}}
        assert len(post(emu, body(periodFilter=month)).json()["data"]) == len(MIXED)


def test_filters_and_csid_filter(emu: DixaEmulator) -> None:
    def count(**kw: Any) -> int:
        return len(post(emu, body(**kw), pageLimit=300).json()["data"])

    assert count(filters=[{"attribute": "channel", "values": ["email"]}]) == 1
    assert count(filters=[{"attribute": "channel", "values": ["PSTN_PHONE", "chat"]}]) == 8
    assert count(filters=[{"attribute": "queue_id", "values": ["q-billing"]}]) == 1
    assert count(filters=[{"attribute": "initial_direction", "values": ["OUTBOUND"]}]) == 1
    assert count(filters=[{"attribute": "no_such_thing", "values": ["x"]}]) == len(MIXED)
    by_csid = {"id": "conversations", "timezone": "UTC", "csidFilter": [102, 999]}
    assert len(post(emu, by_csid).json()["data"]) == 2


def test_other_record_ids_and_metrics(emu: DixaEmulator) -> None:
    closed = post(emu, body("closed_conversations")).json()["data"]
    assert len(closed) == len({r["contact_id"] for r in MIXED}) - 2  # 104 waits, 106 talks
    assert closed[0]["primaryTimestampField"]["name"] == "closed_at"
    ratings = post(emu, body("ratings")).json()["data"]
    assert [r["fields"][0]["field"]["value"] for r in ratings] == [101, 204]
    count = post(emu, body("closed_conversations", aggregations=["Count"]), "/v1/analytics/metrics")
    assert count.json()["data"]["aggregates"] == [
        {"value": len(closed), "measure": "Count", "_type": "LongAggregateValue"}
    ]
    csat = post(emu, body("csat"), "/v1/analytics/metrics").json()["data"]["aggregates"][0]
    assert csat["value"] == 50.0  # 5 is satisfied; 204's two responses average 0
    wrong = post(emu, body("csat", aggregations=["Count"]), "/v1/analytics/metrics")
    assert wrong.status_code == 400
    values = get(emu, "/v1/analytics/filter/channel").json()["data"]
    assert {"value": "PSTN_PHONE", "label": "Phone"} in values
    assert get(emu, "/v1/analytics/filter/colour").status_code == 400


def test_burst_limiter_windows() -> None:
    now = [0.0]
    limiter = BurstLimiter(10, 4, clock=lambda: now[0])
    assert [limiter.admit("t") for _ in range(4)] == [None] * 4
    assert limiter.admit("t") == pytest.approx(0.4)
    for step in range(6):  # 4 more at 0.4 s, then two at 0.8 s: 10 in the first second
        now[0] = 0.4 if step < 4 else 0.8
        assert limiter.admit("t") is None
    now[0] = 0.9
    assert limiter.admit("t") == pytest.approx(0.1)  # the 11th waits for the second to pass
    assert limiter.admit("other") is None


def test_rate_limit_answers_429_beyond_a_burst_of_4() -> None:
    with DixaEmulator(many(2), rate_limit_per_s=10) as emu:
        statuses = [get(emu, RECORDS).status_code for _ in range(6)]
        assert statuses[:4] == [200] * 4
        assert 429 in statuses
        limited = next(r for r in (get(emu, RECORDS) for _ in range(3)) if r.status_code == 429)
        assert "Retry-After" not in limited.headers  # Dixa documents none
        clock_sleep(0.45)
        assert get(emu, RECORDS).status_code == 200
        admitted = [e.monotonic for e in emu.request_log if e.status == 200]
        assert all(sum(t <= u < t + 0.4 for u in admitted) <= 4 for t in admitted)
        assert emu.stats.injected_429 == 0


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault.THROTTLE, 429),
        (Fault.THROTTLE_BARE, 429),
        (Fault.SERVER_ERROR, 500),
        (Fault.UNAVAILABLE, 503),
    ],
)
def test_status_faults(fault: Fault, status: int) -> None:
    faults = Faults(schedule={2: fault}, retry_after_s=3)
    with DixaEmulator(many(3), rate_limit_per_s=FAST, faults=faults) as emu:
        responses = [post(emu, body()) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, status, 200]
        assert responses[1].headers.get("Retry-After") == ("3" if fault is Fault.THROTTLE else None)


def test_dropped_connection_and_truncated_body() -> None:
    faults = Faults(schedule={1: Fault.DROP, 2: Fault.TRUNCATE})
    with DixaEmulator(many(3), rate_limit_per_s=FAST, faults=faults) as emu:
        with pytest.raises(httpx.RemoteProtocolError):
            post(emu, body())
        cut = post(emu, body())
        with pytest.raises(json.JSONDecodeError):
            json.loads(cut.content)
        assert len(post(emu, body()).json()["data"]) == 3


def test_unknown_keys_and_unknown_type(emu: DixaEmulator) -> None:
    plain = post(emu, body()).json()
    emu.faults = Faults(unknown_keys=True)
    noisy = post(emu, body()).json()
    assert len(noisy) == len(plain) + 1
    first, noisy_first = plain["data"][0], noisy["data"][0]
    assert len(noisy_first["fields"][0]["field"]) == len(first["fields"][0]["field"]) + 1
    emu.faults = Faults()
    emu.unknown_type = True
    odd = post(emu, body()).json()["data"][0]["fields"][-1]
    assert odd["name"] == "sentiment"
    assert odd["field"]["_type"] == "SentimentField"
    assert isinstance(odd["field"]["value"], dict)
    emu.unknown_type = False
    assert post(emu, body()).json() == plain


def test_mutations_and_pages_shifting_while_paging() -> None:
    now = T0 + timedelta(days=1)
    with DixaEmulator(many(6), rate_limit_per_s=FAST, clock=lambda: now) as emu:
        order = [r["fields"][0]["field"]["value"] for r in emu.records("conversations")]

        def between_pages(n: int) -> None:
            if n == 2:  # before the second page: an offer earlier than everything appears
                emu.add_contacts(frame([seg("999", 1, at=-3600)]))
                emu.update_records([str(order[0])], outcome="abandoned", answered_at=None)

        emu.add_hook(between_pages)
        page1 = post(emu, body(), pageLimit=3).json()
        key = next_key(page1)
        page2 = post(emu, body(), pageKey=key).json()
        first = [r["fields"][0]["field"]["value"] for r in page1["data"]]
        second = [r["fields"][0]["field"]["value"] for r in page2["data"]]
        assert first == order[:3]
        assert second == order[2:5]  # order[2] slid onto page 2 again: served twice, 999 missed
        changed = emu.expected_contacts().filter(pl.col("contact_id") == str(order[0]))
        assert changed["outcome"].to_list() == ["abandoned"]
        assert changed["updated_at"].to_list() == [now]
        with pytest.raises(ValueError, match="cannot change"):
            emu.update_records(["999"], contact_id="1")


def test_pii_decorations_and_raw_records(emu: DixaEmulator) -> None:
    record = post(emu, body(), pageLimit=1).json()["data"][0]
    names = {f["name"]: f["field"] for f in record["fields"]}
    assert names["requester_phone"]["value"].startswith("+4520")
    assert "@" in names["requester_email"]["value"]
    assert names["requester_name"]["value"]
    assert names["agent_id"]["label"]
    assert names["tag_ids"]["_type"] == "ListField"
    assert names["transferred"] == {"value": False, "_type": "BooleanField"}
    emu.add_raw_records(
        "conversations",
        [{"primaryTimestampField": {"timestamp": "2024-05-01T10:00:00Z"}, "fields": 3}],
    )
    assert post(emu, body()).json()["data"][-1]["fields"] == 3
