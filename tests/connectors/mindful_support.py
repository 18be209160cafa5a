"""Shared helpers of the Mindful connector tests: the contract harness and its small data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import polars as pl
from pydantic import SecretStr

from connectors.emulator import MindfulEmulator
from connectors.vendors.mindful.client import MINDFUL, MindfulSettings
from engine.demo.callbacks import generate_attempts
from engine.pipeline.sources import canonical_source
from tests.connectors.kill_support import KillResumeCase

START = datetime(2026, 10, 1, tzinfo=UTC)
END = START + timedelta(hours=30)
PII_SECRET = "hmac-key-Mf27-never-logged"  # noqa: S105 - a fake test secret


def small_attempts(seed: int = 3, scale: float = 0.2) -> pl.DataFrame:
    """About 150 callback attempts created in ``[START, END)``."""
    frame = generate_attempts(seed=seed, start=START, days=1, scale=scale)
    return frame.filter(pl.col("created_at") < END)


def settings_for(emu: MindfulEmulator, **overrides: object) -> MindfulSettings:
    """Fast settings against ``emu`` for the bounded window ``[START, END)``."""
    values: dict[str, object] = {
        "enabled": True,
        "base_url": emu.base_url,
        "token_url": emu.token_url,
        "client_id": emu.client_id,
        "client_secret": SecretStr(emu.client_secret),
        "pii_hash_secret": SecretStr(PII_SECRET),
        "start": START,
        "end": END,
        "rate_limit_per_s": 500.0,
        "retry_base_s": 0.001,
    }
    return MindfulSettings.model_validate(values | overrides)


@contextmanager
def contract_harness() -> Iterator[MindfulSettings]:
    """The Mindful emulator with a day of attempts (and a few holds), and settings for it."""
    with MindfulEmulator(small_attempts(), rate_limit_per_s=1000.0, extra_holds=3) as emu:
        yield settings_for(emu)


def rebuilt(landing: Path) -> pl.DataFrame:
    """The callback attempts rebuilt from a landing store, sorted like the emulator's truth."""
    return canonical_source(MINDFUL, landing)[0].collect().sort("attempt_id")


@contextmanager
def kill_resume_case(seed: int) -> Iterator[KillResumeCase]:
    """31 hourly requests and an OAuth2 token exchange (the kill can land in it)."""
    with MindfulEmulator(small_attempts(seed=seed), rate_limit_per_s=1000.0, extra_holds=2) as emu:
        yield KillResumeCase(
            emulator=emu,
            settings={
                "BASE_URL": emu.base_url,
                "TOKEN_URL": emu.token_url,
                "CLIENT_ID": emu.client_id,
                "CLIENT_SECRET": emu.client_secret,
                "PII_HASH_SECRET": PII_SECRET,
                "START": START.isoformat(),
                "END": END.isoformat(),
                "RATE_LIMIT_PER_S": "40",
            },
            rebuilt=rebuilt,
            truth=partial(emu.expected_attempts, SecretStr(PII_SECRET)),
            key=("attempt_id",),
            cursors={"attempts": END},
            kill_between=(1, 15),
        )
