"""The connector error tree, status classification, and the URL hygiene that keeps secrets safe.

Every failure the shared connector layer raises is a :class:`ConnectorError`. What the caller should
do is decided by the branch, never by parsing a message::

    ConnectorError                  anything a connector raises on purpose
    ├── RetriableError              transient: the retry loop backs off and tries again
    │   ├── RateLimitedError        HTTP 429 (carries Retry-After when the server sent one)
    │   ├── ServerError             HTTP 5xx and 408 (carries Retry-After when sent)
    │   ├── TransportError          timeouts, refused or dropped connections, protocol errors
    │   └── InvalidBodyError        a 2xx whose body is truncated or not JSON
    ├── FatalError                  stop this source with a one-line message, exit non-zero
    │   ├── ConfigError             a setting is missing or invalid (names the setting)
    │   │   └── InsecureURLError    plain http to a non-loopback host, or userinfo in a URL
    │   ├── AuthError               401/403, or the token exchange was refused
    │   ├── UnexpectedStatusError   any other non-2xx status (3xx, 4xx)
    │   ├── ResponseShapeError      valid JSON, but not the shape the stream declares
    │   ├── ResponseTooLargeError   a body over the stream's size cap (never read past it)
    │   ├── RetriesExhaustedError   a retriable error kept happening (it is the __cause__)
    │   ├── StateError              an unreadable or invalid state file, or a lost one
    │   ├── LandingError            a lost landing file whose records cannot be fetched again
    │   └── PaginationError
    │       ├── PaginationLoopError the same next request twice
    │       ├── MaxPagesError       more pages than the stream's max-pages guard
    │       └── PageInvariantError  a page breaks its paging kind's rules (``invariant`` names it)
    │           └── RepeatedPageError two pages in a row with only records already seen
    └── SkippableError              one record or item is bad: quarantine it, carry on
        └── RecordError             a record cannot be landed (e.g. no primary key)

:func:`require_secure_url` is the transport policy (HTTPS unless the host is loopback, no
credentials in URLs). :func:`error_for_status` maps an HTTP status (and ``Retry-After``, parsed by
:func:`parse_retry_after`) onto this tree; it is the one place that decides what is retriable.
Messages name the setting, the status and the URL as rendered by :func:`redact_url` (no userinfo,
no fragment, secret-looking query values masked) and never include response bodies, which may echo
tokens.

Example:
    >>> from connectors.errors import RateLimitedError, RetriableError
    >>> err = RateLimitedError("HTTP 429", url="https://u:p@x.test/a?token=s", retry_after=2.0)
    >>> isinstance(err, RetriableError), str(err)
    (True, 'HTTP 429 (https://x.test/a?token=REDACTED)')
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from pydantic import SecretStr

from engine import clock
from engine.errors import WfmError

__all__ = [
    "AuthError",
    "ConfigError",
    "ConnectorError",
    "FatalError",
    "InsecureURLError",
    "InvalidBodyError",
    "LandingError",
    "MaxPagesError",
    "PageInvariantError",
    "PaginationError",
    "PaginationLoopError",
    "RateLimitedError",
    "RecordError",
    "RepeatedPageError",
    "ResponseShapeError",
    "ResponseTooLargeError",
    "RetriableError",
    "RetriesExhaustedError",
    "ServerError",
    "SkippableError",
    "StateError",
    "TransportError",
    "UnexpectedStatusError",
    "advice",
    "error_for_status",
    "is_loopback",
    "is_missing_allowed",
    "missing_allowed",
    "name_source",
    "parse_retry_after",
    "redact_url",
    "require_secure_url",
]

#: Query parameter names (lower-cased, ``-`` and ``_`` removed) whose values are masked.
#: A query parameter whose value is masked: a name (lower-cased, ``-`` and ``_`` removed) that
#: contains one of these (``apitoken``, ``x-api-key``, ``X-Amz-Signature``; a ``pageKey`` too:
#: masking a cursor costs less than showing a key), or is ``code`` (an OAuth grant's).
_SECRET_PARAM = re.compile(r"key|token|secret|sig|pass|pwd|auth|credential|jwt|session|\Acode\Z")
_SECONDS = re.compile(r"\s*(\d{1,12}(?:\.\d{1,6})?)\s*")


def redact_url(url: str | httpx.URL) -> str:
    """Render a URL (absolute or relative) without userinfo or fragment, secret query values masked.

    Example:
        >>> redact_url("https://bob:pw@x.test/v1/calls?page=2&api_key=abc")
        'https://x.test/v1/calls?page=2&api_key=REDACTED'
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"
    if parsed.userinfo or parsed.fragment:
        parsed = parsed.copy_with(username=None, password=None, fragment=None)
    if parsed.query:
        pairs: list[tuple[str, str | int | float | bool | None]] = [
            (k, "REDACTED" if _SECRET_PARAM.search(re.sub(r"[-_]", "", k.lower())) else v)
            for k, v in parsed.params.multi_items()
        ]
        parsed = parsed.copy_with(params=httpx.QueryParams(pairs))
    return str(parsed)


class ConnectorError(WfmError):
    """Base of every error the connector layer raises on purpose.

    Args:
        message: What went wrong, without secrets.
        url: The URL involved, if any; it is redacted before it is stored or shown.
    """

    def __init__(self, message: str, *, url: str | httpx.URL | None = None) -> None:
        self.url = None if url is None else redact_url(url)
        super().__init__(message if self.url is None else f"{message} ({self.url})")


class RetriableError(ConnectorError):
    """A transient failure; ``retry_after`` is the server's requested delay in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        url: str | httpx.URL | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.retry_after = retry_after


class RateLimitedError(RetriableError):
    """HTTP 429 Too Many Requests."""


class ServerError(RetriableError):
    """HTTP 5xx or 408: the server failed or timed out this time."""


class TransportError(RetriableError):
    """A timeout, a refused or dropped connection, or a broken HTTP exchange."""


class InvalidBodyError(RetriableError):
    """A successful status with a body that is truncated or not JSON."""


class FatalError(ConnectorError):
    """Retrying will not help: stop the source and report one line."""


class ConfigError(FatalError):
    """A setting is missing or invalid; the message names the setting, never its secret value."""


class InsecureURLError(ConfigError):
    """A URL that would send credentials in clear text (or embeds them)."""


class AuthError(FatalError):
    """The credentials were refused (401/403) or the token exchange failed for good."""


class UnexpectedStatusError(FatalError):
    """A non-2xx status that is neither retriable nor an auth failure."""

    def __init__(self, status: int, *, url: str | httpx.URL | None = None) -> None:
        super().__init__(f"unexpected HTTP status {status}", url=url)
        self.status = status


class ResponseShapeError(FatalError):
    """The body parsed as JSON but does not have the declared shape."""


class ResponseTooLargeError(FatalError):
    """A response body is larger than the cap (``max_bytes``); reading stopped at the cap."""

    def __init__(self, max_bytes: int, *, url: str | httpx.URL | None = None) -> None:
        super().__init__(f"response body over the cap of max_page_bytes={max_bytes}", url=url)
        self.max_bytes = max_bytes


class RetriesExhaustedError(FatalError):
    """The retry budget is spent; the last retriable error is the ``__cause__``."""


class StateError(FatalError):
    """A state file cannot be read or does not validate, or is missing while landed files
    depend on it (:mod:`connectors.landing.check`)."""


class LandingError(FatalError):
    """A landing file is lost or damaged and its records cannot be fetched again by themselves
    (where they start is not known); the message names the file and the command that fixes it."""


class PaginationError(FatalError):
    """Pagination cannot continue safely."""


class PaginationLoopError(PaginationError):
    """A paginator produced a request that was already sent in this iteration."""


class MaxPagesError(PaginationError):
    """A stream returned more pages than its max-pages guard allows."""


class PageInvariantError(PaginationError):
    """A page breaks an invariant of its paging kind; ``invariant`` is its short name.

    Example:
        >>> str(PageInvariantError("cursor_order", "page 4: updated_at goes back"))
        'paging invariant cursor_order violated: page 4: updated_at goes back'
    """

    def __init__(self, invariant: str, detail: str, *, url: str | httpx.URL | None = None) -> None:
        super().__init__(f"paging invariant {invariant} violated: {detail}", url=url)
        self.invariant = invariant


class RepeatedPageError(PageInvariantError):
    """Two pages in a row whose records were all seen already in this sync."""


class SkippableError(ConnectorError):
    """One item is bad; quarantine it and continue with the rest."""


class RecordError(SkippableError):
    """A record that cannot be landed; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds from ``now``.

    Accepts delta-seconds (RFC 9110; a decimal fraction is tolerated) and an HTTP-date. A date in
    the past gives ``0.0``. Anything else (absent, negative, garbage) gives ``None``, and the
    caller falls back to its own backoff. Never raises.

    Args:
        value: The header value, or ``None`` when the header is absent.
        now: The current time (aware); defaults to the system clock.

    Returns:
        The delay in seconds (``>= 0``), or ``None``.

    Example:
        >>> parse_retry_after("7")
        7.0
        >>> parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=datetime(2026, 1, 1, tzinfo=UTC))
        30.0
    """
    if value is None:
        return None
    match = _SECONDS.fullmatch(value)
    if match:
        return float(match.group(1))
    try:
        when = parsedate_to_datetime(value.strip())
        if when.tzinfo is None:  # the obsolete RFC 850 and asctime forms: HTTP-dates are GMT
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or clock.now())).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def error_for_status(
    status: int, headers: Mapping[str, str], *, url: str | httpx.URL, now: datetime | None = None
) -> ConnectorError | None:
    """Classify a response status: ``None`` for 2xx, else the error to raise.

    401/403 are :class:`AuthError`; 429 is :class:`RateLimitedError`; 408 and 5xx are
    :class:`ServerError` (both carry ``Retry-After`` when sent); anything else (3xx, other 4xx)
    is :class:`UnexpectedStatusError`.

    Example:
        >>> err = error_for_status(429, {"Retry-After": "3"}, url="https://x.test/a")
        >>> type(err).__name__, err.retry_after
        ('RateLimitedError', 3.0)
    """
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return AuthError(f"HTTP {status}: credentials refused", url=url)
    retry_after = parse_retry_after(headers.get("Retry-After"), now=now)
    if status == 429:
        return RateLimitedError("HTTP 429 Too Many Requests", url=url, retry_after=retry_after)
    if status == 408 or 500 <= status < 600:
        return ServerError(f"HTTP {status}", url=url, retry_after=retry_after)
    return UnexpectedStatusError(status, url=url)


#: Settings that name who signs in: a refused credential may be theirs as much as the secret's.
_USER_NAMES = ("username", "client_id", "app_id")


def advice(
    exc: ConnectorError,
    *,
    source: str,
    stream: str,
    settings: Iterable[tuple[str, object]],
    pages: int = 0,
) -> str:
    """What to do about ``exc``, a failure of ``source/stream`` after ``pages`` pages, to append
    to its line ('' when nothing is known): a 404 of its first request, the stream setting (a
    404 after pages were read: how many, the stream is there); a refused credential, the
    credential settings
    among ``settings`` (a source settings model's fields): the secrets set but the PII hashing
    key, and the user name beside them when it is set (``username``, ``client_id``, Kore.ai's
    ``app_id``: a JWT with the wrong ``appId`` is refused as one with the wrong key; only names,
    never a value).

    Example:
        >>> advice(AuthError("HTTP 401: credentials refused"), source="ujet", stream="calls",
        ...        settings=[("username", "acme"), ("password", SecretStr("x")), ("per", 9)])[:52]
        '; check sources.ujet.username, sources.ujet.password'
    """
    if stream and isinstance(exc, UnexpectedStatusError) and exc.status == 404 and pages:
        return f"; the page after {pages} page{'s' * (pages != 1)} of {stream} was not found"
    if stream and isinstance(exc, UnexpectedStatusError) and exc.status == 404:
        return f"; if this tenant has no {stream}, leave the stream out: sources.{source}.streams"
    secret = [n for n, v in settings if isinstance(v, SecretStr) and n != "pii_hash_secret"]
    if isinstance(exc, AuthError) and secret:
        named = [n for n, v in settings if n in _USER_NAMES and v] + secret
        where = ", ".join(f"sources.{source}.{c}" for c in named)  # [tenants.<name>] may set it
        return f"; check {where} (`wfm-intervals config show --origin` says where it is set)"
    return ""


def name_source(exc: ConnectorError, source: str, settings: Iterable[tuple[str, object]]) -> None:
    """Put ``source`` (and :func:`advice`) in the line of ``exc``, an error of its preflight (a
    check before any stream, such as Dixa's records catalogue), as a stream's error has its
    stream; a settings error keeps its line, which names the setting.

    Example:
        >>> exc = RetriesExhaustedError("gave up after 3 attempts: HTTP 503")
        >>> name_source(exc, "dixa", [])
        >>> str(exc)
        'dixa: gave up after 3 attempts: HTTP 503'
    """
    if not isinstance(exc, ConfigError):
        exc.args = (f"{source}: {exc}{advice(exc, source=source, stream='', settings=settings)}",)


def require_secure_url(url: str | httpx.URL, *, setting: str) -> httpx.URL:
    """Check a URL: absolute http(s), no userinfo, and HTTPS unless the host is loopback.

    Raises:
        ConfigError: Not an absolute http(s) URL (the message names ``setting``).
        InsecureURLError: Userinfo in the URL, or plain http to a non-loopback host.

    Example:
        >>> str(require_secure_url("http://127.0.0.1:8080/v1", setting="ujet.base_url"))
        'http://127.0.0.1:8080/v1'
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigError(f"{setting}: not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{setting}: must be an absolute http(s) URL", url=parsed)
    if parsed.userinfo:
        raise InsecureURLError(f"{setting}: credentials must not be in the URL", url=parsed)
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise InsecureURLError(f"{setting}: HTTPS is required for non-loopback hosts", url=parsed)
    return parsed


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_MISSING_ALLOWED: ContextVar[bool] = ContextVar("wfm_missing_allowed", default=False)


@contextmanager
def missing_allowed(allowed: bool = True) -> Iterator[None]:
    """Within it, an enabled source's settings validate without what it needs to run (a
    password, a base URL): ``config show`` prints the rest and lists what is missing."""
    token = _MISSING_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _MISSING_ALLOWED.reset(token)


def is_missing_allowed() -> bool:
    """Inside :func:`missing_allowed`."""
    return _MISSING_ALLOWED.get()
