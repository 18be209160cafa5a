"""``serve`` hardened: an address it cannot listen on is a one-line exit 2; a request path
cannot forge a log line; a client gone mid-body is no error; a slow page holds up no other
request; ``X-Forwarded-For`` buys a guesser no budget, but behind a ``[serve] trusted_proxies``
proxy each client has its own; the token endpoint and the metrics route
follow OAuth2's conventions (RFC 6749 2.3, 2.3.1, 5.2; RFC 6750 3).

The command's own behaviour (its socket, its uvicorn configuration, its log format) is checked
on a real ``wfm-intervals serve`` process on 127.0.0.1; the app's on uvicorn in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import jwt
import pytest
from click.testing import CliRunner

from engine import clock
from engine.cli.main import cli
from engine.clock import CLOCK_AT_VARIABLE
from engine.serve.documents import StoreDocuments
from tests.calendar import run_process, wait_for_exit
from tests.engine.serve_support import (
    APP_ID,
    BODY,
    CLIENT_ID,
    KORE_SECRET,
    KORE_URL,
    METRICS,
    TOKEN,
    running,
    serve_settings,
    write_store,
)

DAY = {"timeBegin": "2026-10-01", "timeEnd": "2026-10-02"}
LIMIT = 3  #: the served process's rate limit per minute
TRUSTED = 'trusted_proxies = ["127.0.0.1"]'  #: a reverse proxy on the test's own address
ODD_SECRET = "s+cr/t x=1"  #: changed by form-urlencoding (RFC 6749 2.3.1) # noqa: S105
FORGED = "2026-12-07T15:20:00.000Z level=ERROR logger=wfm_intervals.serve POST /oauth2/token 500"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("hardening") / "out")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_")}
    return env | {
        CLOCK_AT_VARIABLE: "2026-10-03T06:00:00Z",
        "WFM_SERVE__TOKENS": json.dumps([TOKEN]),
        "WFM_SERVE__KORE_APPS": json.dumps({APP_ID: KORE_SECRET}),
    }


def _jwt() -> str:
    return jwt.encode({"appId": APP_ID}, KORE_SECRET, algorithm="HS256")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Served:
    """A ``wfm-intervals --log-format text serve`` process: its origin, port, configuration
    and the file its standard error goes to."""

    origin: str
    port: int
    config: Path
    log: Path

    def line(self, needle: str) -> str:
        """The one log line that holds ``needle`` (waited for: it is written after the
        answer), the whole log checked to hold one such line only."""
        for _ in range(300):
            found = [ln for ln in self.log.read_text().split("\n") if needle in ln]
            if found:
                assert len(found) == 1, found
                return found[0]
            clock.sleep(0.05)
        raise AssertionError(f"no log line with {needle!r}: {self.log.read_text()}")


@pytest.fixture(scope="module")
def served(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with _serving(store, tmp_path_factory.mktemp("served")) as found:
        yield found


@pytest.fixture(scope="module")
def proxied(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``served`` behind a reverse proxy on 127.0.0.1 (``[serve] trusted_proxies``)."""
    with _serving(store, tmp_path_factory.mktemp("proxied"), TRUSTED) as found:
        yield found


@contextlib.contextmanager
def _serving(store: Path, root: Path, more: str = "") -> Iterator[Served]:
    """A ``serve`` process of ``store`` (``more``: further lines of ``[serve]``), stopped
    (SIGTERM, exit 0, no traceback) when the block ends."""
    config = root / "serve.toml"
    config.write_text(f'[serve]\nstore = "{store}"\nrate_limit_per_minute = {LIMIT}\n{more}\n')
    port, log = _free_port(), root / "serve.err"
    args = ["--log-format", "text", "serve", "--port", str(port), "--config", str(config)]
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli.main", *args],
            cwd=root, env=_environment(), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    origin = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{origin}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                clock.sleep(0.1)
        else:
            raise AssertionError(f"serve did not answer /healthz: {log.read_text()}")
        yield Served(origin, port, config, log)
    finally:
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, 30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_a_port_in_use_is_exit_2_with_one_line_naming_it(served: Served) -> None:
    """uvicorn's own failure was exit 3 with its ``ERROR: [Errno 98] ...`` line."""
    args = ["serve", "--port", str(served.port), "--config", str(served.config)]
    done = run_process(
        [sys.executable, "-m", "engine.cli.main", *args],
        timeout=120, env=_environment(), cwd=served.config.parent, text=True,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("wfm-intervals: error: cannot listen on ")
    assert f"127.0.0.1:{served.port}" in lines[0]


def test_an_address_of_no_interface_is_exit_2_naming_it(tmp_path: Path) -> None:
    """192.0.2.1 (TEST-NET-1, RFC 5737) is the address of no host."""
    args = ["serve", "--host", "192.0.2.1", "--insecure", "--port", "8080", "--store", "x"]
    env = {"WFM_SERVE__TOKENS": json.dumps([TOKEN])}
    r = CliRunner().invoke(cli, args, env=env)
    assert r.exit_code == 2, r.output
    assert "wfm-intervals: error: cannot listen on 192.0.2.1:8080" in r.output
    assert TOKEN not in r.output


def test_a_request_path_cannot_forge_or_break_a_log_line(served: Served) -> None:
    """A decoded ``%0A`` wrote a second, forged ERROR line; a ``%0D`` a raw carriage return."""
    forged = httpx.get(f"{served.origin}/x%0A{quote_plus(FORGED).replace('+', '%20')}")
    carriage = httpx.get(f"{served.origin}{METRICS}%0Dforged")
    assert forged.status_code == carriage.status_code == 404
    line = served.line("GET /x")
    assert "/x%0A2026-12-07T15:20:00.000Z%20level=ERROR" in line
    assert " 404 " in line
    assert "level=INFO" in line
    assert f"GET {METRICS}%0Dforged 404 " in served.line("forged 404")
    text = served.log.read_text()
    assert "\r" not in text
    assert not [ln for ln in text.split("\n") if ln.startswith(FORGED[:24])]


def test_a_client_gone_mid_body_is_noted_not_an_error(served: Served) -> None:
    """It was logged ``level=ERROR ... 500 ...: unexpected ClientDisconnect``: no 500 was sent
    (the route, its credential accepted, read the body the client never finished)."""
    path, auth = KORE_URL.replace("/acc/", "/gone/"), _jwt()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nauth: {auth}\r\nContent-Length: 500\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(head.encode() + b'{"orgId": ')
    line = served.line(f"POST {path} ")
    assert "the client disconnected" in line
    assert "level=INFO" in line
    assert " 500 " not in line
    assert "unexpected" not in served.log.read_text()


def test_x_forwarded_for_buys_a_guesser_no_budget(served: Served) -> None:
    """From 127.0.0.1, uvicorn took the client's address from ``X-Forwarded-For``: every guess
    under a new made-up address got a new budget."""
    codes = [
        httpx.get(
            served.origin + METRICS,
            params=DAY,
            headers={"Authorization": f"Bearer guess-{n}", "X-Forwarded-For": f"10.0.0.{n}"},
        ).status_code
        for n in range(LIMIT + 2)
    ]
    assert codes == [401] * LIMIT + [429, 429]


def _guess(served: Served, client: str) -> int:
    headers = {"Authorization": "Bearer guess", "X-Forwarded-For": client}
    return httpx.get(served.origin + METRICS, params=DAY, headers=headers).status_code


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(proxied: Served) -> None:
    """Behind a reverse proxy every client was the proxy's address: one guesser used up the
    budget of refused credentials and every other client behind the proxy got 429."""
    assert [_guess(proxied, "10.0.0.1") for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert _guess(proxied, "10.0.0.2") == 401  # another client: its own budget
    # the client is the nearest address that is no trusted proxy (the rightmost one here)
    assert _guess(proxied, "10.0.0.3, 10.0.0.1") == 429
    assert _guess(proxied, "10.0.0.1, 10.0.0.4") == 401


def test_a_trusted_proxy_that_is_no_address_is_exit_2_naming_the_setting(
    tmp_path: Path,
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('[serve]\ntrusted_proxies = ["10.0.0.1/8"]\n')
    env = {"WFM_SERVE__TOKENS": json.dumps([TOKEN])}
    r = CliRunner().invoke(cli, ["serve", "--config", str(config)], env=env)
    assert r.exit_code == 2, r.output
    assert r.output.splitlines() == [
        "wfm-intervals: error: invalid setting serve.trusted_proxies: '10.0.0.1/8' is not an IP "
        "address or network: give e.g. 10.0.0.5 or 10.0.0.0/8 (a network's host bits zero; no "
        "host names)"
    ]


def test_a_slow_page_holds_up_no_other_request(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Contact Volume page was rendered on the event loop: while one was held, ``/healthz``
    (every request) waited for it."""
    entered, release = threading.Event(), threading.Event()
    page = StoreDocuments.callvolume

    def held(self: StoreDocuments, **kw: Any) -> dict[str, Any]:
        entered.set()
        release.wait(120)
        return page(self, **kw)

    monkeypatch.setattr(StoreDocuments, "callvolume", held)
    answers: list[httpx.Response] = []
    auth = {"auth": _jwt()}
    with running(store) as url:
        kore = threading.Thread(
            target=lambda: answers.append(httpx.post(url + KORE_URL, json=BODY, headers=auth))
        )
        kore.start()
        try:
            assert entered.wait(60)
            health = httpx.get(url + "/healthz", timeout=30)  # old: timed out, the loop held
            assert not release.is_set()
        finally:
            release.set()
            kore.join(60)
    assert health.json() == {"status": "ok"}
    assert [r.status_code for r in answers] == [200]


@pytest.fixture(scope="module")
def oauth(store: Path) -> Iterator[str]:
    with running(store, serve_settings(oauth_clients={CLIENT_ID: ODD_SECRET})) as url:
        yield url + "/oauth2/token"


GRANT = {"grant_type": "client_credentials"}


@pytest.mark.parametrize(
    "secret",
    [quote_plus(ODD_SECRET), ODD_SECRET],
    ids=["form-urlencoded (RFC 6749 2.3.1)", "raw"],
)
def test_basic_credentials_are_read_form_urlencoded_or_raw(oauth: str, secret: str) -> None:
    r = httpx.post(oauth, data=GRANT, auth=(CLIENT_ID, secret))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"  # noqa: S105 - the scheme


@pytest.mark.parametrize(
    ("credentials", "basic"),
    [
        ({"auth": (CLIENT_ID, "guess")}, True),
        ({"auth": (CLIENT_ID, quote_plus("s+cr/t x=2"))}, True),
        ({"headers": {"Authorization": "Basic %%%"}}, True),
        ({"headers": {"Authorization": b"Basic \xe9\xe9\xe9\xe9"}}, True),  # was a 500
        ({"data": GRANT | {"client_id": CLIENT_ID, "client_secret": "guess"}}, False),
    ],
)
def test_invalid_client_is_401_with_a_basic_challenge(
    oauth: str, credentials: dict[str, Any], basic: bool
) -> None:
    """RFC 6749 5.2: a 401 to a client that used Basic MUST carry ``WWW-Authenticate`` of it."""
    r = httpx.post(oauth, **({"data": GRANT} | credentials))
    assert (r.status_code, r.json()) == (401, {"error": "invalid_client"})
    assert r.headers["WWW-Authenticate"].startswith("Basic ")


def test_a_missing_grant_type_is_invalid_request(oauth: str) -> None:
    r = httpx.post(oauth, data={"scope": "x"}, auth=(CLIENT_ID, ODD_SECRET))
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert "grant_type" in r.json()["error_description"]
    other = httpx.post(oauth, data={"grant_type": "password"}, auth=(CLIENT_ID, ODD_SECRET))
    assert (other.status_code, other.json()) == (400, {"error": "unsupported_grant_type"})


def test_credentials_in_both_the_header_and_the_body_are_invalid_request(oauth: str) -> None:
    """RFC 6749 2.3: one authentication method per request (the body's client id alone, the
    same as the header's, is no second method)."""
    both = GRANT | {"client_id": CLIENT_ID, "client_secret": ODD_SECRET}
    r = httpx.post(oauth, data=both, auth=(CLIENT_ID, ODD_SECRET))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    another = httpx.post(oauth, data=GRANT | {"client_id": "x"}, auth=(CLIENT_ID, ODD_SECRET))
    assert (another.status_code, another.json()["error"]) == (400, "invalid_request")
    same = httpx.post(oauth, data=GRANT | {"client_id": CLIENT_ID}, auth=(CLIENT_ID, ODD_SECRET))
    assert same.status_code == 200, same.text


@pytest.mark.parametrize("header", [None, "Bearer guess", "Basic eDp5"])
def test_a_refused_metrics_request_carries_a_bearer_challenge(
    oauth: str, header: str | None
) -> None:
    """RFC 6750 3: a 401 of a Bearer resource carries ``WWW-Authenticate: Bearer``."""
    origin = oauth.removesuffix("/oauth2/token")
    r = httpx.get(origin + METRICS, params=DAY, headers={"Authorization": header or ""})
    assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})
    assert r.headers["WWW-Authenticate"].startswith("Bearer ")
