"""The four vendor emulators serving one seeded synthetic contact centre, and a config for them.

UJET serves voice and chat, Dixa e-mail and messaging, Mindful the callback attempts, and the
Kore.ai emulator its own aggregate of what UJET and Dixa serve. Used by ``wfm-intervals demo``
(the whole job, :func:`engine.pipeline.run.run`, against them on 127.0.0.1) and by the run tests.

Example:
    ``with emulators(random_secrets(), start=t0) as stack: write_config(root, stack, start=t0)``
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from connectors.emulator import DixaEmulator, KoreEmulator, MindfulEmulator, UjetEmulator
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts

__all__ = [
    "SECRET_NAMES",
    "Stack",
    "emulators",
    "random_secrets",
    "write_config",
    "write_toml",
]

SECRET_NAMES = (
    "WFM_SOURCES__UJET__PASSWORD",
    "WFM_SOURCES__UJET__PII_HASH_SECRET",
    "WFM_SOURCES__DIXA__API_TOKEN",
    "WFM_SOURCES__DIXA__PII_HASH_SECRET",
    "WFM_SOURCES__MINDFUL__CLIENT_SECRET",
    "WFM_SOURCES__MINDFUL__PII_HASH_SECRET",
    "WFM_SOURCES__KORE__CLIENT_SECRET",
)
_FAST = {"rate_limit_per_s": 1000.0, "retry_base_s": 0.001, "retry_max_s": 0.01, "max_retries": 3}


def random_secrets() -> dict[str, str]:
    """Fresh credentials for every secret setting (the demo needs no configuration)."""
    return {name: _secrets.token_urlsafe(18) for name in SECRET_NAMES}


def _channels(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    channel, direction = pl.col("channel").cast(pl.String), pl.col("direction").cast(pl.String)
    no_outbound_chat = ~((channel == "chat") & (direction == "outbound"))
    return frame.filter(channel.is_in(names) & no_outbound_chat)


@dataclass
class Stack:
    """The four emulators (started) and their credentials."""

    ujet: UjetEmulator
    dixa: DixaEmulator
    mindful: MindfulEmulator
    kore: KoreEmulator

    def served_contacts(self) -> pl.DataFrame:
        """What UJET and Dixa serve, as canonical contacts (what Kore.ai aggregates)."""
        return pl.concat([self.ujet.expected_contacts(), self.dixa.expected_contacts()])

    def sync_kore(self) -> None:
        """Let the Kore.ai emulator see the contacts UJET and Dixa serve now."""
        self.kore.upsert_contacts(self.served_contacts())


@contextmanager
def emulators(
    secrets: Mapping[str, str],
    *,
    start: datetime,
    days: int = 1,
    seed: int = 3,
    scale: float = 0.03,
    time_zone: str = "UTC",
    until: datetime | None = None,
) -> Iterator[Stack]:
    """The four emulators serving ``days`` of seeded traffic from ``start`` (no rate limits:
    the connectors' own limiters are what is exercised). ``secrets`` holds the credentials by
    their environment-variable names (:data:`SECRET_NAMES`); ``time_zone`` is the local clock
    the daily arrival curve follows. A callback chain's retries may run past the days; with
    ``until`` (the demo's clock), the attempts created after it are not served: they do not
    exist yet. Served, Mindful's metrics counted retries hours ahead of the hour files a sync
    reads up to now, and a demo just after midnight found them out of tolerance (exit 1)."""
    contacts = generate_contacts(
        seed=seed, start=start, days=days, scale=scale, source="ujet", time_zone=time_zone
    )
    other = generate_contacts(
        seed=seed + 2, start=start, days=days, scale=scale * 1.6, source="dixa",
        time_zone=time_zone,
    )  # fmt: skip
    attempts = generate_attempts(seed=seed, start=start, days=days, scale=scale * 6.6)
    if until is not None:
        attempts = attempts.filter(pl.col("created_at") <= until)
    secret = secrets["WFM_SOURCES__MINDFUL__CLIENT_SECRET"]
    with ExitStack() as stack:
        ujet = stack.enter_context(
            UjetEmulator(
                _channels(contacts, "voice", "chat"),
                username="tenant-key",
                password=secrets["WFM_SOURCES__UJET__PASSWORD"],
                rate_limit_per_s=None,
            )
        )
        dixa = stack.enter_context(
            DixaEmulator(
                _channels(other, "email", "messaging"),
                token=secrets["WFM_SOURCES__DIXA__API_TOKEN"],
                rate_limit_per_s=None,
            )
        )
        mindful = stack.enter_context(
            MindfulEmulator(
                attempts,
                client_id="cb-client",
                client_secret=secret,
                rate_limit_per_s=None,
                metrics_rate_limit_per_s=None,
            )
        )
        served = pl.concat([ujet.expected_contacts(), dixa.expected_contacts()])
        kore = stack.enter_context(
            KoreEmulator(
                served, secret=secrets["WFM_SOURCES__KORE__CLIENT_SECRET"], rate_limit=None
            )
        )
        yield Stack(ujet, dixa, mindful, kore)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(root: Path, stack: Stack, *, start: datetime, **sections: dict[str, Any]) -> Path:
    """``root/wfm.toml`` for ``stack`` (stores under ``root``); ``sections`` override tables,
    e.g. ``sources__ujet={"base_url": ...}`` or ``run={"max_quarantine_fraction": 0}``."""
    tables: dict[str, dict[str, Any]] = {
        "sources.ujet": {
            "enabled": True,
            "base_url": stack.ujet.base_url,
            "username": "tenant-key",
            "start": start,
            **_FAST,
        },
        "sources.dixa": {
            "enabled": True,
            "base_url": stack.dixa.base_url,
            "start": start,
            **_FAST,
            "rate_limit_burst": 1000,
            "rate_limit_margin_s": 0.0,
        },
        "sources.mindful": {
            "enabled": True,
            "base_url": stack.mindful.base_url,
            "token_url": stack.mindful.token_url,
            "client_id": "cb-client",
            "start": start,
            **_FAST,
            "metrics_rate_limit_per_s": 1000.0,
        },
        "sources.kore": {
            "enabled": True,
            "base_url": stack.kore.base_url,
            "account_id": stack.kore.account_id,
            "org_id": stack.kore.org_id,
            "app_id": stack.kore.app_id,
            "start": start,
            **_FAST,
            "rate_limit_burst": 1000,
            "rate_limit_period_s": 1.0,
        },
        "store": {"landing": str(root / "landing"), "state": str(root / "state")},
        "output": {"dir": str(root / "out"), "vendor_profiles": ["genesys"], "forecast": True},
    }
    for name, values in sections.items():
        key = name.replace("__", ".")
        tables[key] = tables.get(key, {}) | values
    return write_toml(root / "wfm.toml", tables)


def write_toml(path: Path, tables: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``tables`` (``"sources.ujet" -> {key: value}``) as a TOML file; ``path``.

    Values: booleans, numbers, instants (UTC, ``Z``), lists of those, anything else as a string.
    """
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
        for name, values in tables.items()
    )
    path.write_text(text, encoding="utf-8")
    return path
