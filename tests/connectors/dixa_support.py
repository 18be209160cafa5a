"""Shared helpers of the Dixa connector tests: data two days back, the emulator, settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import SecretStr

from connectors.emulator import DixaEmulator
from connectors.state import format_utc
from connectors.vendors.dixa.client import DIXA, DixaSettings
from engine.demo.contacts import generate_contacts
from engine.pipeline.sources import canonical_source
from tests.calendar import TEST_NOW
from tests.connectors.kill_support import KillResumeCase

NOW = TEST_NOW
T0 = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
KEY = SecretStr("test-hmac-key-d1x4")
TOKEN = "dixa-api-token-5e2b"  # noqa: S105 - the emulator's fake credential
#: About 250 queue offers of every channel over the two days before now.
CONTACTS_2D = generate_contacts(seed=4, start=T0, days=2, scale=0.03, source="anything")


def emulator(contacts: pl.DataFrame = CONTACTS_2D, **kw: Any) -> DixaEmulator:
    """The Dixa emulator serving ``contacts`` (no rate limit unless given)."""
    return DixaEmulator(contacts, token=TOKEN, **({"rate_limit_per_s": None} | kw))


def make_settings(emu: DixaEmulator, **overrides: Any) -> DixaSettings:
    """Connector settings pointing at ``emu``: fast limits, tiny retry sleeps."""
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": emu.base_url,
        "api_token": SecretStr(TOKEN),
        "pii_hash_secret": KEY,
        "start": T0,
        "per_page": 37,
        "rate_limit_per_s": 1000.0,
        "rate_limit_burst": 1000,
        "max_retries": 8,
        "retry_base_s": 0.001,
        "retry_max_s": 0.01,
    }
    return DixaSettings(**(values | overrides))


@contextmanager
def contract_harness() -> Iterator[DixaSettings]:
    """The Dixa source against its emulator, for the contract test."""
    with emulator() as emu:
        yield make_settings(emu)


@contextmanager
def kill_resume_case(seed: int) -> Iterator[KillResumeCase]:
    """About 28 requests of 10 records over two days (the kill-and-resume test)."""
    with emulator() as emu:
        yield KillResumeCase(
            emulator=emu,
            settings={
                "BASE_URL": emu.base_url,
                "API_TOKEN": TOKEN,
                "PII_HASH_SECRET": KEY.get_secret_value(),
                "PER_PAGE": "10",
                "RATE_LIMIT_PER_S": "100",
                "RATE_LIMIT_BURST": "100",
                "START": format_utc(T0),
            },
            rebuilt=lambda landing: synced(emu, landing),
            truth=emu.expected_contacts,
            key=("contact_id", "segment_no"),
            cursors={"conversations": None},
            kill_between=(2, 14),
        )


def synced(emu: DixaEmulator, landing: Path, **overrides: Any) -> pl.DataFrame:
    """The canonical contacts rebuilt from a landing store, sorted like the emulator's truth."""
    rows, _ = canonical_source(DIXA, landing, make_settings(emu, **overrides))
    return rows.collect().sort("contact_id", "segment_no")
