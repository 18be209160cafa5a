"""The tests' calendar: the fixed instant every test starts at, and the days built from it.

Tests never read the wall clock. ``tests/conftest.py`` makes :data:`TEST_NOW` the process's clock
for the whole session (a clock that starts there and runs forward, so waits still end) and puts
where that clock is at the start of each test in ``WFM_CLOCK_AT`` for the child processes the
tests start (:func:`wait_for_exit` waits for one on the same clock module). Data is built from these
constants, never from "today": the suite gives the same results on any day, at any hour.

:data:`TEST_NOW` is a Monday early morning (UTC), so :data:`YESTERDAY` is a Sunday: low weekend
traffic, which the quarantine-threshold test relies on.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.clock import sleep

#: When every test starts: Monday 2026-11-09 06:05 UTC.
TEST_NOW = datetime(2026, 11, 9, 6, 5, tzinfo=UTC)
#: Midnight UTC at the start of the test day.
TODAY = TEST_NOW.replace(hour=0, minute=0, second=0, microsecond=0)
#: Midnight UTC at the start of the day before (a Sunday).
YESTERDAY = TODAY - timedelta(days=1)


def wait_for_exit(process: subprocess.Popen[bytes] | subprocess.Popen[str], seconds: float) -> int:
    """Wait up to ``seconds`` for ``process`` to end; its return code (polls with
    :func:`engine.clock.sleep`: ``Popen.wait(timeout=...)`` sleeps with ``time.sleep``).

    Raises:
        subprocess.TimeoutExpired: it is still running after ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while (code := process.poll()) is None:
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(process.args, seconds)
        sleep(0.01)
    return code


def run_process(
    args: Sequence[str], *, timeout: float, **options: Any
) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(args, capture_output=True, **options)``, killed after ``timeout``
    seconds (then :class:`subprocess.TimeoutExpired`), without ``time.sleep``: the stdlib's
    timed wait sleeps with it, which fails under libfaketime."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        out, err = process.communicate()
    finally:
        timer.cancel()
    if expired.is_set():
        raise subprocess.TimeoutExpired(process.args, timeout, out, err)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
