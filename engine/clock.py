"""The one clock: every "now" in wfm-intervals comes from :func:`now`.

A clock is any function that returns the current instant as an aware UTC ``datetime``. The
process has one current clock, the wall clock unless something injected another:

- code that is handed a clock or a ``now`` uses it; everything else calls :func:`now`;
- tests inject a :class:`FixedClock` with :func:`use_clock` (the swap is process-wide, so the
  loopback emulators' server threads see it too);
- a child process starts on a given instant when ``WFM_CLOCK_AT`` holds an ISO 8601 instant
  (as ``SOURCE_DATE_EPOCH`` does for reproducible builds): its clock starts there and runs
  forward at the speed of the monotonic clock, so waits and back-offs still end.

Elapsed time (rate limiting, back-off, durations of a step) is measured with
``time.monotonic``/``time.perf_counter``, which are not wall time and stay as they are. Waiting
(a back-off, a rate limit's pause) goes through :func:`sleep`, the one default every waiting
function takes, so a test hands in one that does not wait.
``tests/test_clock.py`` fails on any other wall-clock read in ``engine/``, ``connectors/`` or
``tests/``.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> at = datetime(2026, 11, 10, 9, 30, tzinfo=UTC)
    >>> with use_clock(FixedClock(at)) as clock:
    ...     first = now()
    ...     clock.advance(timedelta(minutes=15))
    ...     second = now()
    >>> first.isoformat(), second.isoformat()
    ('2026-11-10T09:30:00+00:00', '2026-11-10T09:45:00+00:00')
    >>> now() == second  # the previous clock again
    False
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import NoReturn

__all__ = [
    "CLOCK_AT_VARIABLE",
    "Clock",
    "FixedClock",
    "StartedClock",
    "now",
    "sleep",
    "system_clock",
    "unix_seconds",
    "use_clock",
]

#: A clock: returns the current instant, aware and in UTC.
Clock = Callable[[], datetime]

#: The environment variable that starts this process's clock at a given instant.
CLOCK_AT_VARIABLE = "WFM_CLOCK_AT"


def system_clock() -> datetime:
    """The wall clock, UTC: the only wall-clock read in the code base."""
    return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until it is told to move (for tests).

    Args:
        at: the instant it shows; must be timezone-aware (it is shown in UTC).
    """

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError(f"FixedClock needs an aware instant, got {at!r}")
        self.at = at.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        """Move the clock forward by ``by``."""
        self.at += by

    def set(self, at: datetime) -> None:
        """Show ``at`` from now on."""
        self.at = at.astimezone(UTC)


class StartedClock:
    """A clock that starts at ``at`` and runs forward with the monotonic clock.

    Example:
        >>> from datetime import UTC, datetime
        >>> c = StartedClock(datetime(2026, 11, 10, tzinfo=UTC))
        >>> c() >= datetime(2026, 11, 10, tzinfo=UTC)
        True
    """

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError(f"StartedClock needs an aware instant, got {at!r}")
        self.at = at.astimezone(UTC)
        self._started = time.monotonic()

    def __call__(self) -> datetime:
        return self.at + timedelta(seconds=time.monotonic() - self._started)


def _refuse(problem: str) -> NoReturn:
    """A bad ``WFM_CLOCK_AT`` is a configuration error: one line on stderr, exit 2."""
    print(f"wfm-intervals: error: {problem}", file=sys.stderr)
    raise SystemExit(2)


def _from_environment() -> Clock:
    text = os.environ.get(CLOCK_AT_VARIABLE, "").strip()
    if not text:
        return system_clock
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _refuse(f"{CLOCK_AT_VARIABLE}={text!r} is not an ISO 8601 instant")
    if at.tzinfo is None:
        _refuse(f"{CLOCK_AT_VARIABLE}={text!r} has no UTC offset (add Z or +HH:MM)")
    return StartedClock(at)


_lock = threading.Lock()
_current: Clock = _from_environment()


def now() -> datetime:
    """The current instant from the process's clock (aware, UTC)."""
    return _current()


def sleep(seconds: float) -> None:
    """Wait ``seconds`` (on the monotonic clock; nothing for ``seconds <= 0``).

    A timed wait on an event rather than ``time.sleep``: the same wait, and it also behaves
    under a time-faking preload (libfaketime 0.9.10 fails ``time.sleep``'s absolute monotonic
    sleep with ``EINVAL`` when it leaves the monotonic clock real, which the tests' date runs do).

    Example:
        >>> sleep(0.0)
    """
    if seconds > 0:
        threading.Event().wait(seconds)


def unix_seconds() -> float:
    """:func:`now` as seconds since the epoch (for tokens that carry ``iat``/``exp``)."""
    return now().timestamp()


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the process's clock inside the ``with`` block; yields it.

    The swap is process-wide (every thread sees it), and the previous clock comes back on exit,
    also on an exception.
    """
    global _current  # noqa: PLW0603  (the one process-wide clock is the point of this module)
    with _lock:
        previous, _current = _current, clock
    try:
        yield clock
    finally:
        with _lock:
            _current = previous
