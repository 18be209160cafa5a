"""The Mindful emulator over real loopback sockets: tokens, hour files, metrics, limits, faults.

The round-trip test decodes the served JSON with a small reference decoder written from the
mapping table in ``connectors.emulator.mindful.render`` and checks it rebuilds the canonical input.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import SecretStr

from connectors.emulator import Fault, Faults, MindfulEmulator
from connectors.emulator.mindful.app import METRICS_PATH, hour_path
from connectors.landing import pii_hash
from engine.clock import sleep as clock_sleep
from engine.demo.callbacks import generate_attempts
from engine.schema import CALLBACK_ATTEMPTS
from engine.tables.callback_metrics import document
from engine.tables.callback_requests import requests

T0 = datetime(2023, 6, 8, 12, tzinfo=UTC)
KEY = SecretStr("hash-key-for-tests")
TOKEN = "static-test-token"  # noqa: S105 - the emulator's fake static token
BEARER = {"Authorization": f"Bearer {TOKEN}"}
FAST = 1000.0
CLIENT = httpx.Client(timeout=5)
#: Seed 001's record, key for key and in order, with the JSON type of each example value.
SEED_KEYS = [
    "activeDuration",
    "actualCallbackTime",
    "agentBusy",
    "agentDelay",
    "agentHangup",
    "agentLegError",
    "agentLegRejected",
    "agentLegTimeout",
    "agentWaitDuration",
    "ani",
    "callTargetId",
    "callTargetName",
    "choseToHold",
    "createdAt",
    "customerBusy",
    "customerDelay",
    "customerHangup",
    "customerLegError",
    "customerLegRejected",
    "customerLegTimeout",
    "customerRescheduled",
    "customerWaitDuration",
    "disconnectRescue",
    "duplicateCallback",
    "earlyHangup",
    "endedAt",
    "endOfBusinessDay",
    "estimatedCallbackTime",
    "estimatedFor",
    "estimatePercentAccuracy",
    "firstPartyCalled",
    "hasRetry",
    "id",
    "leaveVoicemail",
    "maxEcbtExceeded",
    "maxScheduledCallsExceeded",
    "maxTollRateExceeded",
    "metadata",
    "nextDayCallbackOffered",
    "nextDayCallbackScheduled",
    "originalId",
    "outcome",
    "outsideHours",
    "phoneNumber",
    "priorityQueueTimedOut",
    "processedAt",
    "punctuality",
    "registrationDuration",
    "retryAttempt",
    "segmentName",
    "source",
    "systemHangup",
    "talkDuration",
    "type",
    "waitlistDelay",
    "wasPunctual",
]
_NUMBERS = {
    "activeDuration",
    "actualCallbackTime",
    "agentDelay",
    "agentWaitDuration",
    "customerDelay",
    "customerWaitDuration",
    "estimatedCallbackTime",
    "punctuality",
    "registrationDuration",
    "retryAttempt",
    "talkDuration",
    "waitlistDelay",
}
_STRINGS = {
    "ani",
    "callTargetId",
    "callTargetName",
    "createdAt",
    "endedAt",
    "estimatedFor",
    "firstPartyCalled",
    "id",
    "originalId",
    "outcome",
    "phoneNumber",
    "processedAt",
    "segmentName",
    "source",
    "type",
}


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    CLIENT.close()


def attempt(aid: str, at: datetime, **kw: Any) -> dict[str, Any]:
    """A canonical attempt in the emulator's normal form (whole seconds, ms instants)."""
    row = {
        "source": "mindful",
        "attempt_id": aid,
        "original_id": aid,
        "retry_attempt": 0,
        "has_retry": False,
        "call_target_id": "5298",
        "call_target_name": "Calls test",
        "type": "asap",
        "first_party_called": "customer",
        "source_type": "digital",
        "created_at": at,
        "processed_at": at + timedelta(seconds=10),
        "estimated_for": at + timedelta(seconds=9),
        "ended_at": at + timedelta(seconds=78),
        "outcome": "successful",
        "callback_ms": 10_000,
        "estimated_callback_ms": 9_000,
        "customer_wait_ms": 12_000,
        "talk_ms": 55_000,
        "punctuality_ms": 1_000,
        "was_punctual": True,
        "customer_key": f"key-{aid}",
    }
    return row | kw


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)


@pytest.fixture
def emu() -> Iterator[MindfulEmulator]:
    attempts = generate_attempts(seed=3, start=T0, days=1, scale=0.1)
    with MindfulEmulator(
        attempts, static_token=TOKEN, rate_limit_per_s=FAST, metrics_rate_limit_per_s=FAST
    ) as e:
        yield e


def hour(emu: MindfulEmulator, start: datetime, **headers: str) -> httpx.Response:
    return CLIENT.get(emu.base_url + hour_path(start), headers=headers or BEARER)


def metrics(emu: MindfulEmulator, **params: str) -> httpx.Response:
    return CLIENT.get(emu.base_url + METRICS_PATH, params=params, headers=BEARER)


def token(emu: MindfulEmulator, **form: str) -> httpx.Response:
    data = {"grant_type": "client_credentials"} | form
    auth = None if "client_id" in form else (emu.client_id, emu.client_secret)
    return CLIENT.post(emu.token_url, data=data, auth=auth)


def ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def ms(seconds: int | None) -> int | None:
    return None if seconds is None else 1000 * seconds


def decode(records: list[dict[str, Any]]) -> pl.DataFrame:
    """A reference inverse of the mapping in ``mindful_render`` (what the connector must do)."""
    outcomes = {"success": "successful", "cancelled": "canceled", "not completed": "other"}
    rows = []
    for r in records:
        if r["type"] not in ("asap", "scheduled"):
            continue
        source = r["source"]
        kind = None if source is None else "digital" if source.startswith("CBWidget:") else "voice"
        phone = r["phoneNumber"]
        rows.append(
            {
                "source": "mindful",
                "attempt_id": r["id"],
                "original_id": r["originalId"],
                "retry_attempt": r["retryAttempt"],
                "has_retry": r["hasRetry"],
                "call_target_id": r["callTargetId"],
                "call_target_name": r["callTargetName"],
                "type": r["type"],
                "first_party_called": (r["firstPartyCalled"] or "").removesuffix("_first") or None,
                "source_type": kind,
                "created_at": ts(r["createdAt"]),
                "processed_at": ts(r["processedAt"]),
                "estimated_for": ts(r["estimatedFor"]),
                "ended_at": ts(r["endedAt"]),
                "outcome": outcomes.get(r["outcome"].lower(), r["outcome"].lower()),
                "callback_ms": ms(r["actualCallbackTime"]),
                "estimated_callback_ms": ms(r["estimatedCallbackTime"]),
                "customer_wait_ms": ms(r["customerWaitDuration"]),
                "talk_ms": ms(r["talkDuration"]),
                "punctuality_ms": ms(r["punctuality"]),
                "was_punctual": r["wasPunctual"],
                "customer_key": None if phone is None else pii_hash(re.sub(r"\D", "", phone), KEY),
            }
        )
    return frame(rows).sort("attempt_id")


def all_hours(emu: MindfulEmulator, start: datetime, hours: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(hours):
        response = hour(emu, start + timedelta(hours=k))
        assert response.status_code == 200
        out += response.json()["data"]
    return out


def test_round_trip_through_the_hour_files(emu: MindfulEmulator) -> None:
    served = all_hours(emu, T0, 30)  # retries run past the generated day
    assert len(served) == len({r["id"] for r in served}) == len(emu.records())
    assert_frame_equal(decode(served), emu.expected_attempts(KEY))


def test_normal_form_rounds_seconds_and_truncates_milliseconds() -> None:
    loose = attempt("a1", T0 + timedelta(microseconds=123_456), callback_ms=10_499, talk_ms=500)
    loose |= {"punctuality_ms": -1_500, "estimated_callback_ms": 9_500, "source": "x"}
    with MindfulEmulator(frame([loose]), static_token=TOKEN, rate_limit_per_s=None) as e:
        (served,) = hour(e, T0).json()["data"]
        assert served["createdAt"] == "2023-06-08T12:00:00.123Z"
        assert (served["actualCallbackTime"], served["talkDuration"]) == (10, 1)
        assert (served["punctuality"], served["estimatedCallbackTime"]) == (-1, 10)
        expected = e.expected_attempts(KEY)
        assert expected["source"].to_list() == ["mindful"]
        assert_frame_equal(decode([served]), expected)
    with pytest.raises(ValueError, match="must not be null"):
        MindfulEmulator(frame([attempt("a2", T0, outcome=None)]))


def test_records_have_the_seed_shape(emu: MindfulEmulator) -> None:
    records = emu.records()
    for r in records:
        assert list(r) == SEED_KEYS
        for k, v in r.items():
            if v is None:
                continue
            if k in _NUMBERS:
                assert isinstance(v, int), k
                assert not isinstance(v, bool), k
            elif k in _STRINGS:
                assert isinstance(v, str), k
            elif k == "metadata":
                assert isinstance(v, dict)
            elif k == "estimatePercentAccuracy":
                assert isinstance(v, float)
            else:
                assert isinstance(v, bool), k
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["createdAt"])
    spellings = {r["firstPartyCalled"] for r in records}
    assert spellings == {"agent", "customer", "customer_first"}
    assert {r["outcome"] for r in records} >= {"Success", "Unavailable", "Not Completed"}
    sources = {r["source"].split(":")[0][:2] for r in records}
    assert sources == {"CB", "Ph", "+1"}  # widget, "Phone:+1…" and a bare number
    assert any(r["metadata"] for r in records)
    assert any(r["ani"] and r["ani"] != r["phoneNumber"] for r in records)


def test_hour_boundaries_and_the_meaning_of_00_and_24() -> None:
    rows = [
        attempt("on-the-hour", T0),
        attempt("last-ms", T0 - timedelta(milliseconds=1)),
        attempt("midnight", datetime(2023, 6, 9, tzinfo=UTC)),
        attempt("late", datetime(2023, 6, 8, 23, 59, 59, 999_000, tzinfo=UTC)),
    ]
    with MindfulEmulator(frame(rows), static_token=TOKEN, rate_limit_per_s=None) as e:

        def ids(path: str) -> list[str]:
            response = CLIENT.get(f"{e.base_url}/v2/data/historical/{path}", headers=BEARER)
            assert response.status_code == 200, path
            return [r["id"] for r in response.json()["data"]]

        assert ids("20230608/13") == ["on-the-hour"]  # [12:00, 13:00)
        assert ids("20230608/12") == ["last-ms"]  # [11:00, 12:00)
        assert ids("20230608/24") == ids("20230609/00") == ["late"]
        assert ids("20230609/01") == ["midnight"]
        assert hour_path(T0) == "/v2/data/historical/20230608/13"
        for bad in ("20230608/25", "20230608/1", "2023-06-08/13", "20230631/01", "20230608", "x"):
            response = CLIENT.get(f"{e.base_url}/v2/data/historical/{bad}", headers=BEARER)
            assert response.status_code == 400, bad
        assert CLIENT.get(f"{e.base_url}/v2/data/other", headers=BEARER).status_code == 404
        assert CLIENT.post(e.base_url + hour_path(T0), headers=BEARER).status_code == 405


def test_oauth2_tokens_basic_and_form_auth_and_expiry() -> None:
    now = [100.0]
    with MindfulEmulator(
        frame([attempt("a", T0)]), token_lifetime_s=5.5, token_clock=lambda: now[0]
    ) as e:
        issued = token(e)
        assert issued.status_code == 200
        body = issued.json()
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 5)
        via_form = token(e, client_id=e.client_id, client_secret=e.client_secret)
        assert via_form.status_code == 200
        assert via_form.json()["access_token"] != body["access_token"]
        bearer = f"Bearer {body['access_token']}"
        assert hour(e, T0, Authorization=bearer).status_code == 200
        now[0] += 5.49
        assert hour(e, T0, Authorization=bearer).status_code == 200
        now[0] += 0.01
        expired = hour(e, T0, Authorization=bearer)
        assert expired.status_code == 401
        assert body["access_token"] not in expired.text + str(expired.headers)
        assert expired.headers["WWW-Authenticate"].startswith("Bearer")
        assert token(e, client_id=e.client_id, client_secret="guess").status_code == 401  # noqa: S106
        wrong = CLIENT.post(e.token_url, data={"grant_type": "password"}, auth=("emu-client", "x"))
        assert wrong.status_code == 401
        bad_grant = CLIENT.post(
            e.token_url, data={"grant_type": "password"}, auth=(e.client_id, e.client_secret)
        )
        assert bad_grant.status_code == 400
        assert hour(e, T0).status_code == 401  # no static token configured
        assert CLIENT.get(e.token_url, auth=(e.client_id, e.client_secret)).status_code == 405
        fresh = f"Bearer {token(e).json()['access_token']}"
        e.revoke_tokens()
        assert hour(e, T0, Authorization=fresh).status_code == 401
        assert e.tokens_issued == 3
        assert e.stats.unauthorized_401 == 5


def test_static_token_mode(emu: MindfulEmulator) -> None:
    assert hour(emu, T0).status_code == 200
    assert hour(emu, T0, Authorization="Bearer nope").status_code == 401
    assert hour(emu, T0, Authorization=f"Basic {TOKEN}").status_code == 401
    assert emu.tokens_issued == 0


def test_metrics_equal_the_engine_document(emu: MindfulEmulator) -> None:
    attempts = emu.expected_attempts(KEY).lazy()
    cases: list[dict[str, str]] = [
        {"timeBegin": "2023-06-08", "timeEnd": "2023-06-10"},
        {"timeBegin": "2023-06-08T14:00:00Z", "timeEnd": "2023-06-08T18:00:00Z"},
        {"timeBegin": "2023-06-08", "timeEnd": "2023-06-10", "callTargetId": "4380,4383"},
        {"timeBegin": "2023-06-08", "timeEnd": "2023-06-10", "firstPartyCalled": "agent"},
        {"timeBegin": "2023-06-08", "timeEnd": "2023-06-10", "sourceType": "voice"},
        {"timeBegin": "2023-06-08", "timeEnd": "2023-06-10", "type": "scheduled"},
        {"timeBegin": "2023-06-01", "timeEnd": "2023-06-02"},  # empty: zeros
    ]
    names = {
        "callTargetId": "call_target_id",
        "firstPartyCalled": "first_party_called",
        "sourceType": "source_type",
        "type": "type",
    }
    for params in cases:
        served = metrics(emu, **params)
        assert served.status_code == 200
        filters = {names[k]: v for k, v in params.items() if k in names}
        ours = document(
            requests(attempts),
            begin=datetime.fromisoformat(params["timeBegin"]).replace(tzinfo=UTC),
            end=datetime.fromisoformat(params["timeEnd"]).replace(tzinfo=UTC),
            **filters,
        )
        assert served.json() == ours, params
    assert metrics(emu, **cases[0]).json()["data"]["totalCallbacks"] > 50


def test_metrics_parameters_are_checked(emu: MindfulEmulator) -> None:
    day = {"timeBegin": "2023-06-08", "timeEnd": "2023-06-09"}
    assert metrics(emu, timeBegin="2023-06-08").status_code == 400
    assert metrics(emu, timeBegin="08/06/2023", timeEnd="2023-06-09").status_code == 400
    assert metrics(emu, timeBegin="2023-06-09", timeEnd="2023-06-08").status_code == 400
    assert metrics(emu, **day, firstPartyCalled="robot").status_code == 400
    assert metrics(emu, **day, sourceType="fax").status_code == 400
    assert metrics(emu, **day, type="later").status_code == 400
    assert metrics(emu, **day, type="ASAP").status_code == 200
    empty = metrics(emu, timeBegin="2020-01-01", timeEnd="2020-01-02").json()["data"]
    assert empty["totalCallbacks"] == 0
    assert set(empty["performance"]["retries"]) == {
        "'1'",
        "'2'",
        "'3'",
        "'4'",
        "'5'",
        "over5",
        "totalCallbacksWithRetries",
        "totalRetryAttempts",
    }
    assert all(v == 0 for v in empty["performance"]["rcsl"].values())


def test_holds_are_served_but_are_not_callbacks() -> None:
    attempts = generate_attempts(seed=4, start=T0, days=1, scale=0.05)
    with MindfulEmulator(attempts, static_token=TOKEN, rate_limit_per_s=None, extra_holds=7) as e:
        holds = [r for r in e.records() if r["type"] == "unknown"]
        assert len(holds) == e.not_callbacks == 7
        assert all(r["choseToHold"] and r["outcome"] == "Chose Hold" for r in holds)
        assert all(r["ani"] and r["phoneNumber"] is None for r in holds)
        assert e.expected_attempts(KEY).height == attempts.height
        day = {"timeBegin": "2023-06-08", "timeEnd": "2023-06-10"}
        with_holds = metrics(e, **day).json()
        assert with_holds == document(
            requests(attempts.lazy()), begin=T0 - timedelta(hours=12), end=T0 + timedelta(days=2)
        )


def test_updates_change_records_in_place_and_move_hours() -> None:
    rows = [attempt("a", T0), attempt("b", T0 + timedelta(minutes=5))]
    with MindfulEmulator(frame(rows), static_token=TOKEN, rate_limit_per_s=None) as e:
        e.update_attempts(["a"], outcome="unavailable", has_retry=True, talk_ms=None)
        e.update_attempts(["b"], created_at=T0 + timedelta(hours=1, minutes=5))
        first = hour(e, T0).json()["data"]
        assert [r["id"] for r in first] == ["a"]
        assert (first[0]["outcome"], first[0]["hasRetry"]) == ("Unavailable", True)
        assert first[0]["talkDuration"] is None
        assert [r["id"] for r in hour(e, T0 + timedelta(hours=1)).json()["data"]] == ["b"]
        assert_frame_equal(
            decode(first + hour(e, T0 + timedelta(hours=1)).json()["data"]),
            e.expected_attempts(KEY),
        )
        with pytest.raises(ValueError, match="cannot change"):
            e.update_attempts(["a"], attempt_id="z")
        with pytest.raises(ValueError, match="already served"):
            e.add_attempts(frame([attempt("a", T0)]))


def test_raw_records_are_served_as_given() -> None:
    with MindfulEmulator(frame([attempt("a", T0)]), static_token=TOKEN, rate_limit_per_s=None) as e:
        e.add_raw_records([{"id": "bad", "createdAt": "yesterday"}], hour=T0)
        assert [r["id"] for r in hour(e, T0).json()["data"]] == ["a", "bad"]
        assert [r["id"] for r in e.records()] == ["a"]


def test_rate_limits_per_endpoint_group() -> None:
    with MindfulEmulator(
        frame([attempt("a", T0)]),
        static_token=TOKEN,
        rate_limit_per_s=4,
        metrics_rate_limit_per_s=2,
    ) as e:
        data = [hour(e, T0).status_code for _ in range(6)]
        day = {"timeBegin": "2023-06-08", "timeEnd": "2023-06-09"}
        stats = [metrics(e, **day).status_code for _ in range(4)]
        assert data[:4] == [200] * 4
        assert 429 in data[4:]
        assert stats[:2] == [200, 200]
        assert 429 in stats[2:]
        limited = hour(e, T0)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert e.stats.injected_429 == 0
        assert e.stats.rate_limited_429 == data.count(429) + stats.count(429) + 1
        e.set_rate_limit(None, metrics_per_s=None)
        assert all(hour(e, T0).status_code == 200 for _ in range(10))


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault.THROTTLE, 429, "3"),
        (Fault.THROTTLE_BARE, 429, None),
        (Fault.SERVER_ERROR, 500, None),
        (Fault.UNAVAILABLE, 503, None),
    ],
)
def test_status_faults(fault: Fault, status: int, retry_after: str | None) -> None:
    faults = Faults(schedule={2: fault}, retry_after_s=3)
    with MindfulEmulator(
        frame([attempt("a", T0)]), static_token=TOKEN, rate_limit_per_s=FAST, faults=faults
    ) as e:
        responses = [hour(e, T0) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, status, 200]
        assert responses[1].headers.get("Retry-After") == retry_after


def test_dropped_truncated_slow_and_unknown_keys() -> None:
    faults = Faults(schedule={1: Fault.DROP, 2: Fault.TRUNCATE, 3: Fault.SLOW}, slow_s=0.2)
    with MindfulEmulator(
        frame([attempt("a", T0)]), static_token=TOKEN, rate_limit_per_s=FAST, faults=faults
    ) as e:
        with pytest.raises(httpx.RemoteProtocolError):
            hour(e, T0)
        cut = hour(e, T0)
        with pytest.raises(json.JSONDecodeError):
            json.loads(cut.content)
        plain = hour(e, T0).json()  # slow, but whole
        assert [entry.fault for entry in e.request_log[:3]] == [
            Fault.DROP,
            Fault.TRUNCATE,
            Fault.SLOW,
        ]
        e.faults = Faults(unknown_keys=True)
        noisy = hour(e, T0).json()
        assert len(noisy) == 2  # the envelope got one
        (before,), (after,) = plain["data"], noisy["data"]
        assert len(after) == len(before) + 1
        assert len(after["metadata"]) == len(before["metadata"]) + 1
        assert (e.stats.dropped, e.stats.truncated, e.stats.slowed) == (1, 1, 1)


def test_stop_leaves_no_thread_behind() -> None:
    e = MindfulEmulator(
        frame([attempt("a", T0)]),
        static_token=TOKEN,
        faults=Faults(schedule={1: Fault.SLOW}, slow_s=30),
    )
    with e:
        worker = threading.Thread(target=lambda: hour(e, T0))
        worker.start()
        clock_sleep(0.2)
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("MindfulEmulator")]
