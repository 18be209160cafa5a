"""The client factory, the URL policy, the auth flows and the OAuth2 token provider."""

from __future__ import annotations

import base64
import doctest
import gzip
import itertools
import json
import logging
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

import connectors.http
import connectors.wire.jsonbody
from connectors.errors import (
    AuthError,
    ConfigError,
    InsecureURLError,
    RateLimitedError,
    ResponseShapeError,
    ResponseTooLargeError,
    RetriableError,
    RetriesExhaustedError,
    ServerError,
    TransportError,
    UnexpectedStatusError,
)
from connectors.http import (
    DEFAULT_MAX_BYTES,
    USER_AGENT,
    BearerAuth,
    Client,
    HeaderAuth,
    OAuth2ClientCredentials,
    Timeouts,
    basic_auth,
    make_client,
    parse_json,
    send_request,
)
from connectors.retry import ApiRequest, RetryPolicy, send_json

SECRET = "s3cr3t-Pa55word"  # noqa: S105 - a fake credential the tests look for in outputs


def recording(
    status: int = 200, body: object = None
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body if body is not None else {"data": []})

    return httpx.MockTransport(handler), seen


# -- the client ------------------------------------------------------------------------------------


def test_client_defaults() -> None:
    client = make_client("https://acme.ujet.test/manager/api/v1", setting="ujet.base_url")
    assert str(client.base_url) == "https://acme.ujet.test/manager/api/v1/"
    assert client.headers["User-Agent"] == USER_AGENT
    assert client.headers["Accept"] == "application/json"
    assert client.follow_redirects is False
    assert client.timeout == httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)


def test_client_timeouts_user_agent_and_headers() -> None:
    client = make_client(
        "http://127.0.0.1:9",
        timeouts=Timeouts(connect=1, read=2, write=3, pool=4),
        user_agent="wfm-test/1",
        headers={"X-Tenant": "acme"},
    )
    assert client.timeout == httpx.Timeout(connect=1, read=2, write=3, pool=4)
    assert client.headers["User-Agent"] == "wfm-test/1"
    assert client.headers["X-Tenant"] == "acme"


def test_plain_http_to_a_remote_host_is_refused_naming_the_setting() -> None:
    with pytest.raises(InsecureURLError, match=r"^kore\.base_url: HTTPS is required"):
        make_client("http://kore.example.com/agentassist", setting="kore.base_url")


def test_credentials_in_the_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(InsecureURLError) as info:
        make_client(f"https://api:{SECRET}@ujet.example.com", setting="ujet.base_url")
    assert SECRET not in str(info.value)
    assert "ujet.base_url" in str(info.value)


def test_redirects_are_not_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://evil.test/steal"})

    client = make_client("https://api.test", transport=httpx.MockTransport(handler))
    with pytest.raises(UnexpectedStatusError) as info:
        send_request(client, client.build_request("GET", "calls"))
    assert info.value.status == 302


def test_requests_never_leave_the_base_origin() -> None:
    transport, seen = recording()
    client = make_client(
        "https://api.test/v1", transport=transport, auth=basic_auth("u", SecretStr(SECRET))
    )
    for url in ("https://evil.test/x", "http://api.test/x", "https://api.test:8443/x"):
        with pytest.raises(InsecureURLError):
            send_json(client, ApiRequest(url=url))
    assert seen == []
    send_json(client, ApiRequest(url="https://api.test/v1/calls"))  # same origin: fine
    assert len(seen) == 1


def test_a_client_without_base_url_still_applies_the_https_rule() -> None:
    transport, seen = recording()
    with Client(total=30.0, transport=transport) as client:
        with pytest.raises(InsecureURLError):
            send_request(client, client.build_request("GET", "http://api.example.com/x"))
        with pytest.raises(ConfigError):
            send_request(client, client.build_request("GET", "ftp://api.example.com/x"))
    assert seen == []


def test_parse_json_reports_the_url_without_secrets() -> None:
    request = httpx.Request("GET", "https://api.test/x?token=abc")
    with pytest.raises(
        Exception, match=r"not valid JSON \(5 bytes\) \(https://api\.test/x\?token=REDACTED\)"
    ):
        parse_json(httpx.Response(200, content=b"[1, 2", request=request))


def nested(depth: int, inner: bytes = b"") -> bytes:
    """A body ``depth`` levels deep: arrays around one object, ``inner`` its members."""
    return b"[" * (depth - 1) + b"{" + inner + b"}" + b"]" * (depth - 1)


#: What makes parse_json read with :mod:`json` rather than orjson (a body otherwise plain).
SLOW = {
    "plain": b"",
    "integer beyond 64 bits": b'"n":123456789012345678901234',
    "NaN": b'"n":NaN',
    "half an emoji": b'"t":"\\ud83d"',
}


@pytest.mark.parametrize("inner", list(SLOW.values()), ids=list(SLOW))
def test_a_body_as_deep_as_max_depth_is_read(inner: bytes) -> None:
    depth = connectors.wire.jsonbody.MAX_DEPTH
    value = parse_json(httpx.Response(200, content=nested(depth, inner)))
    for _ in range(depth - 1):
        (value,) = value
    assert isinstance(value, dict)


@pytest.mark.parametrize("depth", [255, 1_000, 1_025, 5_000, 100_000])
@pytest.mark.parametrize("inner", list(SLOW.values()), ids=list(SLOW))
def test_a_body_nested_deeper_is_a_fatal_error_not_a_traceback(depth: int, inner: bytes) -> None:
    """JSON sets no depth limit. Past orjson's (1,024 levels), ``json.loads`` raised
    RecursionError, a traceback out of the sync; below it, what reads a record after (the PII
    scrubber, the landing's JSON writer) could. The same body would come again: not retried."""
    request = httpx.Request("GET", "https://api.test/calls?token=abc")
    response = httpx.Response(200, content=nested(depth, inner), request=request)
    with pytest.raises(ResponseShapeError) as info:
        parse_json(response)
    assert not isinstance(info.value, RetriableError)
    assert str(info.value).startswith("HTTP 200: body nested deeper than 254 levels (")
    assert str(info.value).endswith("(https://api.test/calls?token=REDACTED)")


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        # an emoji cut in half (its high surrogate alone): JSON allows it, UTF-8 cannot hold it
        (rb'{"queue": "Sales \ud83d", "n": 1}', {"queue": "Sales \ufffd", "n": 1}),
        (rb'["\udc00 low first", {"\ud800": ["\ud800\ud800"]}]',
         ["\ufffd low first", {"\ufffd": ["\ufffd\ufffd"]}]),
        # in the same body: a whole pair stays the emoji, an escaped backslash stays text
        (rb'["\ud83d", "\ud83d\ude00", "\\ud83d"]', ["\ufffd", "\U0001f600", "\\ud83d"]),
    ],
)  # fmt: skip
def test_a_lone_surrogate_escape_is_read_as_the_replacement_character(
    body: bytes, parsed: object
) -> None:
    """A vendor's text with half an emoji (a chat cut at a length limit) would stop every
    sync of the stream at the same page: no UTF-8 store can hold it. It reads as U+FFFD."""
    got = parse_json(httpx.Response(200, content=body))
    assert got == parsed
    json.dumps(got, ensure_ascii=False).encode()  # now text that UTF-8 holds


# -- the body size cap -----------------------------------------------------------------------------


class Endless:
    """A response body of endless 1 KiB chunks that counts what was read of it."""

    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in itertools.count():
            self.sent += 1024
            yield b" " * 1024


def streaming(status: int, body: Endless) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return make_client("https://api.test", transport=httpx.MockTransport(handler))


def test_a_body_over_the_cap_is_fatal_and_read_no_further() -> None:
    body = Endless()
    client = streaming(200, body)
    with pytest.raises(ResponseTooLargeError, match=r"max_page_bytes=10000 \(https://api.test/x\)"):
        send_request(client, client.build_request("GET", "x"), max_bytes=10_000)
    assert 10_000 < body.sent <= 10_000 + 1024  # the cap plus the chunk that crossed it
    assert not issubclass(ResponseTooLargeError, RetriableError)


def test_a_declared_length_over_the_cap_fails_before_reading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" + b"0," * 600 + b"0]")

    client = make_client("https://api.test", transport=httpx.MockTransport(handler))
    with pytest.raises(ResponseTooLargeError):
        send_request(client, client.build_request("GET", "x"), max_bytes=1_000)
    ok = send_request(client, client.build_request("GET", "x"), max_bytes=1_203)  # exactly
    assert len(parse_json(ok)) == 601


def test_the_cap_counts_decoded_bytes() -> None:
    """A small gzip body that inflates past the cap is refused (a zip bomb stays small)."""
    packed = gzip.compress(b"[" + b" " * 50_000 + b"]")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=packed, headers={"Content-Encoding": "gzip"})

    client = make_client("https://api.test", transport=httpx.MockTransport(handler))
    assert len(packed) < 1_000
    with pytest.raises(ResponseTooLargeError):
        send_request(client, client.build_request("GET", "x"), max_bytes=10_000)
    assert parse_json(send_request(client, client.build_request("GET", "x"))) == []


def test_an_error_status_is_raised_without_reading_its_body() -> None:
    body = Endless()
    client = streaming(503, body)
    with pytest.raises(ServerError, match="HTTP 503"):
        send_request(client, client.build_request("GET", "x"))
    assert body.sent == 0


def test_an_oversized_body_is_not_retried_and_the_default_cap_is_20_mib() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, content=b"<html>" + b"x" * 5_000)  # not JSON, and too big

    client = make_client("https://api.test", transport=httpx.MockTransport(handler))
    with pytest.raises(ResponseTooLargeError):
        send_json(
            client, ApiRequest(url="x"), retry=RetryPolicy(sleep=lambda s: None), max_bytes=4_096
        )
    assert calls == [1]
    assert DEFAULT_MAX_BYTES == 20 * 2**20


# -- auth flows ------------------------------------------------------------------------------------


def test_basic_auth() -> None:
    transport, seen = recording()
    client = make_client(
        "https://api.test", transport=transport, auth=basic_auth("api-user", SecretStr(SECRET))
    )
    send_json(client, ApiRequest(url="calls"))
    scheme, token = seen[0].headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == f"api-user:{SECRET}"


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (HeaderAuth("auth", SecretStr("jwt.token.sig")), "auth", "jwt.token.sig"),
        (
            HeaderAuth("Authorization", SecretStr("tok"), scheme="Bearer"),
            "Authorization",
            "Bearer tok",
        ),
        (HeaderAuth("Authorization", SecretStr("dixa-key")), "Authorization", "dixa-key"),
    ],
)
def test_header_auth(auth: HeaderAuth, header: str, value: str) -> None:
    transport, seen = recording()
    send_json(make_client("https://api.test", transport=transport, auth=auth), ApiRequest(url="x"))
    assert seen[0].headers[header] == value


def test_auth_objects_do_not_reveal_secrets() -> None:
    objects = [
        basic_auth("u", SecretStr(SECRET)),
        HeaderAuth("auth", SecretStr(SECRET)),
        OAuth2ClientCredentials("https://id.test/token", "app", SecretStr(SECRET)),
    ]
    for obj in objects:
        assert SECRET not in repr(obj)
        assert SECRET not in str(vars(obj))


class FakeProvider:
    def __init__(self) -> None:
        self.tokens = iter(["old", "new", "newer"])
        self.current: str | None = None
        self.invalidated = 0

    def token(self) -> SecretStr:
        if self.current is None:
            self.current = next(self.tokens)
        return SecretStr(self.current)

    def invalidate(self) -> None:
        self.invalidated += 1
        self.current = None


def test_bearer_refreshes_once_after_a_401() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(
            401 if request.headers["Authorization"] == "Bearer old" else 200, json=[]
        )

    provider = FakeProvider()
    client = make_client(
        "https://api.test", transport=httpx.MockTransport(handler), auth=BearerAuth(provider)
    )
    assert send_json(client, ApiRequest(url="x")).body == []
    assert seen == ["Bearer old", "Bearer new"]
    assert provider.invalidated == 1


def test_bearer_gives_up_after_the_second_401() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    provider = FakeProvider()
    client = make_client(
        "https://api.test", transport=httpx.MockTransport(handler), auth=BearerAuth(provider)
    )
    with pytest.raises(AuthError, match="HTTP 401"):
        send_json(client, ApiRequest(url="x"), retry=RetryPolicy(sleep=lambda s: None))
    assert provider.invalidated == 1


# -- OAuth2 client credentials ---------------------------------------------------------------------


class TokenServer:
    """A token endpoint on a MockTransport that counts exchanges."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.responses:
            return self.responses.pop(0)
        n = len(self.requests)
        return httpx.Response(
            200, json={"access_token": f"tok-{n}", "expires_in": 3600, "token_type": "Bearer"}
        )


def provider(server: TokenServer, now: list[float], **kw: object) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        "https://auth.mindful.test/oauth/token",
        "client-1",
        SecretStr(SECRET),
        transport=httpx.MockTransport(server),
        clock=lambda: now[0],
        **kw,  # type: ignore[arg-type]
    )


def test_token_is_cached_and_refreshed_before_expiry() -> None:
    server, now = TokenServer(), [0.0]
    p = provider(server, now, margin=60.0)
    assert p.token().get_secret_value() == "tok-1"
    now[0] = 3539.0
    assert p.token().get_secret_value() == "tok-1"
    now[0] = 3540.0  # 60 s before the hour is up
    assert p.token().get_secret_value() == "tok-2"
    assert len(server.requests) == 2


def test_token_exchange_request() -> None:
    server, now = TokenServer(), [0.0]
    provider(server, now, scope="historical").token()
    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://auth.mindful.test/oauth/token"
    form = parse_qs(request.content.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["historical"]}
    assert (
        base64.b64decode(request.headers["Authorization"].split()[1]).decode()
        == f"client-1:{SECRET}"
    )


def test_token_exchange_with_credentials_in_the_body() -> None:
    server, now = TokenServer(), [0.0]
    provider(server, now, client_auth="body").token()
    form = parse_qs(server.requests[0].content.decode())
    assert form["client_id"] == ["client-1"]
    assert form["client_secret"] == [SECRET]
    assert "Authorization" not in server.requests[0].headers


def test_short_lived_tokens_refresh_at_half_life() -> None:
    server, now = (
        TokenServer(httpx.Response(200, json={"access_token": "a", "expires_in": 30})),
        [0.0],
    )
    p = provider(server, now, margin=60.0)
    p.token()
    now[0] = 14.9
    assert p.token().get_secret_value() == "a"
    now[0] = 15.0
    assert p.token().get_secret_value() == "tok-2"


@pytest.mark.parametrize("expires_in", ["soon", "nan", "inf", None])
def test_unusable_expiry_defaults_to_an_hour(expires_in: object) -> None:
    reply = {"access_token": "a", "expires_in": expires_in}
    server, now = TokenServer(httpx.Response(200, json=reply)), [0.0]
    p = provider(server, now, margin=0.0)
    p.token()
    now[0] = 3599.0
    assert p.token().get_secret_value() == "a"
    now[0] = 3600.0
    assert p.token().get_secret_value() == "tok-2"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_refused_exchange_is_an_auth_error(status: int) -> None:
    server, now = (
        TokenServer(httpx.Response(status, json={"error": "invalid_client", "secret": SECRET})),
        [0.0],
    )
    with pytest.raises(AuthError) as info:
        provider(server, now).token()
    assert "token exchange refused" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "reply", [{"token_type": "Bearer"}, {"access_token": ""}, {"access_token": 5}, ["x"]]
)
def test_exchange_without_a_token_is_an_auth_error(reply: object) -> None:
    server, now = TokenServer(httpx.Response(200, json=reply)), [0.0]
    with pytest.raises(AuthError, match="no access_token"):
        provider(server, now).token()


@pytest.mark.parametrize(
    ("failure", "error"),
    [(httpx.Response(503), ServerError), (httpx.Response(429), RateLimitedError)],
)
def test_exchange_outages_are_retriable(failure: httpx.Response, error: type[Exception]) -> None:
    server, now = TokenServer(failure), [0.0]
    with pytest.raises(error):
        provider(server, now).token()


def test_token_endpoint_must_be_https() -> None:
    with pytest.raises(InsecureURLError, match=r"^mindful\.token_url: "):
        OAuth2ClientCredentials(
            "http://auth.example.com/token", "c", SecretStr("s"), setting="mindful.token_url"
        )


def test_oauth_end_to_end_with_retry_through_a_token_outage() -> None:
    """A 503 from the token endpoint is retried by the caller's policy like any other call."""
    server, now = TokenServer(httpx.Response(503)), [0.0]
    api_seen: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        api_seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"data": []})

    client = make_client(
        "https://api.mindful.test",
        transport=httpx.MockTransport(api),
        auth=BearerAuth(provider(server, now)),
    )
    send_json(
        client,
        ApiRequest(url="v2/data/historical/20261001/01"),
        retry=RetryPolicy(sleep=lambda s: None),
    )
    assert api_seen == ["Bearer tok-2"]


def test_no_secret_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    statuses = [503, 503, 200, 503]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(statuses.pop(0), json={"data": []})

    caplog.set_level(logging.DEBUG)
    auth = basic_auth("u", SecretStr(SECRET))
    client = make_client("https://api.test", transport=httpx.MockTransport(handler), auth=auth)
    send_json(client, ApiRequest(url="calls"), retry=RetryPolicy(sleep=lambda s: None))
    once = RetryPolicy(sleep=lambda s: None, max_attempts=1)
    with pytest.raises(RetriesExhaustedError) as info:
        send_json(client, ApiRequest(url="calls"), retry=once)
    assert "retrying" in caplog.text
    assert "HTTP Request" in caplog.text  # httpx's own request log is captured too
    encoded = base64.b64encode(f"u:{SECRET}".encode()).decode()
    for text in (caplog.text, str(info.value), repr(info.value.__cause__)):
        assert SECRET not in text
        assert encoded not in text


@pytest.mark.parametrize("module", [connectors.http, connectors.wire.jsonbody])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


def test_each_client_carries_its_own_total_and_a_plain_one_is_refused() -> None:
    """The total deadline sat in a module-level map with a fallback to the default 300 s: a
    client built any other way was silently held to 300 s. It is the client's own attribute
    now, and a client without one is refused rather than given a default."""
    ok = httpx.MockTransport(lambda _: httpx.Response(200, json=[1]))
    assert make_client("https://api.test", timeouts=Timeouts(total=7.0)).total == 7.0
    over = make_client("https://api.test", transport=ok, timeouts=Timeouts(total=-1.0))
    with pytest.raises(TransportError, match=r"timeouts.total=-1 s"):  # its deadline has passed
        send_request(over, over.build_request("GET", "x"))
    with httpx.Client(transport=ok) as plain, pytest.raises(TypeError, match="make_client"):
        send_request(plain, plain.build_request("GET", "https://api.test/x"))
