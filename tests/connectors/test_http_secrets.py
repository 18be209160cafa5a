"""A credential that cannot be sent as a header value (a line break, CR, NUL, whitespace at
either end) is refused before anything is sent, by one line naming the header and the setting,
never quoting the value, and is not retried.

It used to reach h11, whose ``LocalProtocolError: Illegal header value b'<secret>\\n'`` became a
retriable ``TransportError``: the secret was in every retry warning, the ``sync.failed`` line, the
run's error and ``state/runs.json``, and was sent ``max_retries`` times more though it never could
succeed. The same went for an access token the vendor's token endpoint issued with CR/LF or NUL.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.emulator import MindfulEmulator
from connectors.emulator.mindful.app import TOKEN_PATH
from connectors.emulator.server import Request, Response
from connectors.errors import (
    AuthError,
    FatalError,
    ResponseShapeError,
    RetriableError,
)
from connectors.http import (
    BearerAuth,
    HeaderAuth,
    OAuth2ClientCredentials,
    make_client,
    send_request,
)
from connectors.sync import SyncReport, sync_source
from connectors.vendors.dixa.client import DIXA
from connectors.vendors.mindful.client import MINDFUL
from engine.cli.main import cli
from tests.connectors import dixa_support, mindful_support
from tests.engine import run_support
from tests.environment import invoke

SECRET = "tok-Sx93-never-logged"  # noqa: S105 - a fake credential
#: What a secret picks up on its way in, each of which h11 refuses in a header value.
BAD_ENDINGS = {"lf": "\n", "crlf": "\r\nX-Evil: 1", "cr": "\r", "nul": "\x00z", "space": " "}
#: The reason each is given.
REASONS = {
    "\n": "it contains a line break",
    "\r\nX-Evil: 1": "it contains a line break",
    "\r": "it contains a line break",
    "\x00z": "it contains a control character",
    " ": "it begins or ends with whitespace",
}


def _written(root: Path) -> str:
    """Every file under ``root``, as text."""
    return "".join(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file())


def _counting(calls: list[httpx.Request], token: str = SECRET) -> httpx.MockTransport:
    """A transport that records each request; a token endpoint (``/token``) issues ``token``."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": token, "expires_in": 3600})
        return httpx.Response(200, json={})

    return httpx.MockTransport(handle)


def _send(**client: Any) -> None:
    """One GET through the shared layer, on a client of ``make_client(**client)``."""
    with make_client("https://x.test", **client) as c:
        send_request(c, c.build_request("GET", "a"))


# -- the shared layer -----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["", "Bearer"])
@pytest.mark.parametrize("ending", BAD_ENDINGS.values(), ids=BAD_ENDINGS.keys())
def test_a_static_credential_that_cannot_be_sent_is_refused_unsent(
    scheme: str, ending: str
) -> None:
    calls: list[httpx.Request] = []
    auth = HeaderAuth("Authorization", SecretStr(SECRET + ending), scheme=scheme)
    with pytest.raises(AuthError) as info:
        _send(auth=auth, transport=_counting(calls))
    message = str(info.value)
    assert message == (
        f"Authorization header: the credential is not a valid HTTP header value ({REASONS[ending]})"
    )
    assert SECRET not in message
    assert "\n" not in message
    assert calls == []


def test_a_leading_space_and_undecodable_bytes_are_refused_too() -> None:
    for value in (" " + SECRET, SECRET + "\udcff"):  # \udcff: a byte an env var could not decode
        auth = HeaderAuth("auth", SecretStr(value))
        with pytest.raises(AuthError, match=r"^auth header: ") as info:
            _send(auth=auth, transport=_counting([]))
        assert SECRET not in str(info.value)


def test_a_provider_token_that_cannot_be_sent_is_refused_unsent() -> None:
    class Fixed:
        def token(self) -> SecretStr:
            return SecretStr(SECRET + "\n")

        def invalidate(self) -> None:
            pass

    calls: list[httpx.Request] = []
    auth = BearerAuth(Fixed())
    with pytest.raises(AuthError, match=r"^Authorization header: ") as info:
        _send(auth=auth, transport=_counting(calls))
    assert SECRET not in str(info.value)
    assert calls == []


@pytest.mark.parametrize("ending", BAD_ENDINGS.values(), ids=BAD_ENDINGS.keys())
def test_an_issued_token_that_cannot_be_sent_is_an_error_of_the_token_endpoint(
    ending: str,
) -> None:
    calls: list[httpx.Request] = []
    transport = _counting(calls, token=SECRET + ending)
    provider = OAuth2ClientCredentials(
        "https://id.test/oauth2/token", "app", SecretStr("s"), transport=transport
    )
    with pytest.raises(ResponseShapeError) as info:
        _send(auth=BearerAuth(provider), transport=transport)
    message = str(info.value)
    assert message.startswith("token exchange: the access_token returned is not a valid header")
    assert message.endswith("(https://id.test/oauth2/token)")
    assert SECRET not in message
    assert [c.url.path for c in calls] == ["/oauth2/token"]  # asked once; nothing sent with it


def test_another_header_that_cannot_be_sent_is_named_and_not_retried() -> None:
    calls: list[httpx.Request] = []
    headers = {"X-Tenant": SECRET + "\r\n"}
    with pytest.raises(FatalError, match=r"^X-Tenant header: not a valid HTTP") as info:
        _send(headers=headers, transport=_counting(calls))
    assert SECRET not in str(info.value)
    assert calls == []


def test_a_request_the_http_library_refuses_is_fatal_and_its_text_withheld() -> None:
    """The backstop: h11's ``LocalProtocolError`` quotes the header value it refuses."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'{SECRET}\\n'")

    with pytest.raises(FatalError) as info:
        _send(transport=httpx.MockTransport(refuse))
    assert not isinstance(info.value, RetriableError)
    assert "LocalProtocolError" in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.__suppress_context__


# -- the real emulators on loopback ---------------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\x00"], ids=["lf", "crlf", "nul"])
def test_a_dixa_token_with_a_line_break_fails_fast_without_showing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    caplog.set_level(logging.DEBUG)
    token = dixa_support.TOKEN
    with dixa_support.emulator() as emu:
        # past the settings' own check (a line break is refused at load): the send-time one
        bad = {"api_token": SecretStr(token + ending)}
        settings = dixa_support.make_settings(emu).model_copy(update=bad)
        with pytest.raises(AuthError) as info:
            sync_source(DIXA, settings, landing_root=tmp_path / "l", state_root=tmp_path / "s")
        assert emu.stats.requests == 0  # refused before it was sent, and never retried
    _one_line_without(
        str(info.value), token, [caplog.text, _written(tmp_path)],
        starts="dixa: Authorization header: the credential is not a valid HTTP",
        names="; check sources.dixa.api_token (",
    )  # fmt: skip
    assert "retrying" not in caplog.text


def _one_line_without(line: str, secret: str, elsewhere: list[str], *, starts: str,
                      names: str) -> None:  # fmt: skip
    """``line`` is one line starting ``starts`` and naming ``names``; ``secret`` is in none of
    it and ``elsewhere`` (the log, the files written)."""
    assert line.startswith(starts), line
    assert names in line
    assert "\n" not in line
    for text in (line, *elsewhere):
        assert secret not in text


def _mindful_sync(
    emu: MindfulEmulator,
    root: Path,
    unchecked: dict[str, object] | None = None,
    **overrides: object,
) -> SyncReport:
    """A sync; ``unchecked`` settings are set past the settings' validation."""
    settings = mindful_support.settings_for(emu, max_retries=3, **overrides)
    settings = settings.model_copy(update=unchecked or {})
    (report,) = sync_source(
        MINDFUL, settings, landing_root=root / "landing", state_root=root / "state", sleep=id
    )
    return report


def test_a_mindful_static_token_with_a_newline_fails_fast_without_showing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    static = "mindful-static-Zq81-never-logged"
    bad = SecretStr(static + "\n")
    with MindfulEmulator(mindful_support.small_attempts(), static_token=static) as emu:
        good = {"auth": "static", "static_token": SecretStr(static)}
        report = _mindful_sync(emu, tmp_path, {"static_token": bad}, **good)
        assert emu.stats.requests == 0
    assert not report.ok
    assert (report.retries, report.pages) == (0, 0)
    _one_line_without(
        str(report.error), static, [caplog.text, _written(tmp_path)],
        starts="Authorization header: the credential is not a valid HTTP header",
        names="sources.mindful.static_token",
    )  # fmt: skip


@pytest.mark.parametrize("ending", BAD_ENDINGS.values(), ids=BAD_ENDINGS.keys())
def test_a_mindful_token_issued_with_a_line_break_is_named_and_not_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    caplog.set_level(logging.DEBUG)
    issued = "issued-Tk55-never-logged" + ending

    def rewrite(n: int, request: Request, response: Response) -> Response:
        payload = response.payload
        if request.path == TOKEN_PATH and isinstance(payload, dict) and response.status == 200:
            return replace(response, payload=payload | {"access_token": issued}, body=None)
        return response

    with MindfulEmulator(mindful_support.small_attempts()) as emu:
        emu.add_rewrite(rewrite)
        report = _mindful_sync(emu, tmp_path)
        token_url = emu.token_url
        assert emu.stats.by_path == {TOKEN_PATH: 1}  # asked once, the token never used
    assert not report.ok
    assert report.retries == 0
    error = str(report.error)
    assert error == (
        "token exchange: the access_token returned is not a valid header value "
        f"({REASONS[ending]}) ({token_url})"  # no advice to check the client secret: not its fault
    )
    for text in (error, caplog.text, _written(tmp_path)):
        assert "issued-Tk55" not in text


def test_a_run_with_a_newline_in_the_dixa_token_keeps_it_out_of_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported case: ``WFM_SOURCES__DIXA__API_TOKEN`` ending in a newline, ``run --json``:
    refused at load, naming the setting, nothing sent, the token nowhere."""
    run_support.clean_environment(monkeypatch, tmp_path)
    caplog.set_level(logging.DEBUG)
    token = run_support.SECRETS["WFM_SOURCES__DIXA__API_TOKEN"]
    off = {f"sources__{n}": {"enabled": False} for n in ("ujet", "mindful", "kore")}
    with run_support.emulators() as stack:
        config = run_support.write_config(tmp_path, stack, run={"report": False}, **off)
        env = run_support.SECRETS | {"WFM_SOURCES__DIXA__API_TOKEN": token + "\n"}
        result = invoke(cli, ["run", "--json", "--config", str(config)], env)
        assert stack.dixa.stats.requests == 0
    assert result.exit_code == 2, result.output
    line = run_support.one_error_line(result)
    assert "invalid setting sources.dixa.api_token: not a usable credential: it contains a" in line
    for text in (result.output, caplog.text, _written(tmp_path)):
        assert token not in text
