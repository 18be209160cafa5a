"""The error tree, status classification, Retry-After parsing and URL hygiene."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import connectors.errors
from connectors.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    FatalError,
    InsecureURLError,
    InvalidBodyError,
    MaxPagesError,
    PaginationLoopError,
    RateLimitedError,
    RecordError,
    ResponseShapeError,
    RetriableError,
    RetriesExhaustedError,
    ServerError,
    SkippableError,
    StateError,
    TransportError,
    UnexpectedStatusError,
    error_for_status,
    parse_retry_after,
    redact_url,
    require_secure_url,
)

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "branch"),
    [
        (RateLimitedError, RetriableError),
        (ServerError, RetriableError),
        (TransportError, RetriableError),
        (InvalidBodyError, RetriableError),
        (InsecureURLError, ConfigError),
        (ConfigError, FatalError),
        (AuthError, FatalError),
        (ResponseShapeError, FatalError),
        (RetriesExhaustedError, FatalError),
        (StateError, FatalError),
        (PaginationLoopError, FatalError),
        (MaxPagesError, FatalError),
        (RecordError, SkippableError),
    ],
)
def test_tree(error: type[ConnectorError], branch: type[ConnectorError]) -> None:
    assert issubclass(error, branch)
    assert issubclass(branch, ConnectorError)


def test_branches_are_disjoint() -> None:
    branches = (RetriableError, FatalError, SkippableError)
    for i, a in enumerate(branches):
        for b in branches[i + 1 :]:
            assert not issubclass(a, b)
            assert not issubclass(b, a)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bob:s3cret@x.test/a", "https://x.test/a"),
        ("https://x.test/a?page=2&api_key=abc", "https://x.test/a?page=2&api_key=REDACTED"),
        (
            "https://x.test/a?Client_Secret=abc&pageKey=k&page=3",
            "https://x.test/a?Client_Secret=REDACTED&pageKey=REDACTED&page=3",
        ),
        (
            "https://x.test/a?access-token=abc&token=t",
            "https://x.test/a?access-token=REDACTED&token=REDACTED",
        ),
        ("https://x.test/cb#access_token=abc", "https://x.test/cb"),
        ("/v1/calls?per=100", "/v1/calls?per=100"),
        ("http://[::1", "<invalid URL>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "name",
    [
        *("apitoken", "access_key", "x-api-key", "subscription-key", "Ocp-Apim-Subscription-Key"),
        *("X-Amz-Signature", "sig", "sv_signature", "password", "passwd", "client_credential"),
        *("Authorization", "oauth_verifier", "id_token", "clientSecret", "sessionid", "code"),
    ],
)
def test_every_parameter_named_as_a_secret_is_masked(name: str) -> None:
    url = f"https://x.test/a?page=2&{name}=Vq83-secret&from=2026-10-01"
    assert redact_url(url) == f"https://x.test/a?page=2&{name}=REDACTED&from=2026-10-01"


@pytest.mark.parametrize("name", ["page", "per_page", "from", "to", "status", "country_code"])
def test_other_parameters_are_shown(name: str) -> None:
    assert redact_url(f"https://x.test/a?{name}=v1") == f"https://x.test/a?{name}=v1"


def test_messages_carry_the_redacted_url_only() -> None:
    err = ServerError("HTTP 503", url="https://u:pw@x.test/a?password=hunter2")
    assert str(err) == "HTTP 503 (https://x.test/a?password=REDACTED)"
    assert "pw" not in repr(err.args)
    assert "hunter2" not in str(err)
    assert err.url == "https://x.test/a?password=REDACTED"


def test_record_error_has_a_reason() -> None:
    err = RecordError("missing_record_id", "no key")
    assert err.reason == "missing_record_id"
    assert str(err) == "no key"


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (200, {}, None, None),
        (204, {}, None, None),
        (401, {}, AuthError, None),
        (403, {"Retry-After": "5"}, AuthError, None),
        (429, {}, RateLimitedError, None),
        (429, {"Retry-After": "5"}, RateLimitedError, 5.0),
        (408, {}, ServerError, None),
        (500, {}, ServerError, None),
        (503, {"Retry-After": "Thu, 01 Oct 2026 12:00:30 GMT"}, ServerError, 30.0),
        (301, {}, UnexpectedStatusError, None),
        (400, {}, UnexpectedStatusError, None),
        (404, {}, UnexpectedStatusError, None),
    ],
)
def test_error_for_status(
    status: int,
    headers: dict[str, str],
    kind: type[ConnectorError] | None,
    retry_after: float | None,
) -> None:
    err = error_for_status(status, headers, url="https://x.test/a", now=NOW)
    if kind is None:
        assert err is None
        return
    assert type(err) is kind
    assert getattr(err, "retry_after", None) == retry_after
    if isinstance(err, UnexpectedStatusError):
        assert err.status == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-3", None),
        ("soon", None),
        ("", None),
        ("1e3", None),
        ("Thu, 01 Oct 2026 12:01:00 GMT", 60.0),
        ("Thursday, 01-Oct-26 12:01:00 GMT", 60.0),
        ("Thu Oct  1 12:01:00 2026", 60.0),
        ("Thu, 01 Oct 2026 11:00:00 GMT", 0.0),
        ("Thu, 99 Oct 2026 11:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, now=NOW)
    assert result is None or result >= 0


@given(st.integers(min_value=0, max_value=10**9))
def test_parse_retry_after_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW) == float(seconds)


@given(st.integers(min_value=-(10**6), max_value=10**8))
def test_parse_retry_after_http_date_round_trip(offset: int) -> None:
    header = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(header, now=NOW) == max(0.0, float(offset))


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1",
        "http://127.0.0.1:8080",
        "http://127.9.8.7/x",
        "http://[::1]:9000/",
        "http://localhost:1234",
        "http://LOCALHOST",
    ],
)
def test_secure_urls_pass(url: str) -> None:
    parsed = require_secure_url(url, setting="ujet.base_url")
    assert parsed.scheme in ("http", "https")
    assert parsed.host


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://api.example.com/v1", InsecureURLError),
        ("http://10.0.0.1/", InsecureURLError),
        ("http://localhost.example.com/", InsecureURLError),
        ("http://128.0.0.1/", InsecureURLError),
        ("https://user:hunter2@api.example.com/", InsecureURLError),
        ("ftp://api.example.com/", ConfigError),
        ("api.example.com/v1", ConfigError),
        ("", ConfigError),
    ],
)
def test_insecure_urls_fail_naming_the_setting(url: str, error: type[ConfigError]) -> None:
    with pytest.raises(error) as info:
        require_secure_url(url, setting="dixa.base_url")
    message = str(info.value)
    assert message.startswith("dixa.base_url: ")
    assert "hunter2" not in message
    assert "\n" not in message


def test_docstring_examples_run() -> None:
    result = doctest.testmod(connectors.errors)
    assert result.attempted > 0
    assert result.failed == 0
