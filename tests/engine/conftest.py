"""Fixtures the run tests share: the runs' clock and the loopback emulator stack (a module may
define its own ``stack``, e.g. with a seeded store, which then takes precedence)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from engine.clock import StartedClock, use_clock
from engine.demo.stack import Stack
from tests.calendar import TEST_NOW
from tests.engine.run_support import emulators


@pytest.fixture
def now() -> Iterator[datetime]:
    """The runs' "now": the test day's TEST_NOW, on a clock restarted for this test that runs on
    (so the emulators' update stamps move); a test lasts seconds, far from the next interval."""
    with use_clock(StartedClock(TEST_NOW)):
        yield TEST_NOW


@pytest.fixture
def stack() -> Iterator[Stack]:
    """The vendor emulators on loopback, for one test."""
    with emulators() as s:
        yield s
