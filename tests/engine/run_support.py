"""Shared helpers of the ``run`` and ``reconcile`` tests: the four emulators on loopback, a config
file pointing at them (secrets only in the environment), and readers of what a run wrote.

The data is one day (yesterday, UTC) at a low scale: UJET voice and chat, Dixa e-mail and
messaging, Mindful callbacks; the Kore.ai emulator aggregates the contacts UJET and Dixa serve.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result

from connectors.emulator import DixaEmulator, KoreEmulator, MindfulEmulator, UjetEmulator
from engine.cli import cli
from engine.synthetic import generate_contacts
from engine.synthetic_callbacks import generate_attempts

T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
DAY = (T0, T0 + timedelta(days=1))
SECRETS = {
    "WFM_SOURCES__UJET__PASSWORD": "ujet-pw-Rr71-never-logged",
    "WFM_SOURCES__UJET__PII_HASH_SECRET": "hmac-Ux32-never-logged",
    "WFM_SOURCES__DIXA__API_TOKEN": "dixa-tok-Dd55-never-logged",
    "WFM_SOURCES__DIXA__PII_HASH_SECRET": "hmac-Dx17-never-logged",
    "WFM_SOURCES__MINDFUL__CLIENT_SECRET": "mindful-cs-Mm09-never-logged",
    "WFM_SOURCES__MINDFUL__PII_HASH_SECRET": "hmac-Mx44-never-logged",
    "WFM_SOURCES__KORE__CLIENT_SECRET": "kore-cs-Kk28-never-logged",
}
_FAST = {"rate_limit_per_s": 1000.0, "retry_base_s": 0.001, "retry_max_s": 0.01, "max_retries": 3}


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
def emulators() -> Iterator[Stack]:
    """The four emulators serving yesterday's traffic (fast limits: the tests never wait)."""
    contacts = generate_contacts(seed=3, start=T0, days=1, scale=0.03, source="ujet")
    other = generate_contacts(seed=5, start=T0, days=1, scale=0.05, source="dixa")
    attempts = generate_attempts(seed=3, start=T0, days=1, scale=0.2)
    secret = SECRETS["WFM_SOURCES__MINDFUL__CLIENT_SECRET"]
    with ExitStack() as stack:
        ujet = stack.enter_context(
            UjetEmulator(
                _channels(contacts, "voice", "chat"),
                username="tenant-key",
                password=SECRETS["WFM_SOURCES__UJET__PASSWORD"],
                rate_limit_per_s=None,
            )
        )
        dixa = stack.enter_context(
            DixaEmulator(
                _channels(other, "email", "messaging"),
                token=SECRETS["WFM_SOURCES__DIXA__API_TOKEN"],
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
                served, secret=SECRETS["WFM_SOURCES__KORE__CLIENT_SECRET"], rate_limit=None
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


def write_config(root: Path, stack: Stack, **sections: dict[str, Any]) -> Path:
    """``root/wfm.toml`` for ``stack`` (stores under ``root``); ``sections`` override tables,
    e.g. ``sources__ujet={"base_url": ...}`` or ``run={"max_quarantine_fraction": 0}``."""
    tables: dict[str, dict[str, Any]] = {
        "sources.ujet": {
            "enabled": True,
            "base_url": stack.ujet.base_url,
            "username": "tenant-key",
            "start": T0,
            **_FAST,
        },
        "sources.dixa": {
            "enabled": True,
            "base_url": stack.dixa.base_url,
            "start": T0,
            **_FAST,
            "rate_limit_burst": 1000,
            "rate_limit_margin_s": 0.0,
        },
        "sources.mindful": {
            "enabled": True,
            "base_url": stack.mindful.base_url,
            "token_url": stack.mindful.token_url,
            "client_id": "cb-client",
            "start": T0,
            **_FAST,
            "metrics_rate_limit_per_s": 1000.0,
        },
        "sources.kore": {
            "enabled": True,
            "base_url": stack.kore.base_url,
            "account_id": stack.kore.account_id,
            "org_id": stack.kore.org_id,
            "app_id": stack.kore.app_id,
            "start": T0,
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
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
        for name, values in tables.items()
    )
    path = root / "wfm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def invoke(args: list[str], config: Path | None = None) -> Result:
    """``wfm-intervals ARGS --config CONFIG`` with the secrets in the environment only."""
    extra = ["--config", str(config)] if config is not None else []
    return CliRunner().invoke(cli, [*args, *extra], env=SECRETS, catch_exceptions=False)


def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WFM_ variable or .env of the developer's leaks into a test."""
    for name in [n for n in os.environ if n.startswith("WFM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def closed_port_url(path: str = "") -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def table(out: Path, name: str) -> pl.DataFrame:
    """A stored table, sorted by every key-like column (without the partition column)."""
    frame = pl.read_parquet(out / "store" / name / "**" / "*.parquet", hive_partitioning=False)
    frame = frame.drop("date", strict=False)
    return frame.sort(frame.columns[:8], nulls_last=True)


def csv_rows(path: Path) -> int:
    """Rows of a CSV file (0 when it is missing or empty)."""
    if not path.is_file() or not path.stat().st_size:
        return 0
    return pl.read_csv(path, infer_schema=False).height


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed command."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wfm-intervals: error: "), lines[0]
    return lines[0]
