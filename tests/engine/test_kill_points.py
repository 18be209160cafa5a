"""Crash safety at code points: ``wfm-intervals run`` killed at each write, rename and commit step
(:mod:`engine.killpoint`), then run again, gives exactly the tables of an uninterrupted run; so
does one stopped by SIGTERM at a point of each kind, where the interruption's clean-ups run.

Each case starts the real command as a child process with ``WFM_KILL_AT`` naming one crash point
(``<point>@<n>``: the n-th time the run reaches it), checks that the child really died there
(``SIGKILL``, nothing flushed), runs again in-process, and compares every store table with a
clean run over the same emulators. First-run cases kill a full build; incremental cases kill the
next day's run after new contacts arrived (it also compacts the first day's landing files).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.clock import CLOCK_AT_VARIABLE, StartedClock, use_clock
from engine.demo.stack import Stack
from engine.killpoint import POINTS, SIGNAL_VARIABLE, VARIABLE
from tests.calendar import TEST_NOW, run_process
from tests.engine.run_support import (
    SECRETS,
    clean_environment,
    emulators,
    invoke,
    table,
)
from tests.engine.run_support import lean_config as write_config

TABLES = ("contacts", "callback_attempts", "callvolume", "staffing", "callback_intervals",
          "retry_outcomes")  # fmt: skip
NEXT_DAY = TEST_NOW + timedelta(days=1)

#: (kill point, the first run's or the next day's) — delta.* counts commits in the order
#: contacts, callvolume, staffing, callback_attempts, callback_intervals, retry_outcomes (a
#: table whose partitions hold the same rows is not committed: the next day's run commits
#: contacts, callvolume and staffing, its callback tables being unchanged).
FIRST_RUN = [
    "lock.taken",
    "sync.page_landed@1",
    "sync.page_landed@4",
    "sync.cursor_committed@2",
    "snapshot.parts_written@1",
    "run.rebuilt",
    "delta.files_written@1",
    "delta.committed@1",
    "delta.files_written@2",
    "delta.committed@3",
    "delta.files_written@5",
    "delta.committed@5",
    "files.written@1",
    "files.replaced@2",
    "run.exported",
    "run.state_saving",
    "run.state_saved",
]
NEXT_RUN = [
    "sync.page_landed@1",
    "landing.compact_written@1",
    "landing.compact_removed@1",
    "snapshot.parts_written@1",
    "snapshot.parts_written@2",
    "delta.files_written@2",
    "delta.committed@2",
    "delta.files_written@3",
    "delta.committed@3",
    "files.written@3",
    "run.state_saving",
]
CASES = [("first", p) for p in FIRST_RUN] + [("next", p) for p in NEXT_RUN]
#: SIGTERM at a point of each kind: a landing, a cursor, a snapshot, a compaction, a store
#: commit's files and its log, an atomic file write, the run state.
STOPPED = [
    ("first", "lock.taken"),
    ("first", "sync.page_landed@4"),
    ("first", "sync.cursor_committed@2"),
    ("first", "snapshot.parts_written@1"),
    ("first", "delta.files_written@2"),
    ("first", "delta.committed@3"),
    ("first", "files.written@1"),
    ("first", "run.state_saved"),
    ("next", "landing.compact_written@1"),
    ("next", "landing.compact_removed@1"),
    ("next", "delta.files_written@3"),
    ("next", "run.state_saving"),
]


def test_the_cases_cover_every_crash_point_and_at_least_twenty_sites() -> None:
    used = {p.partition("@")[0] for _, p in CASES}
    assert used == set(POINTS)
    assert len(CASES) >= 20
    assert set(STOPPED) <= set(CASES)
    assert set(HUNG_UP) <= set(STOPPED)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    clean_environment(monkeypatch, tmp_path)
    with use_clock(StartedClock(TEST_NOW)), emulators() as s:
        yield s


def _run_in_process(config: Path) -> None:
    result = invoke(["run", "--quiet"], config)
    assert result.exit_code == 0, result.output


def _killed_run(config: Path, point: str, at: str, signum: signal.Signals = signal.SIGKILL) -> None:
    env = (
        os.environ
        | SECRETS
        | {VARIABLE: point, SIGNAL_VARIABLE: signum.name, CLOCK_AT_VARIABLE: at}
    )
    cli = [sys.executable, "-m", "engine.cli.main", "run", "--quiet", "--config", str(config)]
    child = run_process(cli, env=env, cwd=config.parent, timeout=180)
    err = child.stderr.decode()
    if signum == signal.SIGKILL:
        assert child.returncode == -signal.SIGKILL, (
            f"{point} was not reached: exit {child.returncode}\n{err[-2000:]}"
        )
    else:  # stopped: the interruption's clean-ups ran, one line, exit 130
        assert child.returncode == 130, f"exit {child.returncode}\n{err[-2000:]}"
        assert err.strip().splitlines()[-1] == f"wfm-intervals: interrupted by {signum.name}", err


def _tables(out: Path) -> dict[str, pl.DataFrame]:
    return {name: table(out, name) for name in TABLES}


@pytest.mark.parametrize(("phase", "point"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_a_run_killed_at_a_crash_point_loses_nothing(
    tmp_path: Path, stack: Stack, phase: str, point: str
) -> None:
    _interrupted_then_run_again(tmp_path, stack, phase, point, signal.SIGKILL)


@pytest.mark.parametrize(("phase", "point"), STOPPED, ids=[f"{a}-{b}" for a, b in STOPPED])
def test_a_run_stopped_by_sigterm_at_a_crash_point_loses_nothing(
    tmp_path: Path, stack: Stack, phase: str, point: str
) -> None:
    _interrupted_then_run_again(tmp_path, stack, phase, point, signal.SIGTERM)


#: A hang-up (the SSH session a run was started from dropped) where a run holds the lock, lands
#: a page, and has written a table's files but not committed them (points of STOPPED, checked).
HUNG_UP = [
    ("first", "lock.taken"),
    ("first", "sync.page_landed@4"),
    ("first", "delta.files_written@2"),
]


@pytest.mark.parametrize(("phase", "point"), HUNG_UP, ids=[f"{a}-{b}" for a, b in HUNG_UP])
def test_a_run_hung_up_at_a_crash_point_loses_nothing(
    tmp_path: Path, stack: Stack, phase: str, point: str
) -> None:
    _interrupted_then_run_again(tmp_path, stack, phase, point, signal.SIGHUP)


def _interrupted_then_run_again(
    tmp_path: Path, stack: Stack, phase: str, point: str, signum: signal.Signals
) -> None:
    killed = write_config(tmp_path / "killed", stack)
    at = TEST_NOW
    if phase == "next":
        _run_in_process(killed)
        served = stack.ujet.expected_contacts().filter(pl.col("segment_no") == 1).head(25)
        stack.ujet.add_contacts(
            served.with_columns(pl.concat_str(pl.lit("new-"), "contact_id").alias("contact_id"))
        )
        at = NEXT_DAY
    _killed_run(killed, point, at.isoformat(), signum)
    with use_clock(StartedClock(at)):
        _run_in_process(killed)  # the next run, after the kill
        clean = write_config(tmp_path / "clean", stack)
        _run_in_process(clean)
    got, want = _tables(tmp_path / "killed" / "out"), _tables(tmp_path / "clean" / "out")
    for name in TABLES:
        assert_frame_equal(got[name], want[name], check_row_order=False)
