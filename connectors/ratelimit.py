"""A client-side rate limiter per connector, with an explicit sliding-window guarantee.

Configured like a token bucket, by a sustained ``rate`` (requests per second) and a ``burst``,
but enforced as exact sliding windows over the times it granted. A plain token bucket would not
be safe against the servers we talk to: a bucket of ``burst`` tokens refilled at ``rate`` lets
``burst + rate * T`` requests through in a window of length ``T`` (14 in one second for Dixa's
10/s with bursts of 4), and a server counting N requests per sliding second answers 429 to the
(N+1)-th. So the guarantee this limiter gives is:

* at most ``burst`` grants in **any** half-open interval of length ``burst / rate`` seconds, and
* at most ``max(1, floor(rate * period))`` grants in **any** half-open interval of length
  ``period`` seconds (default 1 s: the window vendors quote their limits in),

each window widened by ``margin`` seconds (default 0) to absorb network jitter between when we
send and when the server counts. The sustained rate is still ``rate`` (for ``period * rate``
integral). Typical settings: UJET ``RateLimiter(1)``, Dixa ``RateLimiter(10, burst=4)``, Kore.ai
``RateLimiter(1)`` (60/min spread out) or ``RateLimiter(1, burst=60, period=60)`` (60 in any
minute, bursty).

Grants are reserved under a lock and then slept for outside it, so the limiter is thread-safe and
callers are served in arrival order. The clock and the sleep function are injectable.

Where a window starts. The server counts a request when it receives it: at some instant between our
send and the first byte of its answer. This limiter counts from its grants (the sends), which is
exact only if every request takes the same time to be counted: a request that reaches the server
late (scheduling on a busy machine, a slow network hop) lands in the next request's window, and the
server answers 429. ``margin`` absorbs the variation the caller is prepared to bound; no margin is
safe for every latency (measured against the UJET emulator, ~300 requests at 5/s: 33-36 429s with
no margin; at 0.01 s none on an idle machine but 1-6 under load; none at 0.03 s, which costs ~3 %
of the rate). So the syncs wrap this limiter in :class:`connectors.sync.SequentialLimiter` (setting
``rate_limit_anchor = "response"``, the default), which counts every window again from the moment
the response to the request that opened it arrived. That is safe by causality alone: a server
cannot answer a request it has not yet counted, so its window starts no later than ours, whatever
the latency, the jitter or the load. The price is one round trip per window: a client sending one
request at a time gets ``period / (period + rtt)`` of the allowed rate, where ``rtt`` runs from the
server counting a request to us recording its response (the rates measured against the UJET
emulator are in benchmarks/README.md). Over a real link the round trip is the link's: at 150 ms
this anchor would give ~87 % of 1/s, and the request anchor with a margin above the link's jitter
is the better setting there.

Any anchor earlier than the response, such as the send plus an estimate of the one-way latency,
would assume a latency the client cannot observe (a request can be held up on the way in while
its answer comes back fast), so it is not offered: the one safe way to gain is a shorter round
trip. The response is recorded once its page is read and parsed; its status line arrives a few
milliseconds earlier and would be an equally safe anchor.

Example:
    >>> t = [0.0]
    >>> limiter = RateLimiter(2, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))
    >>> [limiter.acquire() for _ in range(3)]
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from engine.clock import sleep as clock_sleep

__all__ = ["RateLimiter"]


class RateLimiter:
    """Sliding-window rate limiter configured by rate and burst (see the module docstring).

    Args:
        rate: Sustained requests per second (> 0); ``60/60`` for 60 per minute.
        burst: Most requests allowed back to back (>= 1).
        period: Length in seconds of the vendor's counting window (default 1 s).
        margin: Seconds added to every window as a safety margin.
        clock: Monotonic clock in seconds.
        sleep: Called with the seconds to wait.

    Example:
        >>> limiter = RateLimiter(10, burst=4)
        >>> limiter.windows
        ((4, 0.4), (10, 1.0))
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        period: float = 1.0,
        margin: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = clock_sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("rate must be a positive number of requests per second")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not (math.isfinite(period) and period > 0) or not (margin >= 0):
            raise ValueError("period must be positive and margin non-negative")
        self.rate = rate
        self.burst = burst
        per_period = max(1, math.floor(rate * period + 1e-9))
        self.windows: tuple[tuple[int, float], ...] = (
            (burst, burst / rate + margin),
            (per_period, period + margin),
        )
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._grants: deque[float] = deque(maxlen=max(count for count, _ in self.windows))

    def reserve(self) -> float:
        """Reserve the earliest slot that keeps every window's limit; return its clock time.

        The caller must not send before the returned time; :meth:`acquire` does the waiting.

        Example:
            >>> RateLimiter(1, clock=lambda: 5.0).reserve()
            5.0
        """
        with self._lock:
            at = self._clock()
            grants = self._grants
            if grants:
                at = max(at, grants[-1])
            for count, length in self.windows:
                if len(grants) >= count:
                    at = max(at, grants[-count] + length)
            grants.append(at)
            return at

    def acquire(self) -> float:
        """Block until a request may be sent; return the granted clock time.

        Example:
            >>> RateLimiter(5, clock=lambda: 0.0, sleep=lambda s: None).acquire()
            0.0
        """
        at = self.reserve()
        wait = at - self._clock()
        if wait > 0:
            self._sleep(wait)
        return at

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, burst={self.burst}, windows={self.windows})"
