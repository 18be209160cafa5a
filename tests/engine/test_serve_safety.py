"""``serve`` is safe to expose: bare 401s, vendor-style 400s, 413, 429 with Retry-After, no
secret in its log, TLS or loopback only, and an OpenAPI description."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from click.testing import CliRunner

from engine.cli.main import cli
from engine.serve.guard import Guard
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
    serve_settings,
    write_store,
)

DAY = {"timeBegin": "2026-10-01", "timeEnd": "2026-10-02"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("safety") / "out")


@pytest.fixture(scope="module")
def origin(store: Path) -> Iterator[str]:
    with running(store, serve_settings(max_body_bytes=1024)) as url:
        yield url


def token(claims: dict[str, object], secret: str = KORE_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def unsigned(claims: dict[str, object]) -> str:
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "not-a-jwt",
        unsigned({"appId": APP_ID}),
        token({"appId": APP_ID}, "x" * 40),
        token({"appId": "another-app"}),
        token({"appId": APP_ID, "exp": 1}),
        token({"appId": APP_ID, "exp": "tomorrow"}),
        token({"other": APP_ID}),
    ],
)
def test_kore_refuses_a_bad_jwt_with_a_bare_401(origin: str, header: str | None) -> None:
    headers = {} if header is None else {"auth": header}
    r = httpx.post(origin + KORE_URL, json=BODY, headers=headers)
    assert (r.status_code, r.json()) == (401, {"errors": [{"msg": "Unauthorized", "code": 401}]})


def test_a_valid_jwt_with_a_future_exp_is_accepted(origin: str) -> None:
    good = token({"appId": APP_ID, "exp": 4_102_444_800})  # 2100-01-01
    assert httpx.post(origin + KORE_URL, json=BODY, headers={"auth": good}).status_code == 200


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer guess", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN]
)
def test_metrics_refuse_a_bad_bearer_with_a_bare_401(origin: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = httpx.get(origin + METRICS, params=DAY, headers=headers)
    assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"orgId": "other"}, "orgId"),
        ({"toTimeStamp": None}, "toTimeStamp is required"),
        ({"toTimeStamp": "yesterday"}, "toTimeStamp"),
        ({"toTimeStamp": "2026-10-02T00:00:00"}, "UTC offset"),
        ({"skip": -1}, "skip"),
        ({"limit": 0}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"skip": True}, "skip"),
    ],
)
def test_kore_answers_400_for_a_bad_body(origin: str, change: dict[str, object], says: str) -> None:
    body = {k: v for k, v in (BODY | change).items() if v is not None}
    r = httpx.post(origin + KORE_URL, json=body, headers={"auth": token({"appId": APP_ID})})
    assert r.status_code == 400
    assert says in r.json()["errors"][0]["msg"]
    assert r.json()["errors"][0]["code"] == 400


def test_kore_answers_400_for_a_body_that_is_not_json(origin: str) -> None:
    r = httpx.post(origin + KORE_URL, content=b"{", headers={"auth": token({"appId": APP_ID})})
    assert (r.status_code, r.json()["errors"][0]["msg"]) == (400, "the body is not JSON")


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"timeBegin": "2026-10-01"}, "required"),
        (DAY | {"timeBegin": "01/10/2026"}, "not a time"),
        (DAY | {"timeBegin": "2026-10-1"}, "not a time"),  # strptime's reading: 200
        (DAY | {"timeBegin": "\uff12\uff10\uff12\uff16-10-01"}, "not a time"),  # full-width
        (DAY | {"timeEnd": "2026-10-02T9:00:00Z"}, "not a time"),
        (DAY | {"timeEnd": "2026-10-01"}, "after"),
        (DAY | {"type": "later"}, "type must be one of"),
        (DAY | {"sourceType": "fax"}, "sourceType"),
        (DAY | {"firstPartyCalled": "robot"}, "firstPartyCalled"),
    ],
)
def test_metrics_answer_400_for_bad_parameters(
    origin: str, params: dict[str, str], says: str
) -> None:
    r = httpx.get(origin + METRICS, params=params, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400
    assert r.json()["error"] == "Bad Request"
    assert says in r.json()["message"]


def test_a_bad_time_is_quoted_in_its_first_40_characters_only(origin: str) -> None:
    bad = "2026-10-01" + "9" * 5000
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.get(origin + METRICS, params=DAY | {"timeBegin": bad}, headers=bearer)
    assert r.status_code == 400
    assert r.json()["message"].startswith(repr(bad[:40]) + "… is not a time")
    assert len(r.text) < 200


def test_a_body_over_the_limit_gets_413(origin: str) -> None:
    big = BODY | {"pad": "x" * 2000}
    r = httpx.post(origin + KORE_URL, json=big, headers={"auth": token({"appId": APP_ID})})
    assert r.status_code == 413


def test_the_token_endpoint_issues_bearer_tokens_for_client_credentials(origin: str) -> None:
    url = origin + "/oauth2/token"
    form = {"grant_type": "client_credentials"}
    basic = httpx.post(url, data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    posted = httpx.post(url, data=form | {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    for r in (basic, posted):
        assert r.status_code == 200
        assert (r.json()["token_type"], r.json()["expires_in"]) == ("Bearer", 3600)
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert httpx.get(origin + METRICS, params=DAY, headers=bearer).status_code == 200
    wrong = httpx.post(url, data=form, auth=(CLIENT_ID, "guess"))
    unknown = httpx.post(url, data=form, auth=("nobody", CLIENT_SECRET))
    assert wrong.json() == unknown.json() == {"error": "invalid_client"}
    assert wrong.status_code == unknown.status_code == 401
    grant = httpx.post(url, data={"grant_type": "password"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert (grant.status_code, grant.json()) == (400, {"error": "unsupported_grant_type"})


def test_issued_tokens_expire_after_their_lifetime() -> None:
    now = [0.0]
    guard = Guard(serve_settings(), monotonic=lambda: now[0])
    issued = guard.issue(CLIENT_ID, CLIENT_SECRET)
    assert issued is not None
    now[0] = 3599.0
    assert guard.bearer_client(f"Bearer {issued}") == f"client:{CLIENT_ID}"
    now[0] = 3600.0
    assert guard.bearer_client(f"Bearer {issued}") is None


def test_a_client_over_its_rate_gets_429_with_retry_after(store: Path) -> None:
    with running(store, serve_settings(rate_limit_per_minute=3)) as url:
        head = {"Authorization": f"Bearer {TOKEN}"}
        codes = [httpx.get(url + METRICS, params=DAY, headers=head) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60
        # another client has its own budget
        kore = httpx.post(url + KORE_URL, json=BODY, headers={"auth": token({"appId": APP_ID})})
        assert kore.status_code == 200


def test_the_log_has_no_secret_no_query_and_no_token(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wfm_intervals.serve")
    with running(store) as url:
        httpx.get(url + METRICS, params=DAY | {"callTargetId": "ct-1"},
                  headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        httpx.post(url + KORE_URL, json=BODY, headers={"auth": token({"appId": APP_ID})})
        httpx.post(url + "/oauth2/token", data={"grant_type": "client_credentials"},
                   auth=(CLIENT_ID, CLIENT_SECRET))  # fmt: skip
    text = caplog.text
    assert "GET /v2/callback/historical/metrics 200" in text
    for secret in (
        TOKEN,
        KORE_SECRET,
        CLIENT_SECRET,
        "ct-1",
        "timeBegin",
        token({"appId": APP_ID}),
    ):
        assert secret not in text


def test_healthz_and_openapi_describe_both_apis(origin: str) -> None:
    assert httpx.get(origin + "/healthz").json() == {"status": "ok"}
    paths = httpx.get(origin + "/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/agentassist/api/public/analytics/account/{account_id}/callvolume",
        METRICS,
        "/oauth2/token",
        "/healthz",
    }


def test_serve_refuses_a_public_address_without_tls_and_a_missing_credential(
    tmp_path: Path,
) -> None:
    env = {"WFM_SERVE__TOKENS": json.dumps([TOKEN])}
    r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--store", str(tmp_path)], env=env)  # noqa: S104
    assert r.exit_code == 2
    assert "not a loopback address" in r.output
    assert TOKEN not in r.output
    bare = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path)], env={})
    assert bare.exit_code == 2
    assert "no credentials" in bare.output


def chunks(size: int) -> Iterator[bytes]:
    """A streamed body (no Content-Length: sent chunked) of ``size`` bytes of JSON."""
    text = json.dumps(BODY | {"pad": "x" * max(0, size - 100)}).encode()
    for at in range(0, len(text), 256):
        yield text[at : at + 256]


def test_a_streamed_body_over_the_limit_gets_413_and_under_it_is_served(origin: str) -> None:
    head = {"auth": token({"appId": APP_ID}), "content-type": "application/json"}
    big = httpx.post(origin + KORE_URL, content=chunks(4000), headers=head)
    assert (big.status_code, big.json()) == (413, {"error": "Payload Too Large"})
    small = httpx.post(origin + KORE_URL, content=chunks(500), headers=head)
    assert small.status_code == 200
    assert len(small.json()["CallVolumeUpdate"]) == 2
    form = httpx.post(origin + "/oauth2/token", content=chunks(4000))
    assert form.status_code == 413


def test_kore_429_is_in_the_vendors_shape_and_the_token_endpoint_is_limited_per_address(
    store: Path,
) -> None:
    with running(store, serve_settings(rate_limit_per_minute=2)) as url:
        head = {"auth": token({"appId": APP_ID})}
        codes = [httpx.post(url + KORE_URL, json=BODY, headers=head) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert codes[-1].json() == {"errors": [{"msg": "Too Many Requests", "code": 429}]}
        assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60
        form = {"grant_type": "client_credentials"}
        posts = [httpx.post(url + "/oauth2/token", data=form, auth=(CLIENT_ID, "guess"))
                 for _ in range(3)]  # fmt: skip
        assert [r.status_code for r in posts] == [401, 401, 429]
        assert "Retry-After" in posts[-1].headers


def test_another_account_is_404_only_behind_a_valid_credential(store: Path) -> None:
    with running(store, serve_settings(kore_account_id="acc")) as url:
        other = url + KORE_URL.replace("/acc/", "/other/")
        good = {"auth": token({"appId": APP_ID})}
        assert httpx.post(url + KORE_URL, json=BODY, headers=good).status_code == 200
        assert httpx.post(other, json=BODY, headers=good).status_code == 404
        guess = httpx.post(other, json=BODY, headers={"auth": token({"appId": "x"})})
        assert (guess.status_code, guess.json()["errors"][0]["msg"]) == (401, "Unauthorized")


def test_a_list_of_call_targets_adds_up_the_targets_one_by_one(origin: str) -> None:
    """Independent of the document's own code: the targets' requests are disjoint, so every
    outcome count of ``a,b`` is the count of ``a`` plus the count of ``b``."""
    head = {"Authorization": f"Bearer {TOKEN}"}

    def outcomes(targets: str) -> dict[str, int]:
        r = httpx.get(origin + METRICS, params=DAY | {"callTargetId": targets}, headers=head)
        assert r.status_code == 200
        data = r.json()["data"]
        return data["outcomes"] | {"totalCallbacks": data["totalCallbacks"]}

    a, b = sorted(attempts()["call_target_id"].unique().to_list())[:2]
    one, two, both = outcomes(a), outcomes(b), outcomes(f"{a},{b}")
    assert one["totalCallbacks"] > 0
    assert two["totalCallbacks"] > 0
    assert both == {k: one[k] + two[k] for k in both}
    assert outcomes(f" {a} , {b} ") == both


def test_a_guesser_is_rate_limited_by_address_and_a_valid_client_keeps_its_budget(
    store: Path,
) -> None:
    with running(store, serve_settings(rate_limit_per_minute=3)) as url:
        guesses = [
            httpx.get(url + METRICS, params=DAY, headers={"Authorization": "Bearer guess"}),
            httpx.post(url + KORE_URL, json=BODY, headers={"auth": token({"appId": "x"})}),
            httpx.get(url + METRICS, params=DAY, headers={"Authorization": "Bearer guess-2"}),
            httpx.post(url + KORE_URL, json=BODY, headers={"auth": "not-a-jwt"}),
            httpx.get(url + METRICS, params=DAY),
        ]
        assert [r.status_code for r in guesses] == [401, 401, 401, 429, 429]
        assert guesses[3].json() == {"errors": [{"msg": "Too Many Requests", "code": 429}]}
        assert 1 <= int(guesses[4].headers["Retry-After"]) <= 60
        good = httpx.get(url + METRICS, params=DAY, headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
