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
        sleep: Callable[[float], None] = time.sleep,
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
