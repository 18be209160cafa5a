"""Resilient calls: a request as data, rate limited, retried with backoff, jitter, ``Retry-After``.

:func:`send_json` sends an :class:`ApiRequest` (waiting for the connector's
:class:`~connectors.ratelimit.RateLimiter` before every attempt, retries included) and returns an
:class:`ApiResponse` with the parsed JSON. A :class:`SequentialLimiter` wraps a connector's
limiter so that its windows also count from the responses (the syncs send one request at a time).

A :class:`RetryPolicy` calls a function and retries it while it raises a
:class:`~connectors.errors.RetriableError` (429, 5xx, timeouts, dropped connections, truncated
JSON: :func:`~connectors.errors.error_for_status` and :mod:`connectors.http` classify them).
Before attempt ``n + 1`` it sleeps:

* the server's ``Retry-After`` (seconds or an HTTP-date, parsed by
  :func:`~connectors.errors.parse_retry_after`), capped at ``max_retry_after``, when the
  error carries one: none of our vendors documents the header, but a server that sends it knows
  better than our guess;
* otherwise a "full jitter" delay, uniform in ``[0, min(max_delay, base_delay * 2 ** (n - 1))]``,
  which spreads retries of concurrent workers best (AWS architecture blog, "Exponential Backoff
  and Jitter").

A :class:`~connectors.http.ConnectFailedError` (no connection made) has a smaller budget,
``max_connect_attempts``, and a host name that does not resolve is not retried at all: those
failures do not heal within a backoff's seconds, and seven warnings of the same refusal help
nobody.

After ``max_attempts`` attempts it raises :class:`~connectors.errors.RetriesExhaustedError` with
the last error as ``__cause__``. The sleep function and the random source are fields, so tests
never wait and are deterministic.

Why not tenacity: it would fit, but everything that matters here would be custom
callables anyway (a wait that reads ``Retry-After`` off the exception, a jitter drawn from an
injected ``random.Random``: tenacity's ``wait_random_exponential`` uses the global ``random``),
leaving tenacity only the ``for`` loop below, at the cost of a decorator layer in every traceback.

Example:
    >>> from connectors.errors import ServerError
    >>> calls = []
    >>> def flaky() -> str:
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ServerError("HTTP 503")
    ...     return "ok"
    >>> RetryPolicy(sleep=lambda s: None).call(flaky), len(calls)
    ('ok', 3)
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import httpx

from connectors.errors import RetriableError, RetriesExhaustedError, redact_url
from connectors.http import DEFAULT_MAX_BYTES, ConnectFailedError, parse_json, send_request
from connectors.ratelimit import RateLimiter
from engine import clock

__all__ = [
    "ApiRequest",
    "ApiResponse",
    "RetryPolicy",
    "SequentialLimiter",
    "TimeWindow",
    "send_json",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a :class:`RetriableError`.

    Attributes:
        max_attempts: Total attempts, the first one included (``1`` disables retries).
        base_delay: Backoff scale in seconds: attempt ``n`` waits up to ``base_delay * 2**(n-1)``.
        max_delay: Cap on the exponential backoff, in seconds.
        max_retry_after: Cap on a server's ``Retry-After``, in seconds.
        max_connect_attempts: Attempts when no connection could be made (refused, unreachable);
            a host name that does not resolve gets one attempt.
        sleep: Called with the delay; inject a fake in tests.
        rng: The random source for the jitter.
        on_retry: Optional hook ``(attempt, delay, error)`` before each sleep (metrics, logging).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    max_connect_attempts: int = 2
    sleep: Callable[[float], None] = clock.sleep
    rng: random.Random = field(default_factory=random.Random)
    on_retry: Callable[[int, float, RetriableError], None] | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_connect_attempts < 1:
            raise ValueError("max_attempts and max_connect_attempts must be at least 1")
        if not (self.base_delay >= 0 and self.max_delay >= 0 and self.max_retry_after >= 0):
            raise ValueError("delays must be non-negative")

    def delay(self, attempt: int, error: RetriableError) -> float:
        """The pause before the attempt after ``attempt`` (1-based) failed with ``error``.

        Example:
            >>> from connectors.errors import RateLimitedError
            >>> RetryPolicy(max_retry_after=10).delay(1, RateLimitedError("429", retry_after=60))
            10.0
        """
        if error.retry_after is not None and math.isfinite(error.retry_after):
            return float(min(max(error.retry_after, 0.0), self.max_retry_after))
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 60))
        return self.rng.uniform(0.0, ceiling)

    def _budget(self, error: RetriableError) -> int:
        """The attempts ``error``'s kind allows: fewer when no connection could be made."""
        if isinstance(error, ConnectFailedError):
            return 1 if error.dns else min(self.max_connect_attempts, self.max_attempts)
        return self.max_attempts

    def call(self, fn: Callable[[], _T]) -> _T:
        """Call ``fn`` until it returns, retrying retriable errors within the budget.

        Raises:
            RetriesExhaustedError: After ``max_attempts`` retriable failures.

        Example:
            >>> RetryPolicy().call(lambda: 42)
            42
        """
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except RetriableError as error:
                budget = self._budget(error)
                if attempt >= budget:
                    raise RetriesExhaustedError(
                        f"gave up after {attempt} attempts: {error}"
                    ) from error
                pause = self.delay(attempt, error)
                _log.warning(
                    "retrying in %.2fs (attempt %d of %d): %s",
                    pause,
                    attempt + 1,
                    budget,
                    error,
                )
                if self.on_retry is not None:
                    self.on_retry(attempt, pause, error)
                self.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover


class TimeWindow(NamedTuple):
    """A half-open UTC time window ``[start, end)`` that a request covers."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class ApiRequest:
    """One request as data; paginators derive the next one with :meth:`with_params`.

    Attributes:
        method: HTTP method.
        url: Path relative to the client's base URL, without a query string.
        params: Query parameters.
        body: JSON body, or ``None`` for no body.
        window: The time window this request covers (time-window paging), if any.
    """

    method: str = "GET"
    url: str = ""
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Any = None
    window: TimeWindow | None = None

    def with_params(self, **params: str | int) -> ApiRequest:
        """A copy with ``params`` merged into the query parameters.

        Example:
            >>> ApiRequest(url="calls", params={"per": 100}).with_params(page=2).params
            {'per': 100, 'page': 2}
        """
        return replace(self, params={**self.params, **params})

    def with_body(self, **fields: Any) -> ApiRequest:
        """A copy with ``fields`` merged into the JSON object body.

        Example:
            >>> ApiRequest("POST", "callvolume", body={"limit": 2}).with_body(skip=2).body
            {'limit': 2, 'skip': 2}
        """
        return replace(self, body={**(self.body or {}), **fields})


@dataclass(frozen=True)
class ApiResponse:
    """A successful response: status, headers, parsed JSON, redacted URL and receive time."""

    status: int
    headers: httpx.Headers
    body: Any
    url: str
    received_at: datetime


def send_json(
    client: httpx.Client,
    request: ApiRequest,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryPolicy | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ApiResponse:
    """Send ``request`` through the limiter and the retry policy; parse the JSON reply.

    The body is read up to ``max_bytes`` (:func:`~connectors.http.send_request`); a larger one
    is a :class:`~connectors.errors.ResponseTooLargeError`, which is fatal, so never retried.

    Raises:
        ConnectorError: Classified; a retriable one only as the cause of a
            :class:`~connectors.errors.RetriesExhaustedError` when ``retry`` is given.

    Example:
        >>> t = httpx.MockTransport(lambda r: httpx.Response(200, json=[1]))
        >>> from connectors.http import make_client
        >>> send_json(make_client("https://x.test", transport=t), ApiRequest(url="a")).body
        [1]
    """

    def attempt() -> ApiResponse:
        if limiter is not None:
            limiter.acquire()
        built = client.build_request(
            request.method, request.url, params=dict(request.params) or None, json=request.body
        )
        response = send_request(client, built, max_bytes=max_bytes)
        body = parse_json(response)
        status, headers, url = response.status_code, response.headers, redact_url(built.url)
        return ApiResponse(status, headers, body, url, clock.now())

    return attempt() if retry is None else retry.call(attempt)


class SequentialLimiter(RateLimiter):
    """A rate limiter whose windows also count from responses, around any base limiter.

    A server counts a request somewhere between our send and its response. Windows counted from
    grants (the base limiter) are exceeded when an earlier request happens to reach the server
    later than a newer one (scheduling delays, network jitter). For one caller sending one
    request at a time, counting each of the base limiter's windows from the moment the response
    of the request that opened it arrived (:meth:`done`) guarantees the limit whatever the
    latency, at the price of one round trip per window. The base limiter's own windows (rate,
    burst, period, margin) still apply; with ``anchored=False`` only they do.

    Example:
        >>> t = [0.0]
        >>> clock, sleep = (lambda: t[0]), (lambda s: t.__setitem__(0, t[0] + s))
        >>> lim = SequentialLimiter(RateLimiter(2, 2, clock=clock, sleep=sleep), clock=clock,
        ...                         sleep=sleep)
        >>> lim.acquire(); t[0] += 0.3; lim.done(); _ = lim.acquire(); lim.done()
        0.0
        >>> lim.acquire()  # the window opened when the first response came back, at 0.3
        1.3
    """

    def __init__(
        self,
        base: RateLimiter,
        *,
        anchored: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = clock.sleep,
    ) -> None:
        super().__init__(base.rate, base.burst, clock=clock, sleep=sleep)
        self.base, self.windows, self.anchored = base, base.windows, anchored
        self._now, self._wait = clock, sleep
        self._done: deque[float] = deque(maxlen=max(count for count, _ in base.windows))

    def reserve(self) -> float:
        """The base limiter's reservation."""
        return self.base.reserve()

    def acquire(self) -> float:
        """Wait until the response-anchored windows allow a request, then the base windows."""
        done = self._done
        ready = max((done[-n] + span for n, span in self.windows if len(done) >= n), default=0.0)
        if (wait := ready - self._now()) > 0:
            self._wait(wait)
        return self.base.acquire()

    def done(self) -> None:
        """Record that the response of the last request sent has arrived."""
        if self.anchored:
            self._done.append(self._now())
