"""The UJET emulator over real loopback sockets: auth, paging, filters, rate limit, faults, data.

The round-trip test decodes the served JSON with a small reference decoder written from the
mapping table in ``connectors.emulator.ujet.record`` and checks it rebuilds the canonical input.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors.emulator import Fault, Faults, RateLimiter, UjetEmulator
from engine.clock import sleep as clock_sleep
from engine.schema import CONTACTS

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
FAST = 1000.0  # requests/s: never limits the tests that are not about the limiter
CLIENT = httpx.Client(timeout=5)  # one client: building an SSL context per request is slow


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    CLIENT.close()


def seg(cid: str, n: int, *, at: int = 0, outcome: str = "answered", **kw: Any) -> dict[str, Any]:
    """A canonical segment already in the emulator's normal form (so it round-trips as is)."""
    offered = T0 + timedelta(seconds=at)
    wait, talk, hold, acw = (
        kw.pop(k, d) for k, d in (("wait", 12), ("talk", 90), ("hold", 0), ("acw", 20))
    )
    answered = offered + timedelta(seconds=wait) if outcome == "answered" else None
    ended = (
        answered + timedelta(seconds=talk + hold) if answered else offered + timedelta(seconds=wait)
    )
    row = {
        "source": "ujet",
        "contact_id": cid,
        "segment_no": n,
        "channel": "chat" if cid.startswith("chat") else "voice",
        "direction": "inbound",
        "queue_id": "3001",
        "queue_name": "Sales",
        "offered_at": offered,
        "answered_at": answered,
        "ended_at": None if outcome == "open" else ended,
        "outcome": outcome,
        "wait_ms": 1000 * wait,
        "talk_ms": 1000 * talk * (outcome == "answered"),
        "hold_ms": 1000 * hold * (outcome == "answered"),
        "acw_ms": 1000 * acw * (outcome == "answered"),
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
    seg("call-1", 1, csat_responses=1, csat_score=5),
    seg("call-2", 1, outcome="flow_out", wait=30),  # transferred out unanswered
    seg("call-2", 2, at=30, queue_id="3002", queue_name="Billing", hold=15, sl_threshold_ms=None),
    seg("call-2", 3, at=200, queue_id="3003", queue_name="Retention", hold=5),  # second transfer
    seg("call-3", 1, outcome="abandoned", wait=41),
    seg("call-4", 1, outcome="open", wait=7),
    seg("call-5", 1, outcome="flow_out", wait=300, queue_id="3002", queue_name="Billing"),
    seg("call-6", 1, direction="outbound", talk=33),
    seg("call-7", 1, ended_at=None),  # answered, still talking
    seg(
        "chat-1", 1, messages=14, csat_responses=1, csat_score=3, queue_id="3100", queue_name="Web"
    ),
    seg("chat-2", 1, outcome="abandoned", queue_id="3100", queue_name="Web"),
    seg("chat-3", 1, outcome="flow_out", wait=600, queue_id="3100", queue_name="Web"),
    seg("chat-4", 1, hold=0, queue_id="3100", queue_name="Web"),
    seg("chat-4", 2, at=400, messages=20, queue_id="3101", queue_name="Web VIP"),
]


def many(n: int) -> pl.DataFrame:
    """``n`` single-segment calls whose updated_at order differs from their id order."""
    return frame(
        [
            seg(f"call-{i}", 1, updated_at=T0 + timedelta(seconds=i * 37 % n))
            for i in range(1, n + 1)
        ]
    )


@pytest.fixture
def emu() -> Iterator[UjetEmulator]:
    with UjetEmulator(
        frame(MIXED), rate_limit_per_s=FAST, extra_menu_abandons=3, extra_outbound=2
    ) as e:
        yield e


def get(emu: UjetEmulator, path: str, **params: Any) -> httpx.Response:
    return CLIENT.get(f"{emu.base_url}/{path}", params=params, auth=emu.auth)


def fetch_all(emu: UjetEmulator, path: str, **params: Any) -> list[dict[str, Any]]:
    response, out = get(emu, path, per=2, **params), []
    while True:
        assert response.status_code == 200
        out += response.json()
        if "next" not in response.links:
            return out
        response = CLIENT.get(response.links["next"]["url"], auth=emu.auth)


def ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def decode(records: list[dict[str, Any]], endpoint: str) -> list[dict[str, Any]]:
    """A reference inverse of the mapping in ``ujet_record`` (what the connector must do)."""
    unit, rows = endpoint[:-1], []
    for r in records:
        queue = r["queue_durations"]
        menus = [r["menu_path"], *(t[k] for t in r["transfers"] for k in ("from_menu", "to_menu"))]
        names = {m["materialized_path"].rsplit("/", 1)[-1]: m["name"] for m in menus if m}
        handles = iter(r["handle_durations"])
        agents = iter(p for p in r["participants"] if p["type"] == "agent")
        answered = [i for i, q in enumerate(queue) if q["event"] == "answered"]
        carrier = answered[-1] if answered else len(queue) - 1
        for i, q in enumerate(queue):
            outcome = {"answered": "answered", "abandoned": "abandoned", None: "open"}.get(
                q["event"], "flow_out"
            )
            h, p = (next(handles), next(agents)) if outcome == "answered" else (None, None)
            sl, here = q["service_level_target_time"], i == carrier
            rows.append(
                {
                    "source": "ujet",
                    "contact_id": f"{unit}-{r['id']}",
                    "segment_no": i + 1,
                    "channel": "voice" if unit == "call" else "chat",
                    "direction": "outbound"
                    if r.get("call_type") == "Voice Outbound"
                    else "inbound",
                    "queue_id": str(q["menu_path_id"]),
                    "queue_name": names[str(q["menu_path_id"])],
                    "offered_at": ts(q["started_at"]),
                    "answered_at": ts(q["ended_at"]) if h else None,
                    "ended_at": ts(h["ended_at"] if h else q["ended_at"]),
                    "outcome": outcome,
                    "wait_ms": 1000 * q["queue_duration"],
                    "talk_ms": 1000 * h[f"{unit}_duration"] if h else 0,
                    "hold_ms": 1000 * p["hold_duration"] if p else 0,
                    "acw_ms": 1000 * h["acw_duration"] if h else 0,
                    "sl_threshold_ms": None if sl is None else 1000 * sl,
                    "messages": r.get("message_count", 0) if here else 0,
                    "csat_responses": int(here and r["rating"] is not None),
                    "csat_score": (r["rating"] or 0) if here else 0,
                    "updated_at": ts(r["updated_at"]),
                }
            )
    return rows


def test_round_trip_is_exact(emu: UjetEmulator) -> None:
    served = decode(fetch_all(emu, "calls"), "calls") + decode(fetch_all(emu, "chats"), "chats")
    rebuilt = frame(served)
    assert_frame_equal(rebuilt, emu.expected_contacts())
    assert_frame_equal(rebuilt, frame(MIXED))  # MIXED is already in normal form
    assert emu.errors == []


def after_ms(at: datetime, ms: int) -> datetime:
    return at + timedelta(milliseconds=ms)


@st.composite
def loose_contacts(draw: st.DrawFn) -> pl.DataFrame:
    """Random canonical input: odd ids, sub-second times and durations, any outcome order."""
    ms, rows = st.integers(0, 10**7), []
    for c in range(draw(st.integers(1, 5))):
        channel = draw(st.sampled_from(["voice", "chat"]))
        cid = draw(st.sampled_from([f"c{c}", f"call-{c + 1}", f"chat-{c + 1}"]))
        outbound = channel == "voice" and draw(st.booleans())
        numbers = draw(st.lists(st.integers(-3, 99), min_size=1, max_size=3, unique=True))
        for n in numbers:
            offered = T0 + timedelta(microseconds=draw(st.integers(0, 10**10)))
            maybe_at = st.one_of(st.none(), ms.map(partial(after_ms, offered)))
            rows.append(
                {
                    "source": "ujet",
                    "contact_id": cid,
                    "segment_no": n,
                    "channel": channel,
                    "direction": "outbound" if outbound else "inbound",
                    "queue_id": draw(st.sampled_from(["3001", "3002", "sales", "007"])),
                    "queue_name": draw(st.sampled_from([None, "Sales", "Billing"])),
                    "offered_at": offered,
                    "answered_at": draw(maybe_at),
                    "ended_at": draw(maybe_at),
                    "outcome": draw(st.sampled_from(["answered", "abandoned", "flow_out", "open"])),
                    **{
                        k: draw(st.one_of(st.none(), ms)) for k in ("wait_ms", "talk_ms", "hold_ms")
                    },
                    "acw_ms": draw(ms),
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
    emu = UjetEmulator(contacts, rate_limit_per_s=None)  # rendering needs no socket
    expected = emu.expected_contacts()
    calls, chats = (json.loads(json.dumps(emu.records(e))) for e in ("calls", "chats"))
    assert_frame_equal(frame(decode(calls, "calls") + decode(chats, "chats")), expected)
    assert expected.height == contacts.height
    again = UjetEmulator(expected, rate_limit_per_s=None).expected_contacts()
    assert_frame_equal(again, expected)  # the normal form is a fixed point


def test_normalisation_of_loose_input() -> None:
    loose = [
        seg("abc", 0, wait=0, wait_ms=15_499, queue_id="sales", updated_at=T0),
        seg(
            "abc",
            5,
            outcome="abandoned",
            wait_ms=15_500,
            queue_id="sales",
            updated_at=T0 + timedelta(seconds=1),
        ),
    ]
    loose[0]["offered_at"] += timedelta(microseconds=123_456)
    with UjetEmulator(pl.DataFrame(loose), rate_limit_per_s=None) as emu:
        out = emu.expected_contacts()
        assert out["contact_id"].to_list() == [emu.canonical_id("abc")] * 2
        assert out["segment_no"].to_list() == [1, 2]
        assert out["wait_ms"].to_list() == [15_000, 16_000]
        assert out["offered_at"][0].microsecond == 123_000
        assert out["updated_at"].to_list() == [T0 + timedelta(seconds=1)] * 2
        assert out["queue_id"].str.contains(r"^\d+$").all()
        assert_frame_equal(frame(decode(get(emu, "calls").json(), "calls")), out)


def test_auth_is_required_and_never_echoed(emu: UjetEmulator) -> None:
    anonymous = CLIENT.get(f"{emu.base_url}/calls")
    wrong = CLIENT.get(f"{emu.base_url}/calls", auth=("emu-key", "s3cr3t-guess"))
    assert anonymous.status_code == wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert "s3cr3t-guess" not in wrong.text + str(wrong.headers)
    assert get(emu, "calls").status_code == 200
    assert emu.stats.unauthorized_401 == 2


def test_paths_with_and_without_prefix_and_bad_requests(emu: UjetEmulator) -> None:
    bare = CLIENT.get(f"{emu.origin}/chats", auth=emu.auth)
    assert bare.status_code == 200
    assert bare.json() == get(emu, "chats").json()
    assert emu.base_url == f"{emu.origin}/manager/api/v1"
    assert emu.origin.startswith("http://127.0.0.1:")
    assert get(emu, "agents").status_code == 404
    assert get(emu, "calls", per="ten").status_code == 400
    assert get(emu, "calls", page=0).status_code == 400
    assert get(emu, "calls", **{"updated_at[from]": "yesterday"}).status_code == 400
    assert get(emu, "calls", sort_column="transfers").status_code == 400
    assert emu.stats.by_path["/manager/api/v1/calls"] == 4


def test_paging_headers_and_links_over_many_pages() -> None:
    with UjetEmulator(many(57), rate_limit_per_s=FAST) as emu:
        first = get(emu, "calls", per=10, **{"call_status[]": "finished"})
        assert (first.headers["Total"], first.headers["Per-Page"]) == ("57", "10")
        assert set(first.links) == {"next", "last"}
        assert "page=6" in first.links["last"]["url"]
        seen, response, pages = [], first, 0
        while True:
            pages += 1
            seen += [r["id"] for r in response.json()]
            for rel, link in response.links.items():
                assert link["url"].startswith(emu.base_url + "/calls?"), rel
                assert "call_status%5B%5D=finished" in link["url"]
            if "next" not in response.links:
                break
            assert set(response.links) >= {"next", "last"}
            response = CLIENT.get(response.links["next"]["url"], auth=emu.auth)
        assert pages == 6
        assert set(response.links) == {"first", "prev"}
        assert len(response.json()) == 7
        assert sorted(seen) == seen
        assert len(set(seen)) == 57


def test_per_is_capped_at_100_and_defaults_to_25() -> None:
    with UjetEmulator(many(130), rate_limit_per_s=FAST) as emu:
        capped = get(emu, "calls", per=500)
        assert capped.headers["Per-Page"] == "100"
        assert len(capped.json()) == 100
        assert len(get(emu, "calls").json()) == 25


def test_updated_at_filter_and_sort() -> None:
    with UjetEmulator(many(130), rate_limit_per_s=FAST) as emu:
        bound = T0 + timedelta(seconds=100)
        params = {"updated_at[from]": bound.isoformat(), "sort_column": "updated_at", "per": 100}
        up = get(emu, "calls", sort_direction="ASC", **params)
        stamps = [datetime.fromisoformat(r["updated_at"]) for r in up.json()]
        assert up.headers["Total"] == "30"
        assert stamps == sorted(stamps)
        assert min(stamps) == bound
        down = get(emu, "calls", sort_direction="DESC", **params)
        assert [r["id"] for r in down.json()] == [r["id"] for r in reversed(up.json())]
        to = get(emu, "calls", **{"updated_at[to]": "2024-05-01T09:00:09.000Z"})
        assert to.headers["Total"] == "10"
        raw = f"{emu.base_url}/calls?updated_at[from]=2024-05-01T09:02:00+00:00"  # "+" unescaped
        assert CLIENT.get(raw, auth=emu.auth).headers["Total"] == "10"


def test_rate_limit_answers_429_when_exceeded() -> None:
    with UjetEmulator(many(3), rate_limit_per_s=3) as emu:
        statuses = [get(emu, "calls").status_code for _ in range(8)]
        assert statuses[:3] == [200] * 3
        assert 429 in statuses
        limited = get(emu, "calls")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert emu.stats.rate_limited_429 == statuses.count(429) + 1
        assert emu.stats.injected_429 == 0
        admitted = [e.monotonic for e in emu.request_log if e.status == 200]
        assert all(sum(t <= u < t + 1 for u in admitted) <= 3 for t in admitted)


def test_rate_limit_never_hits_a_client_under_the_limit() -> None:
    with UjetEmulator(many(3), rate_limit_per_s=10, rate_limit_retry_after=False) as emu:
        for _ in range(8):
            assert get(emu, "calls").status_code == 200
            clock_sleep(0.12)
        emu.set_rate_limit(1)
        assert [get(emu, "calls").status_code for _ in range(2)] == [200, 429]
        assert "Retry-After" not in get(emu, "calls").headers


def test_rate_limiter_is_never_more_lenient_than_n_per_second() -> None:
    now = [0.0]
    half = RateLimiter(0.5, clock=lambda: now[0])
    assert half.admit("t") is None
    assert half.admit("t") == 2.0
    now[0] = 1.99
    assert half.admit("t") is not None
    now[0] = 2.0
    assert half.admit("t") is None
    assert RateLimiter(2.7).capacity == 2


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault.THROTTLE, 429, "7"),
        (Fault.THROTTLE_BARE, 429, None),
        (Fault.SERVER_ERROR, 500, None),
        (Fault.UNAVAILABLE, 503, None),
    ],
)
def test_status_faults(fault: Fault, status: int, retry_after: str | None) -> None:
    faults = Faults(schedule={2: fault, 4: fault}, retry_after_s=7)
    with UjetEmulator(many(3), rate_limit_per_s=FAST, faults=faults) as emu:
        responses = [get(emu, "calls") for _ in range(5)]
        assert [r.status_code for r in responses] == [200, status, 200, status, 200]
        assert responses[1].headers.get("Retry-After") == retry_after
        stats = emu.stats
        assert stats.injected_429 == (2 if status == 429 else 0)
        assert stats.server_errors_5xx == (2 if status >= 500 else 0)
        assert stats.rate_limited_429 == 0


def test_dropped_connection_and_truncated_body() -> None:
    faults = Faults(schedule={1: Fault.DROP, 2: Fault.TRUNCATE})
    with UjetEmulator(many(3), rate_limit_per_s=FAST, faults=faults) as emu:
        with pytest.raises(httpx.RemoteProtocolError):
            get(emu, "calls")
        cut = get(emu, "calls")
        assert cut.status_code == 200
        assert int(cut.headers["Content-Length"]) == len(cut.content)
        with pytest.raises(json.JSONDecodeError):
            json.loads(cut.content)
        assert get(emu, "calls").json()[0]["id"] == 1
        assert (emu.stats.dropped, emu.stats.truncated) == (1, 1)
        assert emu.request_log[0].status is None
        assert emu.request_log[0].fault is Fault.DROP


def test_slow_response_and_client_timeout() -> None:
    with UjetEmulator(
        many(1),
        rate_limit_per_s=FAST,
        faults=Faults(schedule={1: Fault.SLOW, 2: Fault.SLOW}, slow_s=0.3),
    ) as emu:
        assert get(emu, "calls").status_code == 200  # slow, but whole
        with pytest.raises(httpx.ReadTimeout):  # slower than the client waits
            CLIENT.get(f"{emu.base_url}/calls", auth=emu.auth, timeout=0.05)
        assert emu.stats.slowed == 2


def test_fault_rates_are_deterministic_and_switchable_live() -> None:
    faults = Faults(rates={Fault.SERVER_ERROR: 0.3, Fault.UNAVAILABLE: 0.2})
    runs = []
    for _ in range(2):
        with UjetEmulator(many(1), rate_limit_per_s=FAST, faults=faults, seed=5) as emu:
            runs.append([get(emu, "calls").status_code for _ in range(30)])
            emu.faults = Faults(schedule={1: Fault.UNAVAILABLE})  # numbering restarts here
            assert [get(emu, "calls").status_code for _ in range(2)] == [503, 200]
    assert runs[0] == runs[1]
    assert {200, 500, 503} <= set(runs[0])


def test_unknown_keys_in_every_object(emu: UjetEmulator) -> None:
    plain = get(emu, "calls", per=100).json()
    emu.faults = Faults(unknown_keys=True)
    noisy = get(emu, "calls", per=100).json()
    for before, after in zip(plain, noisy, strict=True):
        added = after.keys() - before.keys()
        assert len(added) == 1
        assert next(iter(added)).startswith("x_")
        assert [len(q) for q in after["queue_durations"]] == [
            len(q) + 1 for q in before["queue_durations"]
        ]
        assert len(after["end_user"]) == len(before["end_user"]) + 1
    emu.faults = Faults()
    assert get(emu, "calls", per=100).json() == plain  # the store itself was not touched


def test_mutation_bumps_updated_at_and_changes_the_record() -> None:
    now = [T0 + timedelta(days=1)]
    with UjetEmulator(frame(MIXED), rate_limit_per_s=FAST, clock=lambda: now[0]) as emu:
        answered_at = T0 + timedelta(seconds=30)
        emu.update_records(
            ["call-4"],
            outcome="answered",
            answered_at=answered_at,
            ended_at=answered_at + timedelta(minutes=2),
            talk_ms=120_000,
        )
        tail = get(emu, "calls", **{"updated_at[from]": now[0].isoformat()}).json()
        assert [r["id"] for r in tail] == [4]
        assert tail[0]["updated_at"] == "2024-05-02T09:00:00.000Z"
        assert tail[0]["queue_durations"][0]["event"] == "answered"
        row = emu.expected_contacts().filter(pl.col("contact_id") == "call-4").row(0, named=True)
        assert (row["outcome"], row["talk_ms"], row["updated_at"]) == ("answered", 120_000, now[0])
        with pytest.raises(ValueError, match="cannot change"):
            emu.update_records(["call-4"], contact_id="call-99")


def test_pages_shift_when_records_change_between_requests() -> None:
    with UjetEmulator(many(6), rate_limit_per_s=FAST, clock=lambda: T0 + timedelta(days=1)) as emu:
        order = [r["id"] for r in get(emu, "calls", per=100, sort_column="updated_at").json()]
        added: list[str] = []

        def between_pages(n: int) -> None:
            if n == 3:  # before the second page of the walk below
                emu.update_records([f"call-{order[0]}"])
                added.extend(emu.add_contacts(frame([seg("call-900", 1)])))

        emu.add_hook(between_pages)
        page1 = get(emu, "calls", per=2, sort_column="updated_at")
        page2 = get(emu, "calls", per=2, page=2, sort_column="updated_at")
        assert [r["id"] for r in page1.json()] == order[:2]
        assert [r["id"] for r in page2.json()] == order[3:5]  # order[2] slid onto page 1: skipped
        assert (page1.headers["Total"], page2.headers["Total"]) == ("6", "7")
        assert added == ["call-900"]


def test_transfers_have_one_queue_entry_per_queue(emu: UjetEmulator) -> None:
    call = next(r for r in get(emu, "calls", **{"id[]": "2"}).json())
    assert [q["menu_path_id"] for q in call["queue_durations"]] == [3001, 3002, 3003]
    assert [q["transfer"] for q in call["queue_durations"]] == [False, True, True]
    assert [q["event"] for q in call["queue_durations"]] == ["transferred", "answered", "answered"]
    assert len(call["transfers"]) == 2
    assert len(call["handle_durations"]) == 2
    assert call["queue_duration"] == call["wait_duration"] == 30 + 12 + 12


def test_menu_abandons_and_outbound_calls_are_not_queued(emu: UjetEmulator) -> None:
    calls = fetch_all(emu, "calls")
    menu = [r for r in calls if r["fail_reason"] == "eu_in_menu_abandoned"]
    outbound = [r for r in calls if r["call_type"] == "Voice Outbound" and not r["queue_durations"]]
    assert len(menu) == 3
    assert all(not r["queue_durations"] and r["adapter_fail_code"] == 20004 for r in menu)
    assert len(outbound) == 2
    assert all(r["handle_durations"] and r["outbound_number"] for r in outbound)
    assert len(calls) == 7 + 5
    filtered = get(emu, "calls", **{"call_type[]": "OutboundCall"}).json()
    assert len(filtered) == 3  # the two dial-outs and the queued outbound call-6


def test_pii_fields_carry_realistic_values(emu: UjetEmulator) -> None:
    call = get(emu, "calls", **{"id[]": "1"}).json()[0]
    phone = call["call_type"] == "Voice Inbound (IVR)"
    assert call["end_user"]["identifier"].startswith("+1555") == phone
    assert "@" in call["end_user"]["identifier"] or phone
    assert call["end_user"]["out_contact_id"]
    assert call["participants"][0]["end_user_id"]
    assert call["agent_info"]["first_name"]
    assert call["agent_info"]["last_name"]
    assert call["recording_url"].startswith("https://")
    chat = get(emu, "chats", **{"id[]": "1"}).json()[0]
    assert chat["message_count"] == 14
    assert chat["rating"] == 3


def test_stop_leaves_no_thread_behind() -> None:
    emu = UjetEmulator(
        many(2), rate_limit_per_s=FAST, faults=Faults(schedule={1: Fault.SLOW}, slow_s=30)
    )
    with emu:
        worker = threading.Thread(
            target=lambda: CLIENT.get(f"{emu.base_url}/calls", auth=emu.auth, timeout=60)
        )
        worker.start()
        clock_sleep(0.2)
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("UjetEmulator")]
