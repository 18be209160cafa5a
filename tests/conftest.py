"""Hypothesis profiles (chosen by HYPOTHESIS_PROFILE: dev, ci, nightly) and the tests' clock."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from engine.clock import CLOCK_AT_VARIABLE, StartedClock, use_clock
from tests.calendar import TEST_NOW

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def _test_calendar() -> Iterator[None]:
    """Every test, and every process a test starts, runs on the tests' calendar (TEST_NOW)."""
    previous = os.environ.get(CLOCK_AT_VARIABLE)
    os.environ[CLOCK_AT_VARIABLE] = TEST_NOW.isoformat()
    try:
        with use_clock(StartedClock(TEST_NOW)):
            yield
    finally:
        if previous is None:
            os.environ.pop(CLOCK_AT_VARIABLE, None)
        else:
            os.environ[CLOCK_AT_VARIABLE] = previous
