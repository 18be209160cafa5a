"""``serve`` answers with nothing that sends a browser off loopback.

FastAPI's ``/docs`` page loaded swagger-ui from cdn.jsdelivr.net (no version pinned, no
integrity hash) and a favicon from fastapi.tiangolo.com: opening it ran a third party's script
on the serve origin, where the credentials are typed. There is no ``/docs`` nor ``/redoc``;
``/openapi.json`` (the description) stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.engine.serve_support import (
    APP_ID,
    BODY,
    KORE_SECRET,
    KORE_URL,
    METRICS,
    TOKEN,
    running,
    write_store,
)

DAY = {"timeBegin": "2026-10-01", "timeEnd": "2026-10-02"}
_URL = re.compile(rb"(?:https?:)?//[a-z0-9.-]+", re.IGNORECASE)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(write_store(tmp_path_factory.mktemp("pages") / "out")) as url:
        yield url


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_no_page_of_fastapis_is_served(origin: str, path: str) -> None:
    assert httpx.get(origin + path).status_code == 404


def test_no_answer_names_another_origin(origin: str) -> None:
    kore = {"auth": jwt.encode({"appId": APP_ID}, KORE_SECRET, algorithm="HS256")}
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers = [
        httpx.get(origin + "/openapi.json"),
        httpx.get(origin + "/healthz"),
        httpx.get(origin + "/docs"),
        httpx.get(origin + "/nowhere"),
        httpx.get(origin + METRICS, params=DAY, headers=bearer),
        httpx.get(origin + METRICS, params=DAY),
        httpx.post(origin + KORE_URL, json=BODY, headers=kore),
        httpx.post(origin + KORE_URL, json=BODY),
    ]
    assert answers[0].status_code == 200
    assert "paths" in answers[0].json()
    for answer in answers:
        raw = answer.content + b"".join(k + b": " + v for k, v in answer.headers.raw)
        assert _URL.findall(raw) == [], answer.request.url
    assert [a.status_code for a in answers[4:]] == [200, 401, 200, 401]
