"""One clock: no wall-clock read outside engine/clock.py, and the clock itself behaves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import clock
from engine.clock import FixedClock, StartedClock, use_clock

ROOT = Path(__file__).resolve().parents[1]
#: Reads of the wall clock (``time.monotonic``/``perf_counter`` measure elapsed time and may stay).
WALL_CLOCK = re.compile(
    r"datetime\.(now|utcnow|today)\(|\bdate\.today\(|\btime\.time\(|\btime\.time_ns\("
    r"|=\s*time\.time\b|\blocaltime\("
)
EXEMPT = {ROOT / "engine" / "clock.py"}


def wall_clock_reads(text: str) -> list[int]:
    """Line numbers of ``text`` that read the wall clock (a ``# clock-ok: why`` line is allowed)."""
    return [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if WALL_CLOCK.search(line) and "# clock-ok:" not in line
    ]


def test_the_detector_finds_each_form() -> None:
    dt, tm = "datetime.", "time."  # split, so that this file holds no read of its own
    text = "\n".join(
        [
            f"a = {dt}now(UTC)",
            f"b = {dt}utcnow()",
            "c = date." + "today()",
            f"d = {tm}time()",
            f"clock: Callable[[], float] = {tm}time,",
            f"e = {tm}monotonic()",
            f"f = {dt}now(UTC)  # clock-ok: printing the host's time in a banner",
            "g = clock.now()",
        ]
    )
    assert wall_clock_reads(text) == [1, 2, 3, 4, 5]


def test_no_wall_clock_reads_outside_the_clock_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("engine", "connectors", "tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in EXEMPT
        for n in wall_clock_reads(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "read engine.clock.now() instead"


def test_waits_go_through_the_clock_module() -> None:
    """``engine.clock.sleep`` is the one wait (``time.sleep`` breaks under the date runs)."""
    call = "time." + "sleep("
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("engine", "connectors", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in EXEMPT
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if call in line
    ]
    assert found == [], "wait with engine.clock.sleep instead"


def test_use_clock_swaps_for_every_thread_and_restores() -> None:
    import threading

    at = datetime(2027, 3, 14, 6, 59, tzinfo=UTC)  # the US spring-forward day
    seen: list[datetime] = []
    before = clock.now()
    with use_clock(FixedClock(at)):
        worker = threading.Thread(target=lambda: seen.append(clock.now()))
        worker.start()
        worker.join()
        assert clock.now() == at
    assert seen == [at]
    assert clock.now() >= before


def test_the_clock_comes_back_after_an_exception() -> None:
    before = clock.now()
    with pytest.raises(RuntimeError), use_clock(FixedClock(datetime(2030, 1, 1, tzinfo=UTC))):
        raise RuntimeError
    assert clock.now() - before < timedelta(days=1)


def test_started_clock_runs_forward_from_its_instant() -> None:
    at = datetime(2026, 11, 1, 5, 59, 59, tzinfo=UTC)
    started = StartedClock(at)
    first, second = started(), started()
    assert at <= first <= second < at + timedelta(minutes=5)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        FixedClock(datetime(2026, 11, 1))  # noqa: DTZ001 - the point of the test


def test_a_child_process_starts_at_wfm_clock_at() -> None:
    code = "from engine.clock import now; print(now().isoformat())"
    env = os.environ | {"WFM_CLOCK_AT": "2026-03-08T06:59:58Z"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    shown = datetime.fromisoformat(out.strip())
    start = datetime(2026, 3, 8, 6, 59, 58, tzinfo=UTC)
    assert start <= shown < start + timedelta(minutes=5)


def test_a_bad_wfm_clock_at_is_one_line_and_exit_2() -> None:
    env = os.environ | {"WFM_CLOCK_AT": "yesterday"}
    done = subprocess.run(
        [sys.executable, "-c", "import engine.clock"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "wfm-intervals: error: WFM_CLOCK_AT='yesterday' is not an ISO 8601 instant"
    )
