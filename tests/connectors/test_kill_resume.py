"""A ``wfm-intervals sync ujet`` process killed (SIGKILL) at a random point, then run again.

The emulator runs in the test process; the sync runs as a real subprocess configured only by
``WFM_`` environment variables. Whatever the kill interrupted (a request, a landing write, a state
commit), the restarted sync must leave exactly the emulator's truth: no segment missing, none
doubled.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from connectors.emulator import UjetEmulator
from connectors.state import StateStore
from tests.connectors import ujet_support as sup

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

CLI = [sys.executable, "-c", "from engine.cli import main; main()", "sync", "ujet", "--json"]


def environment(emu: UjetEmulator, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_")}
    ujet = {
        "ENABLED": "true",
        "BASE_URL": emu.base_url,
        "USERNAME": sup.USER,
        "PASSWORD": sup.PASSWORD,
        "PII_HASH_SECRET": sup.PII_SECRET,
        "PER_PAGE": "10",
        "RATE_LIMIT_PER_S": "40",
        "START": "2026-09-01T00:00:00Z",
        "RETRY_BASE_S": "0.01",
        "RETRY_AFTER_MAX_S": "0.05",
    }
    env |= {f"WFM_SOURCES__UJET__{k}": v for k, v in ujet.items()}
    env |= {"WFM_STORE__LANDING": str(root / "landing"), "WFM_STORE__STATE": str(root / "state")}
    return env


def kill_after(
    emu: UjetEmulator, proc: subprocess.Popen[bytes], requests: int, jitter: float
) -> None:
    deadline = time.monotonic() + 60
    while emu.stats.requests < requests and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(jitter)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_killed_sync_resumes_to_the_exact_result(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    contacts = sup.small_contacts(seed=seed, scale=0.03)
    with sup.emulator(contacts, rate_limit_per_s=1000.0) as emu:
        env = environment(emu, tmp_path)
        first = subprocess.Popen(
            CLI, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        kill_after(emu, first, requests=rng.randint(2, 15), jitter=rng.uniform(0.0, 0.03))
        assert first.returncode == -signal.SIGKILL
        killed_at = emu.stats.requests
        partial = sup.synced(tmp_path / "landing")
        second = subprocess.run(
            CLI, env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False
        )
        assert second.returncode == 0, second.stderr.decode()
        truth = emu.expected_contacts()
    assert emu.stats.requests > killed_at
    assert partial.height < truth.height  # the kill did interrupt the sync
    rebuilt = sup.synced(tmp_path / "landing")
    assert_frame_equal(rebuilt, truth)  # nothing missing, nothing doubled
    assert not rebuilt.select("contact_id", "segment_no").is_duplicated().any()
    assert {s.stream for s in StateStore(tmp_path / "state").show()} == {"calls", "chats"}
    leftovers = list(tmp_path.rglob("*.tmp"))  # a torn write may leave a temp file...
    assert all(p.name.startswith(".") for p in leftovers)  # ...never a half-written part file
