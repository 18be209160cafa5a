"""The Kore.ai Contact Volume emulator over real loopback sockets: JWT, body, paging, limits, data.

The aggregate is checked against hand-computed numbers here; that it agrees with the engine's
``callvolume.build`` (computed independently) is the reconciliation test in ``test_kore.py``.
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

from connectors.emulator import Fault, Faults, KoreEmulator
from connectors.emulator.kore.app import WindowLimiter
from connectors.emulator.kore.jwt import sign_hs256, verify_hs256
from engine import clock
from engine.clock import sleep as clock_sleep
from engine.schema import CONTACTS

T0 = datetime(2023, 6, 1, 9, 45, tzinfo=UTC)
FAR = "2030-01-01T00:00:00Z"
CLIENT = httpx.Client(timeout=5)
SEED_KEYS = [  # seed 003's sample row, in its order
    "_id",
    "intervalStartTimeStamp",
    "orgId",
    "queueId",
    "source",
    "__v",
    "intervalEndTimeStamp",
    "offeredContacts",
    "answeredContacts",
    "maxQueueHoldTimeAnswered",
    "queueHoldTimeAnswered",
    "acwDuration",
    "completedContacts",
    "conversationHandleTime",
    "conversationTalkTime",
    "holdDuration",
    "messageCount",
    "savedMessageCount",
    "csatResponses",
    "csatScore",
    "abandonedContacts",
    "maxqueueHoldTimeAbandoned",
    "queueHoldTimeAbandoned",
    "iId",
    "queueName",
]


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    CLIENT.close()


def seg(cid: str, *, at: float = 0, outcome: str = "answered", **kw: Any) -> dict[str, Any]:
    offered = T0 + timedelta(seconds=at)
    wait = kw.pop("wait", 10_000)
    answered = outcome == "answered"
    row = {
        "source": "kore",
        "contact_id": cid,
        "segment_no": 1,
        "channel": "voice",
        "direction": "inbound",
        "queue_id": "qu-1",
        "queue_name": "custom day",
        "offered_at": offered,
        "answered_at": offered + timedelta(milliseconds=wait) if answered else None,
        "ended_at": offered + timedelta(minutes=5) if outcome != "open" else None,
        "outcome": outcome,
        "wait_ms": wait,
        "talk_ms": 60_000 if answered else 0,
        "hold_ms": 0,
        "acw_ms": 4_000 if answered else 0,
        "sl_threshold_ms": None,
        "messages": 0,
        "csat_responses": 0,
        "csat_score": 0,
        "updated_at": offered + timedelta(minutes=5),
    }
    return row | kw


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CONTACTS)


MIXED = [
    seg("c1", wait=34_035, talk_ms=64_094, acw_ms=3_949, csat_responses=1, csat_score=1),
    seg("c2", at=60, wait=1_500, hold_ms=2_000),
    seg("c3", at=120, outcome="abandoned", wait=180_150),
    seg("c4", at=130, outcome="abandoned", wait=2_000),
    seg("c5", at=140, outcome="flow_out", wait=9_000),
    seg("c6", at=150, outcome="open", wait=5_000),
    seg("c7", at=160, ended_at=None, talk_ms=0, acw_ms=0),  # answered, still talking
    seg("c8", at=170, direction="outbound"),  # never offered to a queue
    seg("c9", at=900, wait=2_000),  # the next interval
    seg("m1", at=30, channel="chat", queue_id="qu-2", queue_name="Web", messages=12),
]


@pytest.fixture
def emu() -> Iterator[KoreEmulator]:
    with KoreEmulator(frame(MIXED), rate_limit=None) as e:
        yield e


def post(emu: KoreEmulator, token: str | None = None, **body: Any) -> httpx.Response:
    payload = {"orgId": emu.org_id, "toTimeStamp": FAR} | body
    headers = {"auth": emu.token() if token is None else token}
    return CLIENT.post(emu.url, json=payload, headers=headers)


def fetch_all(emu: KoreEmulator, limit: int = 2, **body: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = post(emu, skip=len(rows), limit=limit, **body).json()
        rows += page["CallVolumeUpdate"]
        if not page["hasMore"]:
            return rows


def test_rows_are_the_seed_shape_with_hand_computed_values(emu: KoreEmulator) -> None:
    body = post(emu).json()
    assert list(body) == ["hasMore", "CallVolumeUpdate", "totalCount"]
    assert (body["hasMore"], body["totalCount"]) == (False, 3)
    voice, chat, later = body["CallVolumeUpdate"]
    assert list(voice) == SEED_KEYS
    assert (voice["queueId"], chat["queueId"], later["intervalStartTimeStamp"]) == (
        "qu-1",
        "qu-2",
        "2023-06-01T10:00:00.000Z",
    )
    assert voice["intervalStartTimeStamp"] == "2023-06-01T09:45:00.000Z"
    assert voice["intervalEndTimeStamp"] == "2023-06-01T10:00:00.000Z"
    assert (voice["source"], chat["source"], voice["orgId"], voice["__v"]) == (
        "voice",
        "chat",
        emu.org_id,
        0,
    )
    assert len(voice["_id"]) == 24
    assert int(voice["_id"], 16) >= 0
    assert voice["iId"].startswith("st-")
    expected = {
        "offeredContacts": 7,  # c1..c7: the outbound c8 is not offered
        "answeredContacts": 3,
        "completedContacts": 2,  # c7 has not ended
        "abandonedContacts": 2,
        "queueHoldTimeAnswered": 34_035 + 1_500 + 10_000,
        "maxQueueHoldTimeAnswered": 34_035,
        "queueHoldTimeAbandoned": 180_150 + 2_000,
        "maxqueueHoldTimeAbandoned": 180_150,
        "conversationTalkTime": 64_094 + 60_000,
        "holdDuration": 2_000,
        "acwDuration": 3_949 + 4_000,
        "conversationHandleTime": 64_094 + 60_000 + 2_000 + 3_949 + 4_000,
        "csatResponses": 1,
        "csatScore": 1,
        "messageCount": 0,
        "savedMessageCount": 0,
        "queueName": "custom day",
    }
    assert {k: voice[k] for k in expected} == expected
    assert (chat["messageCount"], chat["queueName"], later["offeredContacts"]) == (12, "Web", 1)
    assert later["maxqueueHoldTimeAbandoned"] == 0


def test_seconds_unit_rounds_half_up() -> None:
    rows = [seg("c1", wait=1_500, talk_ms=2_499, acw_ms=0)]
    with KoreEmulator(frame(rows), rate_limit=None, unit="s") as emu:
        row = post(emu).json()["CallVolumeUpdate"][0]
        assert (row["queueHoldTimeAnswered"], row["conversationTalkTime"]) == (2, 2)
        expected = emu.expected_callvolume().row(0, named=True)
        assert (expected["wait_answered_ms"], expected["talk_ms"]) == (2_000, 2_000)


def test_expected_callvolume_is_what_is_served(emu: KoreEmulator) -> None:
    expected = emu.expected_callvolume()
    served = post(emu).json()["CallVolumeUpdate"]
    assert expected.height == len(served)
    assert expected["offered"].to_list() == [r["offeredContacts"] for r in served]
    assert expected["wait_abandoned_max_ms"].to_list() == [
        r["maxqueueHoldTimeAbandoned"] for r in served
    ]
    assert expected["interval_start_utc"].to_list() == [T0, T0, T0 + timedelta(minutes=15)]


def test_skip_limit_paging_and_time_window(emu: KoreEmulator) -> None:
    everything = post(emu).json()["CallVolumeUpdate"]
    assert fetch_all(emu, limit=1) == everything
    first = post(emu, skip=0, limit=2).json()
    assert (first["hasMore"], first["totalCount"], len(first["CallVolumeUpdate"])) == (True, 3, 2)
    assert post(emu, skip=5, limit=2).json() == {
        "hasMore": False,
        "CallVolumeUpdate": [],
        "totalCount": 3,
    }
    # from inclusive, to exclusive, on the interval start; from is optional
    window = post(emu, fromTimeStamp="2023-06-01T10:00:00Z").json()
    assert [r["intervalStartTimeStamp"] for r in window["CallVolumeUpdate"]] == [
        "2023-06-01T10:00:00.000Z"
    ]
    assert post(emu, toTimeStamp="2023-06-01T10:00:00Z").json()["totalCount"] == 2
    assert post(emu, toTimeStamp="2023-06-01T09:45:00+00:00").json()["totalCount"] == 0


def test_bad_requests(emu: KoreEmulator) -> None:
    assert post(emu, toTimeStamp=None).status_code == 400
    assert post(emu, toTimeStamp="tomorrow").status_code == 400
    assert post(emu, orgId="o-other").status_code == 400
    assert post(emu, skip=-1).status_code == 400
    assert post(emu, limit=0).status_code == 400
    assert post(emu, limit="10").status_code == 400
    auth = {"auth": emu.token()}
    assert CLIENT.post(emu.url, content=b"[1]", headers=auth).status_code == 400
    assert CLIENT.post(emu.url, content=b"{", headers=auth).status_code == 400
    other = emu.url.replace(emu.account_id, "someone-else")
    assert CLIENT.post(other, json={}, headers=auth).status_code == 404
    assert CLIENT.get(emu.url, headers=auth).status_code == 405


def test_jwt_is_verified(emu: KoreEmulator) -> None:
    now = clock.now()
    assert post(emu).status_code == 200
    assert post(emu, token=emu.token(exp=now + timedelta(minutes=5))).status_code == 200
    wrong = sign_hs256({"appId": emu.app_id}, "s3cr3t-guess")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    unsigned = header + "." + emu.token().split(".")[1] + "."
    refused = [
        wrong,
        unsigned,
        emu.token(app_id="cs-someone-else"),
        emu.token(exp=now - timedelta(seconds=1)),
        "not-a-jwt",
        "",
    ]
    for token in refused:
        response = post(emu, token=token)
        assert response.status_code == 401
        assert emu.secret not in response.text
        assert "s3cr3t" not in response.text
    no_header = CLIENT.post(emu.url, json={"orgId": emu.org_id, "toTimeStamp": FAR})
    bearer = CLIENT.post(
        emu.url, json={"orgId": emu.org_id}, headers={"Authorization": f"Bearer {emu.token()}"}
    )
    assert no_header.status_code == bearer.status_code == 401
    assert emu.stats.unauthorized_401 == len(refused) + 2


def test_hs256_matches_the_rfc_7515_example() -> None:
    # RFC 7515 appendix A.1: a JWS signed HS256 with an octet key (a foreign, independent vector)
    key = base64.urlsafe_b64decode(
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow=="
    )
    jws = (
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    )
    assert verify_hs256(jws, key) == {
        "iss": "joe",
        "exp": 1300819380,
        "http://example.com/is_root": True,
    }
    assert verify_hs256(jws[:-1] + "l", key) is None
    assert verify_hs256(jws, key[:-1]) is None


def test_rate_limit_is_per_account_per_window() -> None:
    with KoreEmulator(frame(MIXED), rate_limit=3, rate_window_s=1.0) as emu:
        statuses = [post(emu).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = post(emu)
        assert int(limited.headers["Retry-After"]) >= 1
        assert emu.stats.rate_limited_429 == 3
        clock_sleep(1.05)
        assert post(emu).status_code == 200
    now = [0.0]
    minute = WindowLimiter(60, 60.0, clock=lambda: now[0])
    assert all(minute.admit("acc") is None for _ in range(60))
    assert minute.admit("acc") == 60.0
    assert minute.admit("other") is None
    now[0] = 59.9
    assert minute.admit("acc") is not None
    now[0] = 60.0
    assert minute.admit("acc") is None


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault.THROTTLE, 429),
        (Fault.THROTTLE_BARE, 429),
        (Fault.SERVER_ERROR, 500),
        (Fault.UNAVAILABLE, 503),
    ],
)
def test_status_faults(emu: KoreEmulator, fault: Fault, status: int) -> None:
    emu.faults = Faults(schedule={2: fault}, retry_after_s=3)
    assert [post(emu).status_code for _ in range(3)] == [200, status, 200]
    throttle = fault is Fault.THROTTLE
    assert emu.request_log[1].fault is fault
    assert emu.stats.injected_429 == (status == 429)
    assert (emu.request_log[1].status, throttle) == (status, throttle)


def test_dropped_truncated_and_slow(emu: KoreEmulator) -> None:
    emu.faults = Faults(schedule={1: Fault.DROP, 2: Fault.TRUNCATE, 3: Fault.SLOW}, slow_s=0.2)
    with pytest.raises(httpx.RemoteProtocolError):
        post(emu)
    cut = post(emu)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert post(emu).json()["totalCount"] == 3  # slow, but whole
    assert (emu.stats.dropped, emu.stats.truncated, emu.stats.slowed) == (1, 1, 1)
    assert [entry.fault for entry in emu.request_log[-3:]] == [
        Fault.DROP,
        Fault.TRUNCATE,
        Fault.SLOW,
    ]


def test_unknown_keys_everywhere(emu: KoreEmulator) -> None:
    plain = post(emu).json()
    emu.faults = Faults(unknown_keys=True)
    noisy = post(emu).json()
    assert len(noisy) == len(plain) + 1
    for before, after in zip(plain["CallVolumeUpdate"], noisy["CallVolumeUpdate"], strict=True):
        (added,) = after.keys() - before.keys()
        assert added.startswith("x_")


def test_rows_change_while_paging(emu: KoreEmulator) -> None:
    before = post(emu).json()["CallVolumeUpdate"]

    def between_pages(n: int) -> None:
        if n == 3:  # before the second page: a late answer and a new queue in the first interval
            emu.upsert_contacts(frame([seg("c6", at=150, wait=5_000), seg("n1", queue_id="qu-0")]))

    emu.add_hook(between_pages)
    page1 = post(emu, skip=0, limit=2).json()
    page2 = post(emu, skip=2, limit=2).json()
    assert (page1["totalCount"], page2["totalCount"]) == (3, 4)
    assert [r["queueId"] for r in page1["CallVolumeUpdate"]] == ["qu-1", "qu-2"]
    assert [r["queueId"] for r in page2["CallVolumeUpdate"]] == ["qu-2", "qu-1"]  # shifted
    now = {r["_id"]: r for r in post(emu).json()["CallVolumeUpdate"]}
    voice = now[before[0]["_id"]]
    assert (voice["__v"], voice["answeredContacts"]) == (1, before[0]["answeredContacts"] + 1)
    assert now[before[1]["_id"]]["__v"] == 0  # unchanged rows keep their version


def test_perturb_seeds_a_discrepancy(emu: KoreEmulator) -> None:
    clean = emu.expected_callvolume()
    row_id = emu.perturb(T0, "qu-1", "voice", offeredContacts=1, holdDuration=-500)
    served = {r["_id"]: r for r in post(emu).json()["CallVolumeUpdate"]}
    assert (served[row_id]["offeredContacts"], served[row_id]["holdDuration"]) == (8, 1_500)
    assert served[row_id]["__v"] == 1
    changed = emu.expected_callvolume()
    assert (changed["offered"][0], changed["hold_ms"][0]) == (8, 1_500)
    emu.perturb(T0 + timedelta(minutes=15), "qu-1", "voice", drop=True)
    assert post(emu).json()["totalCount"] == 2
    with pytest.raises(KeyError):
        emu.perturb(T0, "qu-9", "voice", offeredContacts=1)
    with pytest.raises(ValueError, match="not a measure"):
        emu.perturb(T0, "qu-1", "voice", offered=1)
    emu.clear_perturbations()
    assert emu.expected_callvolume().equals(clean)


def test_total_count_can_lie_but_has_more_does_not() -> None:
    with KoreEmulator(frame(MIXED), rate_limit=None, total_count_offset=50) as emu:
        last = post(emu, skip=2, limit=2).json()
        assert (last["hasMore"], last["totalCount"], len(last["CallVolumeUpdate"])) == (
            False,
            53,
            1,
        )


def test_empty_emulator_and_queue_name_rule() -> None:
    with KoreEmulator(rate_limit=None) as emu:
        assert post(emu).json() == {"hasMore": False, "CallVolumeUpdate": [], "totalCount": 0}
    late = T0 + timedelta(hours=1)
    rows = [
        seg("a", queue_name="Old"),
        seg("b", queue_name="New", updated_at=late),
        seg("c", queue_name="Alpha", updated_at=late),  # tie: the greatest name wins
        seg("d", queue_id="qu-7", queue_name=None),  # no name at all: the id
    ]
    names = KoreEmulator(frame(rows), rate_limit=None).expected_callvolume()["queue_name"]
    assert names.to_list() == ["New", "qu-7"]
