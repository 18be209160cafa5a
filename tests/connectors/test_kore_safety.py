"""The ``kore`` connector's safety: JWT auth, no secret anywhere, fail-fast settings, and an exact
resume after a SIGKILL in the middle of a sync.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from polars.testing import assert_frame_equal
from pydantic import SecretStr, ValidationError

from connectors.emulator import Fault, Faults, KoreEmulator
from connectors.state import StateStore, parse_utc
from connectors.sync import sync_source
from connectors.vendors.kore.auth import KoreJwtAuth, decode_claims
from connectors.vendors.kore.client import KORE, KoreSettings, plan
from engine.clock import sleep as clock_sleep
from engine.clock import unix_seconds
from tests.calendar import wait_for_exit
from tests.connectors.kore_support import (
    CONTACTS,
    DAY,
    JWT_HEADER,
    KEYS,
    NOW,
    imported,
    settings,
    sync,
)


@pytest.fixture
def emu() -> Iterator[KoreEmulator]:
    with KoreEmulator(CONTACTS, rate_limit=None) as e:
        yield e


def test_jwt_claims_expiry_and_resign_after_401(emu: KoreEmulator) -> None:
    calls = [0]

    def clock() -> float:  # the first three readings are an hour old: that token has expired
        calls[0] += 1
        return unix_seconds() - (3600 if calls[0] <= 3 else 0)

    auth = KoreJwtAuth(emu.app_id, SecretStr(emu.secret), lifetime_s=300, clock=clock)
    stale = auth.token().get_secret_value()
    claims = decode_claims(stale)
    assert claims["appId"] == emu.app_id
    assert claims["exp"] - claims["iat"] == 300
    assert auth.token().get_secret_value() == stale  # re-used until the renewal point

    body = {"orgId": emu.org_id, "toTimeStamp": "2030-01-01T00:00:00Z"}
    with httpx.Client(auth=auth) as client:
        assert client.post(emu.url, json=body).status_code == 200
    assert [e.status for e in emu.request_log] == [401, 200]  # refused, re-signed, accepted
    assert auth.token().get_secret_value() != stale
    assert "s3cr" not in repr(auth)
    assert emu.secret not in repr(auth)


def test_wrong_secret_fails_with_one_line_and_leaks_nothing(
    emu: KoreEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    guess = "s3cr3t-guess-d0-not-leak"
    report = sync(emu, tmp_path, client_secret=SecretStr(guess))
    assert report.error is not None
    assert "401" in report.error
    assert "\n" not in report.error
    everything = caplog.text + report.error + str(report.to_dict())
    for needle in (guess, emu.secret, JWT_HEADER):
        assert needle not in everything
    assert emu.stats.unauthorized_401 == 2  # the first try and the re-signed one, no more


@pytest.mark.parametrize(
    "wrong", [{"app_id": "cs-not-this-app"}, {"client_secret": SecretStr("s3cr3t-guess")}]
)
def test_a_refused_jwt_names_both_halves_of_the_credential(
    emu: KoreEmulator, tmp_path: Path, wrong: dict[str, object]
) -> None:
    """Kore.ai answers 401 without a ``WWW-Authenticate`` challenge whether the JWT's ``appId``
    or its signing key is wrong. The line named only ``client_secret``: an operator with the
    wrong ``app_id`` checked the right secret. Re-signed once, never retried."""
    report = sync(emu, tmp_path, **wrong)
    assert report.error is not None
    assert report.error.startswith("HTTP 401: credentials refused (")
    assert "; check sources.kore.app_id, sources.kore.client_secret (" in report.error
    assert (emu.stats.unauthorized_401, report.retries) == (2, 0)


def test_no_secret_in_any_file_or_log(
    emu: KoreEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = settings(emu)
    assert sync(emu, tmp_path).ok
    assert sync_source(KORE, s, landing_root=tmp_path / "landing", state_root=tmp_path / "state")[
        0
    ].ok
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert emu.secret.encode() not in data, path
        assert JWT_HEADER.encode() not in data, path
    assert emu.secret not in caplog.text
    assert JWT_HEADER not in caplog.text
    assert emu.secret not in repr(s) + str(s.model_dump())


def test_unreachable_source_fails_with_one_line_naming_the_url(tmp_path: Path) -> None:
    with KoreEmulator(CONTACTS, rate_limit=None) as emu:
        s = settings(emu, max_retries=1)
    reports = sync_source(  # the emulator is stopped: connection refused
        KORE,
        s,
        landing_root=tmp_path / "landing",
        state_root=tmp_path / "state",
        sleep=lambda _: None,
    )
    error = reports[0].error or ""
    assert "127.0.0.1" in error
    assert "callvolume" in error
    assert "\n" not in error
    assert StateStore(tmp_path / "state").show() == []


def test_settings_fail_fast_and_name_the_setting() -> None:
    with pytest.raises(ValidationError, match="client_secret") as info:
        KoreSettings(enabled=True, base_url="https://kore.example", account_id="a", org_id="o")
    assert "app_id" in str(info.value)
    with pytest.raises(ValidationError, match="HTTPS"):
        KoreSettings(base_url="http://kore.example")
    with pytest.raises(ValidationError, match="account_id"):
        KoreSettings(account_id="../admin")
    with pytest.raises(ValidationError, match="not channels"):
        KoreSettings(channel_map={"rtm": "phone"})
    with pytest.raises(ValidationError, match="multiple of interval"):
        KoreSettings(window_minutes=50)
    first, _ = plan(DAY, KoreSettings(account_id="a1", org_id="o-1", per_page=7), NOW)
    assert first.url == "agentassist/api/public/analytics/account/a1/callvolume"
    assert first.body == {
        "orgId": "o-1",
        "fromTimeStamp": "2026-10-01T00:00:00.000Z",
        "toTimeStamp": "2026-10-02T00:00:00.000Z",
        "skip": 0,
        "limit": 7,
    }


CHILD = """
import sys
from datetime import datetime
from pathlib import Path
from pydantic import SecretStr
from connectors.vendors.kore.client import KORE, KoreSettings
from connectors.state import StateStore, parse_utc
from connectors.sync import sync_stream

base, account, org, app, root, now = sys.argv[1:7]
s = KoreSettings(enabled=True, base_url=base, account_id=account, org_id=org, app_id=app,
                 client_secret=SecretStr(sys.stdin.readline().strip()), per_page=40,
                 start=datetime.fromisoformat("2026-10-01T00:00:00+00:00"),
                 rate_limit_per_s=1000, rate_limit_burst=1000, rate_limit_period_s=1)
with KORE.client(s, None) as client:
    sync_stream(KORE, KORE.streams[0], s, client=client, landing_root=Path(root) / "landing",
                state=StateStore(Path(root) / "state"), limiter=s.limiter(),
                now=lambda: datetime.fromisoformat(now))
"""


@pytest.mark.parametrize("kill_at", [3, 6])
def test_kill_and_resume_is_exact(emu: KoreEmulator, tmp_path: Path, kill_at: int) -> None:
    clean = tmp_path / "clean"
    assert sync(emu, clean).ok
    emu.faults = Faults(schedule={kill_at: Fault.SLOW}, slow_s=30)  # the child hangs here
    args = [emu.base_url, emu.account_id, emu.org_id, emu.app_id, str(tmp_path), NOW.isoformat()]
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], stdin=subprocess.PIPE, text=True, env=env
    )
    assert child.stdin is not None
    child.stdin.write(emu.secret + "\n")
    child.stdin.close()
    deadline = time.monotonic() + 30
    while emu.stats.slowed < 1 and child.poll() is None and time.monotonic() < deadline:
        clock_sleep(0.02)
    assert emu.stats.slowed == 1, "the child never reached the request to be killed in"
    os.kill(child.pid, signal.SIGKILL)
    assert wait_for_exit(child, 10) == -signal.SIGKILL
    state = StateStore(tmp_path / "state").get("kore", "callvolume")
    assert state is not None
    assert state.cursor < NOW  # committed only what was landed
    emu.faults = Faults()
    resumed = sync(emu, tmp_path)
    assert resumed.ok, resumed.error
    assert parse_utc(resumed.started_from) == state.cursor - KoreSettings().lookback
    rows = imported(tmp_path)
    assert rows.select(KEYS).is_unique().all()
    assert_frame_equal(rows.sort(KEYS), imported(clean).sort(KEYS))
