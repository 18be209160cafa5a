"""Shared helpers of the Kore.ai connector tests: data, settings, one sync, rebuilds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import SecretStr

from connectors.emulator import KoreEmulator
from connectors.normalise import rebuild
from connectors.source import TimeoutSettings
from connectors.state import StateStore
from connectors.sync import SyncReport, sync_stream
from connectors.vendors.kore.client import KORE, KoreSettings
from engine import clock
from engine.demo.contacts import generate_contacts
from tests.calendar import TODAY
from tests.connectors.kill_support import KillResumeCase

DAY = datetime(2026, 10, 1, tzinfo=UTC)
NOW = DAY + timedelta(days=2, hours=6, minutes=7)  # the emulated "now" of a sync
CONTACTS = generate_contacts(start=DAY, days=3, scale=0.03, seed=11, as_of=NOW, source="kore")
KEYS = ["interval_start_utc", "queue_id", "channel"]
JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # base64url of {"alg":"HS256","typ":"JWT"}


def settings(emu: KoreEmulator, **kw: Any) -> KoreSettings:
    """Fast settings against ``emu`` (no real rate limit, tiny retry delays)."""
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": emu.base_url,
        "account_id": emu.account_id,
        "org_id": emu.org_id,
        "app_id": emu.app_id,
        "client_secret": SecretStr(emu.secret),
        "start": DAY,
        "per_page": 40,
        "rate_limit_per_s": 1000.0,
        "rate_limit_burst": 1000,
        "rate_limit_period_s": 1.0,
        "retry_base_s": 0.001,
        "retry_after_max_s": 0.001,
        "max_retries": 8,
        "timeouts": TimeoutSettings(read=5.0),
    }
    return KoreSettings(**(values | kw))


def sync(emu: KoreEmulator, root: Path, *, now: datetime = NOW, **kw: Any) -> SyncReport:
    """One sync of the stream at the emulated instant ``now`` (retry sleeps skipped)."""
    s = settings(emu, **kw)
    source = KORE.configured(s)
    with source.client(s, None) as client:
        return sync_stream(
            source,
            source.streams[0],
            s,
            client=client,
            landing_root=root / "landing",
            state=StateStore(root / "state"),
            limiter=s.limiter(),
            sleep=lambda _: None,
            now=lambda: now,
        )


def imported(root: Path, **kw: Any) -> pl.DataFrame:
    """The rows rebuilt from the landing store (asserting nothing was quarantined)."""
    out = rebuild(KORE, root / "landing", KoreSettings(**kw))
    assert out.quarantine.collect().height == 0
    return out.rows.collect()


def as_served(rows: pl.DataFrame, emu: KoreEmulator) -> pl.DataFrame:
    """Imported rows in the shape of the emulator's truth."""
    columns = emu.expected_callvolume().columns
    return rows.select(columns).with_columns(pl.col("channel").cast(pl.String)).sort(KEYS)


def expected(emu: KoreEmulator, *, until: datetime = NOW) -> pl.DataFrame:
    """The emulator's truth for intervals before ``until``."""
    served = emu.expected_callvolume()
    return served.filter(pl.col("interval_start_utc") < until).sort(KEYS)


@contextmanager
def contract_harness() -> Iterator[KoreSettings]:
    """The Kore.ai emulator with the last two whole UTC days of traffic, and settings for it."""
    day = TODAY - timedelta(days=2)
    contacts = generate_contacts(start=day, days=2, scale=0.02, seed=5, source="kore")
    with KoreEmulator(contacts, rate_limit=None) as emu:
        yield settings(emu, start=day)


@contextmanager
def kill_resume_case(seed: int) -> Iterator[KillResumeCase]:
    """The last two whole UTC days of interval rows, 5 a page (the kill-and-resume test).

    The sync runs as a subprocess on the tests' calendar (``WFM_CLOCK_AT``), and the data ends
    before the test day: every interval is complete.
    """
    day = TODAY - timedelta(days=2)
    contacts = generate_contacts(start=day, days=2, scale=0.02, seed=seed, source="kore")
    with KoreEmulator(contacts, rate_limit=None) as emu:
        yield KillResumeCase(
            emulator=emu,
            settings={
                "BASE_URL": emu.base_url,
                "ACCOUNT_ID": emu.account_id,
                "ORG_ID": emu.org_id,
                "APP_ID": emu.app_id,
                "CLIENT_SECRET": emu.secret,
                "START": day.isoformat(),
                "PER_PAGE": "5",
                "RATE_LIMIT_PER_S": "1000",
                "RATE_LIMIT_BURST": "1000",
                "RATE_LIMIT_PERIOD_S": "1",
            },
            rebuilt=lambda landing: as_served(imported(landing.parent), emu),
            truth=lambda: expected(emu, until=clock.now()),
            key=("interval_start_utc", "queue_id", "channel"),
            cursors={"callvolume": None},
        )
