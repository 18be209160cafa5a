"""Hypothesis profiles (chosen by HYPOTHESIS_PROFILE: dev, ci, nightly) and the tests' clock."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from engine import clock
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

if "libfaketime" in os.environ.get("LD_PRELOAD", ""):  # the date runs (README, "Development")
    # libfaketime 0.9.10 fails ``time.sleep``, which code we do not own calls (Ray, the stdlib's
    # timed waits): this process and every Python process it starts wait the way ours do.
    _SHIM = Path(__file__).resolve().parent / "faketime"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(_SHIM), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    sys.path.insert(0, str(_SHIM))
    importlib.import_module("faketime_sleep")  # it replaces time.sleep when imported


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


@pytest.fixture(autouse=True)
def _children_start_on_our_clock() -> None:
    """A child process a test starts begins where the tests' clock is now, not at TEST_NOW.

    The session's clock has run on since TEST_NOW; a child that started at TEST_NOW would be
    behind its parent by the session's age so far (minutes into a slow run: enough for a
    token it signs to look expired to an emulator in the parent).
    """
    os.environ[CLOCK_AT_VARIABLE] = clock.now().isoformat()


@pytest.fixture(autouse=True)
def _one_log_handler_per_command() -> Iterator[None]:
    """A command invoked in-process installs the one log handler (engine.app.logs), as its
    process would; it goes away with the test, as the process would."""
    yield
    from engine.app import logs

    logs.uninstall()
