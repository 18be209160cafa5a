"""``serve`` answers bad input with a clear error, never a traceback or a 500: out-of-range
numbers and instants, a body nested too deeply, a parameter given twice; an error no route
expected is a 500 in the vendor's shape with its one log line (and no traceback, no message)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.types import Receive, Scope, Send

from engine.serve.app import BodyLimit
from engine.serve.documents import StoreDocuments
from tests.engine.serve_support import (
    APP_ID,
    BODY,
    CLIENT_ID,
    CLIENT_SECRET,
    KORE_SECRET,
    KORE_URL,
    METRICS,
    TOKEN,
    attempts,
    running,
    write_store,
)

DAY = "timeBegin=2026-10-01&timeEnd=2026-10-02"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LEAK = "leaked-detail-0123456789"  #: what an unexpected error's message says: never shown


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("errors") / "out")


@pytest.fixture(scope="module")
def origin(store: Path) -> Iterator[str]:
    with running(store) as url:  # the default body limit: 16 KiB
        yield url


def auth(**claims: object) -> dict[str, str]:
    return {"auth": jwt.encode({"appId": APP_ID, **claims}, KORE_SECRET, algorithm="HS256")}


def kore(origin: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(origin + KORE_URL, json=body, headers=auth())


def test_a_skip_past_the_last_row_is_an_empty_last_page(origin: str) -> None:
    total = kore(origin, BODY).json()["totalCount"]
    assert total > 2
    for skip in (total, total + 1, 2**53, 2**63, 10**30):
        r = kore(origin, BODY | {"skip": skip})
        assert r.status_code == 200, skip
        assert r.json() == {"hasMore": False, "CallVolumeUpdate": [], "totalCount": total}


@pytest.mark.parametrize(
    ("name", "value"),
    [("fromTimeStamp", "0001-01-01T00:00:00+01:00"), ("toTimeStamp", "9999-12-31T23:59:59-01:00")],
)
def test_an_instant_outside_the_years_1_to_9999_in_utc_is_400(
    origin: str, name: str, value: str
) -> None:
    r = kore(origin, BODY | {name: value})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {"msg": f"{name} is out of range: years 1 to 9999 in UTC", "code": 400}
    ]


@pytest.mark.parametrize(
    "raw", [b"[" * 16_000, b'{"orgId": "x", "pad": ' + b"[" * 5000 + b"]" * 5000 + b"}"]
)
def test_a_body_nested_too_deeply_is_400(origin: str, raw: bytes) -> None:
    assert len(raw) < 16_384  # under the body limit: the route reads it
    r = httpx.post(origin + KORE_URL, content=raw, headers=auth())
    assert (r.status_code, r.json()["errors"][0]["msg"]) == (400, "the body is nested too deeply")


def test_a_key_given_twice_in_the_body_is_400_naming_it(origin: str) -> None:
    raw = json.dumps(BODY)[:-1] + ', "skip": 0, "skip": 2}'
    r = httpx.post(origin + KORE_URL, content=raw, headers=auth())
    assert (r.status_code, r.json()["errors"][0]["msg"]) == (400, "skip is given more than once")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**400},
        {"exp": -(10**400)},
        {"nbf": 10**400},
        {"nbf": -(10**400)},
        {"exp": math.inf},
        {"nbf": -math.inf},
    ],
)
def test_a_jwt_time_that_is_no_finite_number_is_a_bare_401(
    origin: str, claims: dict[str, object]
) -> None:
    r = httpx.post(origin + KORE_URL, json=BODY, headers=auth(**claims))
    assert (r.status_code, r.json()) == (401, {"errors": [{"msg": "Unauthorized", "code": 401}]})


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("&callTargetId={a}&callTargetId={b}", "callTargetId"),
        ("&type=bogus&type=asap", "type"),
        ("&type=asap&type=bogus", "type"),
        ("&type=asap&type=asap", "type"),
        ("&timeEnd=2026-10-03", "timeEnd"),
    ],
)
def test_a_metrics_parameter_given_twice_is_400_naming_it(
    origin: str, query: str, name: str
) -> None:
    a, b = sorted(attempts()["call_target_id"].unique().to_list())[:2]
    r = httpx.get(f"{origin}{METRICS}?{DAY}{query.format(a=a, b=b)}", headers=BEARER)
    assert (r.status_code, r.json()["error"]) == (400, "Bad Request")
    assert r.json()["message"].startswith(f"{name} is given more than once")


@pytest.mark.parametrize(
    ("form", "name"),
    [
        ("grant_type=password&grant_type=client_credentials", "grant_type"),
        (f"grant_type=client_credentials&client_id={CLIENT_ID}"
         f"&client_secret=guess&client_secret={CLIENT_SECRET}", "client_secret"),
    ],
)  # fmt: skip
def test_a_token_request_field_given_twice_is_400_invalid_request(
    origin: str, form: str, name: str
) -> None:
    head = {"content-type": "application/x-www-form-urlencoded"}
    r = httpx.post(origin + "/oauth2/token", content=form, headers=head)
    why = {"error": "invalid_request", "error_description": f"{name} is given more than once"}
    assert (r.status_code, r.json()) == (400, why)


def _fail(*_: object, **__: object) -> dict[str, Any]:
    raise RuntimeError(LEAK)


@pytest.mark.parametrize("method", ["callvolume", "callback_metrics"])
def test_an_unexpected_error_is_a_json_500_with_its_one_log_line_and_no_traceback(
    store: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    monkeypatch.setattr(StoreDocuments, method, _fail)
    caplog.set_level(logging.INFO)
    with running(store) as url:
        if method == "callvolume":
            r, line = httpx.post(url + KORE_URL, json=BODY, headers=auth()), f"POST {KORE_URL} 500 "
            answer: dict[str, Any] = {"errors": [{"msg": "Internal Server Error", "code": 500}]}
        else:
            r, line = httpx.get(f"{url}{METRICS}?{DAY}", headers=BEARER), f"GET {METRICS} 500 "
            answer = {"error": "Internal Server Error"}
    assert (r.status_code, r.json()) == (500, answer)
    # this request's lines (the module's server may log its last request's line late)
    lines = [m for m in caplog.messages if m.startswith(line.removesuffix("500 "))]
    assert len(lines) == 1
    assert lines[0].startswith(line)
    assert "unexpected RuntimeError at tests/engine/test_serve_errors.py:" in lines[0]
    assert LEAK not in caplog.text
    assert LEAK not in r.text
    assert "Traceback" not in caplog.text


async def _broken(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError(LEAK)


async def _get(app: BodyLimit, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        return await client.get(path)


def test_an_error_before_any_answer_is_a_json_500_with_its_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wfm_intervals.serve")
    r = asyncio.run(_get(BodyLimit(_broken, 1024), "/healthz"))
    assert (r.status_code, r.json()) == (500, {"error": "Internal Server Error"})
    assert [m.split(" ")[:3] for m in caplog.messages] == [["GET", "/healthz", "500"]]
    assert LEAK not in caplog.text
