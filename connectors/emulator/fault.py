"""Deliberate misbehaviour of the emulators: fault switches, the rate limiter, unknown keys.

Everything here is deterministic: a fault draw depends only on the server's seed and the number of
the admitted request, so a failing test reproduces exactly, whatever the thread interleaving.

Example:
    >>> faults = Faults(schedule={3: Fault.SERVER_ERROR}, rates={Fault.DROP: 0.1})
    >>> draw_fault(faults, seed=0, number=3)
    <Fault.SERVER_ERROR: 'server_error'>
    >>> limiter = RateLimiter(2.0, clock=lambda: 0.0)
    >>> [limiter.admit("tenant") for _ in range(3)]
    [None, None, 1.0]
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = ["Fault", "Faults", "RateLimiter", "draw_fault", "with_unknown_keys"]


class Fault(StrEnum):
    """One injectable failure of a single admitted request."""

    THROTTLE = "throttle"  # 429 with Retry-After
    THROTTLE_BARE = "throttle_bare"  # 429 without Retry-After
    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503
    SLOW = "slow"  # sleep Faults.slow_s, then answer normally
    DROP = "drop"  # close the socket without sending a response
    TRUNCATE = "truncate"  # status 200, body cut in half, Content-Length of the cut body


@dataclass(frozen=True)
class Faults:
    """Fault switches; assign a new value (``emu.faults = Faults(...)``) to change them live.

    Attributes:
        schedule: request number -> fault, numbering the admitted requests (authenticated and
            within the rate limit) from 1 since this value was installed: ``{3: Fault.SERVER_ERROR,
            7: Fault.DROP}`` fails the 3rd and the 7th request.
        rates: fault -> probability per admitted request (sum <= 1), drawn from the seed and the
            request number. The schedule wins over the rates.
        unknown_keys: add a random extra key to every JSON object of every 2xx body: each record,
            each nested object, and the envelope when the body is an object.
        slow_s: how long a ``SLOW`` request sleeps before answering (cut short by ``stop()``).
        retry_after_s: the ``Retry-After`` value of an injected ``THROTTLE``.
    """

    schedule: Mapping[int, Fault] = field(default_factory=dict)
    rates: Mapping[Fault, float] = field(default_factory=dict)
    unknown_keys: bool = False
    slow_s: float = 2.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if any(n < 1 for n in self.schedule):
            raise ValueError("Faults.schedule: request numbers start at 1")
        if any(not 0.0 <= p <= 1.0 for p in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ValueError("Faults.rates: each probability in [0, 1], their sum <= 1")
        object.__setattr__(self, "schedule", MappingProxyType(dict(self.schedule)))
        object.__setattr__(self, "rates", MappingProxyType(dict(self.rates)))


def draw_fault(faults: Faults, *, seed: int, number: int) -> Fault | None:
    """The fault of the ``number``-th admitted request (1-based, since ``faults`` was installed)."""
    scheduled = faults.schedule.get(number)
    if scheduled is not None or not faults.rates:
        return scheduled
    u = random.Random(f"{seed}:fault:{number}").random()
    for fault, p in faults.rates.items():
        if u < p:
            return fault
        u -= p
    return None


class RateLimiter:
    """Sliding-window limiter per key, never more lenient than ``per_s`` requests per second.

    For ``per_s >= 1`` at most ``floor(per_s)`` requests are admitted in any 1-second window; for
    ``per_s < 1`` at most one in any ``1 / per_s`` seconds. Rejected requests use no capacity.

    Args:
        per_s: the allowed rate (> 0).
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, per_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not per_s > 0:
            raise ValueError("rate limit must be > 0 requests per second")
        self.capacity = max(1, math.floor(per_s))
        self.window_s = max(1.0, 1.0 / per_s)
        self._clock = clock
        self._admitted: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> float | None:
        """Admit one request for ``key``: ``None`` if admitted, else seconds until a slot frees."""
        with self._lock:
            now = self._clock()
            times = self._admitted.setdefault(key, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) < self.capacity:
                times.append(now)
                return None
            return times[0] + self.window_s - now


_EXTRA_NAMES = ("segment", "routing", "flags", "region", "cost", "trace", "beta")


def with_unknown_keys(value: object, rng: random.Random) -> object:
    """A copy of a JSON value with one extra ``x_…`` key (random value) in every object."""
    if isinstance(value, list):
        return [with_unknown_keys(item, rng) for item in value]
    if isinstance(value, dict):
        out = {key: with_unknown_keys(item, rng) for key, item in value.items()}
        values: list[object] = [rng.random(), rng.randrange(10**6), "new", None, True, {"v": 2}, []]
        out[f"x_{rng.choice(_EXTRA_NAMES)}_{rng.randrange(1000):03d}"] = rng.choice(values)
        return out
    return value
