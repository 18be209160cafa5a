"""The client-side rate limiter: its sliding-window guarantee, on a fake clock."""

from __future__ import annotations

import doctest
import threading
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connectors.ratelimit
from connectors.ratelimit import RateLimiter


class FakeClock:
    """A monotonic clock that only moves when someone sleeps (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def limiter(
    rate: float, burst: int = 1, clock: FakeClock | None = None, **kw: float
) -> RateLimiter:
    clock = clock or FakeClock()
    return RateLimiter(rate, burst, clock=clock, sleep=clock.sleep, **kw)


def max_in_window(grants: Sequence[float], length: float) -> int:
    """The most grants in any half-open interval ``[t, t + length)`` (t ranging over grants)."""
    ordered = sorted(grants)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] + length <= t:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_vendor_settings_have_the_documented_windows() -> None:
    assert RateLimiter(1).windows == ((1, 1.0), (1, 1.0))  # UJET: 1/s
    assert RateLimiter(10, burst=4).windows == ((4, 0.4), (10, 1.0))  # Dixa: 10/s, bursts of 4
    assert RateLimiter(1, burst=60, period=60).windows == ((60, 60.0), (60, 60.0))  # Kore: 60/min
    assert RateLimiter(0.5).windows == ((1, 2.0), (1, 1.0))
    assert RateLimiter(2, margin=0.05).windows == ((1, 0.55), (2, 1.05))


def test_ujet_one_per_second_back_to_back() -> None:
    clock = FakeClock(0.0)
    lim = limiter(1, clock=clock)
    grants = [lim.acquire() for _ in range(5)]
    assert grants == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert clock.now == 4.0
    assert max_in_window(grants, 1.0) == 1


def test_dixa_never_more_than_ten_in_any_second_nor_four_in_any_400ms() -> None:
    clock = FakeClock(0.0)
    lim = limiter(10, 4, clock=clock)
    grants = [lim.acquire() for _ in range(200)]
    assert grants[:4] == [0.0] * 4  # the burst goes out at once
    assert max_in_window(grants, 1.0) == 10
    assert max_in_window(grants, 0.4) == 4
    # and it still sustains the full rate: 200 grants in about 20 s
    assert 19.0 <= grants[-1] <= 20.0


def test_a_plain_token_bucket_would_overshoot() -> None:
    """Document why: a (10/s, 4) bucket lets 14 through in the first second."""
    tokens, t, grants = 4.0, 0.0, []
    while t < 1.0:
        if tokens >= 1:
            tokens -= 1
            grants.append(t)
        t += 0.001
        tokens = min(4.0, tokens + 10 * 0.001)
    assert len(grants) >= 13
    clock = FakeClock(0.0)
    lim = limiter(10, 4, clock=clock)
    ours = [lim.acquire() for _ in range(30)]
    assert sum(g < 1.0 for g in ours) == 10


def test_idle_limiter_grants_immediately() -> None:
    clock = FakeClock(0.0)
    lim = limiter(1, clock=clock)
    lim.acquire()
    clock.advance(10.0)
    assert lim.acquire() == 10.0
    assert clock.sleeps == []


def test_reserve_does_not_sleep() -> None:
    clock = FakeClock(0.0)
    lim = limiter(2, clock=clock)
    assert [lim.reserve() for _ in range(3)] == [0.0, 0.5, 1.0]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0,), {}),
        ((-1,), {}),
        ((float("inf"),), {}),
        ((float("nan"),), {}),
        ((1, 0), {}),
        ((1,), {"period": 0}),
        ((1,), {"margin": -0.1}),
    ],
)
def test_invalid_settings(args: tuple[float, ...], kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"rate|burst|period"):
        RateLimiter(*args, **kwargs)  # type: ignore[arg-type]


@settings(deadline=None)
@given(
    rate=st.floats(min_value=0.05, max_value=50),
    burst=st.integers(min_value=1, max_value=8),
    period=st.sampled_from([1.0, 2.0, 60.0]),
    margin=st.sampled_from([0.0, 0.01]),
    gaps=st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=0, max_value=3)), min_size=1, max_size=120
    ),
)
def test_never_exceeds_any_window(
    rate: float, burst: int, period: float, margin: float, gaps: list[float]
) -> None:
    clock = FakeClock(0.0)
    lim = limiter(rate, burst, clock=clock, period=period, margin=margin)
    grants = []
    for gap in gaps:
        clock.advance(gap)
        asked = clock()
        granted = lim.acquire()
        assert granted >= asked
        assert clock() >= granted - 1e-9  # nobody is let through before their slot
        grants.append(granted)
    assert grants == sorted(grants)
    for count, length in lim.windows:
        assert max_in_window(grants, length) <= count
        assert all(grants[i + count] >= grants[i] + length for i in range(len(grants) - count))
    # and the documented guarantee, in the vendor's terms
    assert max_in_window(grants, burst / rate) <= burst
    assert max_in_window(grants, period) <= max(1, int(rate * period + 1e-9))


@settings(deadline=None)
@given(rate=st.floats(min_value=0.1, max_value=20), burst=st.integers(min_value=1, max_value=5))
def test_no_needless_waiting(rate: float, burst: int) -> None:
    """Each grant is as early as the windows allow: one window bound is tight, or it is now."""
    clock = FakeClock(0.0)
    lim = limiter(rate, burst, clock=clock)
    grants = [lim.acquire() for _ in range(30)]
    for i, g in enumerate(grants):
        bounds = [0.0] + [grants[i - c] + w for c, w in lim.windows if i >= c]
        assert g == max(bounds + grants[i - 1 : i])


def test_thread_safe_under_contention() -> None:
    clock = FakeClock(0.0)
    lim = limiter(10, 4, clock=clock)
    grants: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            granted = lim.acquire()
            with lock:
                grants.append(granted)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(grants) == 320
    assert max_in_window(grants, 1.0) <= 10
    assert max_in_window(grants, 0.4) <= 4


def test_docstring_examples_run() -> None:
    result = doctest.testmod(connectors.ratelimit)
    assert result.attempted > 0
    assert result.failed == 0
