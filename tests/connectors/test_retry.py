"""Retries: backoff with full jitter, Retry-After, the budget, and send_json over MockTransport."""

from __future__ import annotations

import doctest
import json
import random
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import connectors.retry
from connectors.errors import (
    AuthError,
    InvalidBodyError,
    RateLimitedError,
    RetriableError,
    RetriesExhaustedError,
    ServerError,
    TransportError,
    UnexpectedStatusError,
)
from connectors.http import ConnectFailedError, make_client
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, RetryPolicy, send_json

Handler = Callable[[httpx.Request], httpx.Response]


def policy(sleeps: list[float], **kw: object) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps.append, rng=random.Random(7), **kw)  # type: ignore[arg-type]


def scripted(*steps: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler that plays ``steps`` in order (exceptions are raised), recording requests."""
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response | Exception] = iter(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = next(queue)
        if isinstance(step, Exception):
            raise step
        return step

    return handler, seen


def client_for(handler: Handler) -> httpx.Client:
    return make_client("https://api.test/v1", transport=httpx.MockTransport(handler))


OK = httpx.Response(200, json={"data": [1, 2]})


# -- RetryPolicy ----------------------------------------------------------------------------------


def test_retries_until_success() -> None:
    sleeps: list[float] = []
    outcomes: list[Exception | str] = [ServerError("a"), TransportError("b"), "done"]

    def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert policy(sleeps).call(flaky) == "done"
    assert len(sleeps) == 2


def test_exhausted_budget_raises_with_the_last_error_as_cause() -> None:
    sleeps: list[float] = []
    last = ServerError("HTTP 503", url="https://u:p@api.test/x?token=s")

    def always() -> None:
        raise last

    with pytest.raises(RetriesExhaustedError) as info:
        policy(sleeps, max_attempts=4).call(always)
    assert info.value.__cause__ is last
    assert len(sleeps) == 3
    assert "gave up after 4 attempts" in str(info.value)
    assert "token=REDACTED" in str(info.value)
    assert ":p@" not in str(info.value)


def test_fatal_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    calls = []

    def refused() -> None:
        calls.append(1)
        raise AuthError("HTTP 401")

    with pytest.raises(AuthError):
        policy(sleeps).call(refused)
    assert calls == [1]
    assert sleeps == []


def test_max_attempts_one_disables_retries() -> None:
    with pytest.raises(RetriesExhaustedError):
        policy([], max_attempts=1).call(lambda: (_ for _ in ()).throw(ServerError("x")))


def test_retry_after_is_honoured_and_capped() -> None:
    p = RetryPolicy(max_retry_after=30)
    assert p.delay(1, RateLimitedError("429", retry_after=2.5)) == 2.5
    assert p.delay(1, RateLimitedError("429", retry_after=0)) == 0.0
    assert p.delay(3, RateLimitedError("429", retry_after=3600)) == 30.0
    assert p.delay(1, ServerError("503", retry_after=float("inf"))) <= p.base_delay


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=300),
    seed=st.integers(),
)
def test_full_jitter_stays_within_the_capped_exponential(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    p = RetryPolicy(base_delay=base, max_delay=cap, rng=random.Random(seed))
    delay = p.delay(attempt, ServerError("x"))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt - 1, 60))


def test_jitter_is_deterministic_with_a_seeded_rng_and_spreads() -> None:
    a = [RetryPolicy(rng=random.Random(1)).delay(3, ServerError("x")) for _ in range(3)]
    b = [RetryPolicy(rng=random.Random(1)).delay(3, ServerError("x")) for _ in range(3)]
    assert a == b
    spread = {RetryPolicy(rng=random.Random(s)).delay(5, ServerError("x")) for s in range(50)}
    assert len(spread) == 50
    assert max(spread) <= 8.0


def test_on_retry_hook_sees_every_retry() -> None:
    seen: list[tuple[int, float, str]] = []
    errors = [RateLimitedError("429", retry_after=1.0), ServerError("503", retry_after=2.0)]

    def flaky() -> int:
        if errors:
            raise errors.pop(0)
        return 1

    p = RetryPolicy(sleep=lambda s: None, on_retry=lambda n, d, e: seen.append((n, d, str(e))))
    assert p.call(flaky) == 1
    assert seen == [(1, 1.0, "429"), (2, 2.0, "503")]


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"max_delay": -1}])
def test_invalid_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- send_json over MockTransport -----------------------------------------------------------------


def test_429_with_retry_after_then_success() -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "3"}), OK)
    sleeps: list[float] = []
    response = send_json(client_for(handler), ApiRequest(url="calls"), retry=policy(sleeps))
    assert response.body == {"data": [1, 2]}
    assert sleeps == [3.0]
    assert len(seen) == 2
    assert str(seen[0].url) == "https://api.test/v1/calls"


def test_429_without_retry_after_backs_off_with_jitter() -> None:
    handler, _ = scripted(httpx.Response(429), httpx.Response(429), OK)
    sleeps: list[float] = []
    send_json(client_for(handler), ApiRequest(url="calls"), retry=policy(sleeps, base_delay=1.0))
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0
    assert 0 <= sleeps[1] <= 2.0


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(502),
        httpx.Response(503, headers={"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}),
        httpx.Response(504),
        httpx.Response(408),
        httpx.Response(200, content=b'{"data": [1, 2'),  # truncated JSON
        httpx.Response(200, content=b""),
        httpx.Response(200, content=b"<html>gateway</html>"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
    ids=repr,
)
def test_transient_failures_are_retried(failure: httpx.Response | Exception) -> None:
    handler, seen = scripted(failure, OK)
    sleeps: list[float] = []
    assert send_json(client_for(handler), ApiRequest(url="x"), retry=policy(sleeps)).body == {
        "data": [1, 2]
    }
    assert len(seen) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.Response(500), ServerError),
        (httpx.Response(429), RateLimitedError),
        (httpx.Response(200, content=b"{"), InvalidBodyError),
        (httpx.ReadTimeout("slow"), TransportError),
    ],
)
def test_without_a_policy_the_classified_error_surfaces(
    failure: httpx.Response | Exception, error: type[RetriableError]
) -> None:
    handler, _ = scripted(failure)
    with pytest.raises(error):
        send_json(client_for(handler), ApiRequest(url="x"))


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, UnexpectedStatusError), (404, UnexpectedStatusError), (401, AuthError)],
)
def test_fatal_statuses_fail_at_once(status: int, error: type[Exception]) -> None:
    handler, seen = scripted(httpx.Response(status), OK)
    sleeps: list[float] = []
    with pytest.raises(error):
        send_json(client_for(handler), ApiRequest(url="x"), retry=policy(sleeps))
    assert len(seen) == 1
    assert sleeps == []


def test_exhaustion_after_persistent_5xx() -> None:
    handler, seen = scripted(*[httpx.Response(503)] * 5)
    with pytest.raises(RetriesExhaustedError) as info:
        send_json(client_for(handler), ApiRequest(url="x"), retry=policy([], max_attempts=5))
    assert isinstance(info.value.__cause__, ServerError)
    assert len(seen) == 5


def test_every_attempt_waits_for_the_limiter() -> None:
    now = [0.0]
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(now[0])
        return httpx.Response(503) if len(sent_at) < 3 else OK

    lim = RateLimiter(1, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    send_json(client_for(handler), ApiRequest(url="x"), limiter=lim, retry=policy([]))
    assert sent_at == [0.0, 1.0, 2.0]  # retries respect the rate limit too


def test_request_as_data() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True}, headers={"X-Total": "3"})

    request = ApiRequest("POST", "analytics/records", params={"pageLimit": 2}, body={"id": "c"})
    response = send_json(client_for(handler), request.with_params(pageKey="k"))
    assert seen[0].method == "POST"
    assert seen[0].url.params == httpx.QueryParams({"pageLimit": "2", "pageKey": "k"})
    assert json.loads(seen[0].content) == {"id": "c"}
    assert response.status == 200
    assert response.headers["X-Total"] == "3"
    # the URL as shown in errors and logs: a parameter named like a key is masked
    assert response.url == "https://api.test/v1/analytics/records?pageLimit=2&pageKey=REDACTED"
    assert response.received_at.tzinfo is not None
    assert request.params == {"pageLimit": 2}  # with_params copies
    assert request.with_body(skip=4).body == {"id": "c", "skip": 4}
    assert ApiRequest().with_body(a=1).body == {"a": 1}


def test_204_has_no_body() -> None:
    handler, _ = scripted(httpx.Response(204))
    assert send_json(client_for(handler), ApiRequest(url="x")).body is None


def test_docstring_examples_run() -> None:
    result = doctest.testmod(connectors.retry)
    assert result.attempted > 0
    assert result.failed == 0


def _unresolvable(request: httpx.Request) -> httpx.Response:
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as exc:
        raise httpx.ConnectError("[Errno -2] Name or service not known") from exc


def test_a_host_name_that_does_not_resolve_is_not_retried() -> None:
    sleeps: list[float] = []
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return _unresolvable(request)

    with pytest.raises(RetriesExhaustedError, match="gave up after 1 attempts") as info:
        send_json(client_for(handler), ApiRequest(url="x"), retry=policy(sleeps, max_attempts=7))
    assert isinstance(info.value.__cause__, ConnectFailedError)
    assert info.value.__cause__.dns
    assert "cannot resolve host" in str(info.value)
    assert (len(calls), sleeps) == (1, [])


def test_a_refused_connection_has_its_own_small_budget() -> None:
    with socket.socket() as held:  # a loopback port that was free a moment ago: nobody listens
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
    sleeps: list[float] = []
    client = make_client(f"http://127.0.0.1:{port}")
    with pytest.raises(RetriesExhaustedError, match="gave up after 2 attempts") as info:
        send_json(client, ApiRequest(url="x"), retry=policy(sleeps, max_attempts=7))
    cause = info.value.__cause__
    assert isinstance(cause, ConnectFailedError)
    assert not cause.dns
    assert len(sleeps) == 1


def test_other_transient_errors_keep_the_full_budget() -> None:
    handler, seen = scripted(*[httpx.Response(503)] * 6, OK)
    sleeps: list[float] = []
    reply = send_json(
        client_for(handler), ApiRequest(url="x"), retry=policy(sleeps, max_attempts=7)
    )
    assert (reply.status, len(seen), len(sleeps)) == (200, 7, 6)


def test_max_connect_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connect_attempts"):
        RetryPolicy(max_connect_attempts=0)
