"""A ``wfm-intervals sync <source>`` process killed (SIGKILL) or stopped (SIGTERM, a service
manager's stop) at a random point, then run again.

For every registered source: its emulator runs in the test process (from the source's
``kill_resume_case``, see ``tests/connectors/kill_support.py``); the sync runs as a real subprocess
configured only by ``WFM_`` environment variables. Whatever the kill interrupted (a request, a
token exchange, a landing write, a state commit), the restarted sync must leave exactly the
emulator's truth: no row missing, none doubled.
"""

from __future__ import annotations

import importlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from connectors.registry import SOURCES
from connectors.state import StateStore
from engine.clock import sleep as clock_sleep
from tests.calendar import run_process, wait_for_exit
from tests.connectors.kill_support import KillResumeCase

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

SEEDS = (1, 2, 3)


def case_factory(name: str) -> Callable[[int], AbstractContextManager[KillResumeCase]]:
    try:
        module = importlib.import_module(f"tests.connectors.{name}_support")
        found: Callable[[int], AbstractContextManager[KillResumeCase]] = module.kill_resume_case
    except (ModuleNotFoundError, AttributeError):
        pytest.fail(
            f"source {name!r}: add kill_resume_case() to tests/connectors/{name}_support.py"
        )
    return found


def environment(name: str, case: KillResumeCase, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_")}
    settings = {"ENABLED": "true", "RETRY_BASE_S": "0.01", "RETRY_AFTER_MAX_S": "0.05"}
    settings |= case.settings
    env |= {f"WFM_SOURCES__{name.upper()}__{k}": v for k, v in settings.items()}
    return env | {
        "WFM_STORE__LANDING": str(root / "landing"),
        "WFM_STORE__STATE": str(root / "state"),
    }


def kill_after(
    case: KillResumeCase,
    proc: subprocess.Popen[bytes],
    requests: int,
    jitter: float,
    signum: int = signal.SIGKILL,
) -> None:
    deadline = time.monotonic() + 60
    while case.emulator.stats.requests < requests and proc.poll() is None:
        assert time.monotonic() < deadline, "the sync never reached the request to be killed at"
        clock_sleep(0.002)
    clock_sleep(jitter)
    proc.send_signal(signum)
    wait_for_exit(proc, 30)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_killed_sync_resumes_to_the_exact_result(name: str, seed: int, tmp_path: Path) -> None:
    rng = random.Random(f"{name}:{seed}")
    cli = [sys.executable, "-c", "from engine.cli.main import main; main()", "sync", name, "--json"]
    with case_factory(name)(seed) as case:
        env = environment(name, case, tmp_path)
        log = (tmp_path / "first.log").open("wb")
        first = subprocess.Popen(cli, env=env, cwd=tmp_path, stdout=log, stderr=log)
        kill_after(case, first, rng.randint(*case.kill_between), rng.uniform(0.0, 0.03))
        log.close()
        assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
        killed_at = case.emulator.stats.requests
        partial = case.rebuilt(tmp_path / "landing")
        second = run_process(cli, env=env, cwd=tmp_path, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        assert case.emulator.stats.requests > killed_at
        truth, rebuilt = case.truth(), case.rebuilt(tmp_path / "landing")
    assert partial.height < truth.height  # the kill did interrupt the sync
    assert_frame_equal(rebuilt, truth)  # nothing missing, nothing doubled
    assert not rebuilt.select(case.key).is_duplicated().any()
    state = {s.stream: s.cursor for s in StateStore(tmp_path / "state").show()}
    assert state.keys() == case.cursors.keys()
    assert all(case.cursors[k] in (None, cursor) for k, cursor in state.items())
    leftovers = list(tmp_path.rglob("*.tmp"))  # a torn write may leave a temp file...
    assert all(p.name.startswith(".") for p in leftovers)  # ...never a half-written part file


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_stopped_sync_exits_130_and_resumes_to_the_exact_result(name: str, tmp_path: Path) -> None:
    """SIGTERM mid-sync: the sync stops with one line and exit 130 (the clean-ups of an
    interruption run); the next sync leaves exactly the emulator's truth."""
    rng = random.Random(f"{name}:term")
    cli = [sys.executable, "-c", "from engine.cli.main import main; main()", "sync", name, "--json"]
    with case_factory(name)(SEEDS[0]) as case:
        env = environment(name, case, tmp_path)
        with (tmp_path / "first.err").open("wb") as log:
            first = subprocess.Popen(
                cli, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
            )
            at = rng.randint(*case.kill_between)
            kill_after(case, first, at, rng.uniform(0.0, 0.03), signal.SIGTERM)
        err = (tmp_path / "first.err").read_text()
        assert first.returncode == 130, err
        assert err.strip().splitlines()[-1] == "wfm-intervals: interrupted by SIGTERM", err
        partial = case.rebuilt(tmp_path / "landing")
        second = run_process(cli, env=env, cwd=tmp_path, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        truth, rebuilt = case.truth(), case.rebuilt(tmp_path / "landing")
    assert partial.height < truth.height  # the signal did interrupt the sync
    assert_frame_equal(rebuilt, truth)  # nothing missing, nothing doubled
    assert not rebuilt.select(case.key).is_duplicated().any()
