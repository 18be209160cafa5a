"""A ``wfm-intervals sync mindful`` process killed (SIGKILL) at a random point, then run again.

Mirrors ``test_kill_resume.py`` (UJET) for the hourly Mindful stream: the emulator runs in the
test process, the sync is a real subprocess configured only by ``WFM_`` environment variables
(OAuth2 client credentials, so the kill can also land in a token exchange). Whatever the kill
interrupted, the restarted sync must leave exactly the emulator's truth.
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
from pydantic import SecretStr

from connectors.emulator import MindfulEmulator
from connectors.mindful import MINDFUL
from connectors.normalise import rebuild
from connectors.state import StateStore
from tests.connectors import mindful_support as sup

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

CLI = [sys.executable, "-c", "from engine.cli import main; main()", "sync", "mindful", "--json"]


def environment(emu: MindfulEmulator, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_")}
    mindful = {
        "ENABLED": "true",
        "BASE_URL": emu.base_url,
        "TOKEN_URL": emu.token_url,
        "CLIENT_ID": emu.client_id,
        "CLIENT_SECRET": emu.client_secret,
        "PII_HASH_SECRET": sup.PII_SECRET,
        "START": sup.START.isoformat(),
        "END": sup.END.isoformat(),
        "RATE_LIMIT_PER_S": "40",
        "RETRY_BASE_S": "0.01",
        "RETRY_AFTER_MAX_S": "0.05",
    }
    env |= {f"WFM_SOURCES__MINDFUL__{k}": v for k, v in mindful.items()}
    env |= {"WFM_STORE__LANDING": str(root / "landing"), "WFM_STORE__STATE": str(root / "state")}
    return env


def kill_after(
    emu: MindfulEmulator, proc: subprocess.Popen[bytes], requests: int, jitter: float
) -> None:
    deadline = time.monotonic() + 60
    while emu.stats.requests < requests and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(jitter)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_sync_resumes_to_the_exact_result(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    attempts = sup.small_attempts(seed=seed)
    with MindfulEmulator(attempts, rate_limit_per_s=1000.0, extra_holds=2) as emu:
        env = environment(emu, tmp_path)
        first = subprocess.Popen(
            CLI, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        kill_after(emu, first, requests=rng.randint(1, 15), jitter=rng.uniform(0.0, 0.03))
        assert first.returncode == -signal.SIGKILL
        killed_at = emu.stats.requests
        partial = rebuild(MINDFUL, tmp_path / "landing").rows.collect()
        second = subprocess.run(
            CLI, env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False
        )
        assert second.returncode == 0, second.stderr.decode()
        truth = emu.expected_attempts(SecretStr(sup.PII_SECRET))
    assert emu.stats.requests > killed_at
    assert partial.height < truth.height  # the kill did interrupt the sync
    rebuilt = rebuild(MINDFUL, tmp_path / "landing").rows.collect().sort("attempt_id")
    assert_frame_equal(rebuilt, truth)  # nothing missing, nothing doubled
    assert not rebuilt["attempt_id"].is_duplicated().any()
    state = StateStore(tmp_path / "state").get("mindful", "attempts")
    assert state is not None
    assert state.cursor == sup.END
    leftovers = list(tmp_path.rglob("*.tmp"))  # a torn write may leave a temp file...
    assert all(p.name.startswith(".") for p in leftovers)  # ...never a half-written part file
