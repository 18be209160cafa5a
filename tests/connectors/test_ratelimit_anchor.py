"""Where the client's windows start, against the emulator's limiter, on a fake clock.

A server counts a request somewhere between its send and its response. Counting the client's
windows from the responses (the default) is safe whatever the two latencies are; counting them
from the sends is safe only while the send-to-count delay varies by less than the margin. The
price of the safe anchor is one round trip per window, and no more.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.emulator.fault import RateLimiter as ServerLimiter
from connectors.ratelimit import RateLimiter
from connectors.sync import SequentialLimiter
from tests.connectors.test_ratelimit import FakeClock

# A request reaches the server a little after it is sent (at least 1 µs here: with none, the
# float arithmetic of the fake clock alone decides an exact tie at the window's edge).
to_server = st.floats(1e-6, 0.4, allow_nan=False)
to_client = st.floats(0.0, 0.4, allow_nan=False)


def sync(
    rate: float, latencies: list[tuple[float, float]], *, anchored: bool, margin: float = 0.0
) -> tuple[list[float], int]:
    """A client paging one request at a time: ``(when the server counted each, refusals)``.

    Each latency pair is (send -> the server counts, the server counts -> we have the answer).
    """
    clock = FakeClock(0.0)
    base = RateLimiter(rate, max(1, int(rate)), margin=margin, clock=clock, sleep=clock.sleep)
    client = SequentialLimiter(base, anchored=anchored, clock=clock, sleep=clock.sleep)
    server = ServerLimiter(rate, clock=clock)
    counted, refused = [], 0
    for to_server, to_client in latencies:
        client.acquire()
        clock.advance(to_server)
        counted.append(clock())
        refused += server.admit("tenant") is not None
        clock.advance(to_client)
        client.done()
    return counted, refused


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1.0, 5.0, 20.0]), st.lists(st.tuples(to_server, to_client), max_size=60))
def test_windows_from_responses_are_never_refused_whatever_the_latency(
    rate: float, latencies: list[tuple[float, float]]
) -> None:
    assert sync(rate, latencies, anchored=True)[1] == 0


def test_windows_from_requests_are_refused_when_an_early_request_arrives_late() -> None:
    late_first = [(0.05, 0.01)] + [(0.0, 0.01)] * 5  # the 1st is counted 50 ms after its send
    assert sync(5, late_first, anchored=False)[1] == 1
    assert sync(5, late_first, anchored=False, margin=0.03)[1] == 1  # a margin under the jitter
    assert sync(5, late_first, anchored=False, margin=0.05)[1] == 0
    assert sync(5, late_first, anchored=True)[1] == 0


def test_the_price_of_the_safe_anchor_is_one_round_trip_per_window() -> None:
    counted, refused = sync(5, [(0.004, 0.006)] * 501, anchored=True)
    assert refused == 0
    windows = (len(counted) - 1) // 5
    assert abs((counted[-1] - counted[0]) - windows * 1.010) < 1e-6  # 1 s + a 10 ms round trip
