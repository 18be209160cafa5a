"""Shared helpers of the UJET connector tests: small data, settings, rebuilds, PII and secrets."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import SecretStr

from connectors.emulator import UjetEmulator
from connectors.sync import SyncReport
from connectors.vendors.ujet.client import UJET, UjetSettings
from engine.demo.contacts import generate_contacts
from engine.interval import snap_window
from engine.pipeline.sources import canonical_source
from engine.settings import BuildSettings
from engine.tables import callvolume
from tests.connectors.kill_support import KillResumeCase
from tests.connectors.sync_support import sync_into

START = datetime(2026, 10, 1, tzinfo=UTC)
USER, PASSWORD = "tenant-key", "pw-Zx81-never-logged"
PII_SECRET = "hmac-key-Qw93-never-logged"  # noqa: S105 - a fake test secret


def small_contacts(seed: int = 3, scale: float = 0.04) -> pl.DataFrame:
    """About 300 voice and chat contacts over one day."""
    frame = generate_contacts(seed=seed, start=START, days=1, scale=scale, source="ujet")
    channel, direction = pl.col("channel").cast(pl.String), pl.col("direction").cast(pl.String)
    return frame.filter(
        channel.is_in(["voice", "chat"]) & ~((channel == "chat") & (direction == "outbound"))
    )


def emulator(contacts: pl.DataFrame, **kw: Any) -> UjetEmulator:
    """The emulator with these contacts, a few never-offered calls, and our credentials."""
    options: dict[str, Any] = {
        "username": USER,
        "password": PASSWORD,
        "rate_limit_per_s": 1000.0,
        "extra_menu_abandons": 4,
        "extra_outbound": 4,
    }
    return UjetEmulator(contacts, **(options | kw))


def settings_for(emu: UjetEmulator, **overrides: Any) -> UjetSettings:
    """Fast settings against ``emu`` (tests inject the retry sleep, so backoff never waits)."""
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": emu.base_url,
        "username": USER,
        "password": SecretStr(PASSWORD),
        "pii_hash_secret": SecretStr(PII_SECRET),
        "rate_limit_per_s": 500.0,
        "per_page": 25,
        "start": datetime(2026, 9, 1, tzinfo=UTC),
        "retry_base_s": 0.001,
        "retry_max_s": 0.01,
        "max_retries": 8,
        "timeouts": {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0},
    }
    return UjetSettings(**(values | overrides))


def sync(root: Path, settings: UjetSettings) -> list[SyncReport]:
    """One sync of every configured stream with ``settings``, its stores under ``root``."""
    return sync_into(root, UJET, settings)


def synced(landing: Path) -> pl.DataFrame:
    """The canonical contacts rebuilt from a landing store, sorted like the emulator's truth."""
    return canonical_source(UJET, landing)[0].collect().sort("contact_id", "segment_no")


def volume(contacts: pl.DataFrame) -> pl.DataFrame:
    """The interval volume table of ``contacts`` over the test day."""
    settings = BuildSettings()
    window = snap_window(START, datetime(2026, 10, 3, tzinfo=UTC), minutes=15, tz="UTC")
    table = callvolume.build(contacts.lazy(), window=window, settings=settings)
    return table.collect().sort("interval_start_utc", "queue_id", "channel")


def pii_values(emu: UjetEmulator) -> set[str]:
    """Every PII value the emulator served (phones, e-mails, ids, names, media URLs)."""
    values: set[str] = set()

    def people(obj: Any) -> Iterator[dict[str, Any]]:
        if isinstance(obj, dict):
            yield obj
            for v in obj.values():
                yield from people(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from people(v)

    for endpoint in ("calls", "chats"):
        for record in emu.records(endpoint):
            user = record["end_user"]
            values |= {str(user["identifier"]), str(user["out_contact_id"])}
            values |= {p["url"] for p in record["photos"] + record["videos"]}
            values |= {v for k in ("recording_url", "outbound_number") if (v := record.get(k))}
            for obj in people(record):
                if obj.get("first_name"):
                    values.add(f"{obj['first_name']} {obj['last_name']}")
                    values.add(f'"last_name":"{obj["last_name"]}"')
    return values


def secrets() -> set[str]:
    """The secrets of :func:`settings_for`, as they could leak (plain and in a Basic header)."""
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return {PASSWORD, PII_SECRET, basic}


def texts_under(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file under ``root`` as text: Parquet decoded (all string cells), others as bytes."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            cells = [str(v) for c in frame.columns for v in frame[c].to_list()]
            yield path, "\n".join(cells) + path.read_bytes().decode("latin-1")
        else:
            yield path, path.read_bytes().decode("utf-8", errors="replace")


def pii_keys() -> tuple[str, ...]:
    """JSON keys that must never be landed."""
    keys = (
        "end_user",
        "first_name",
        "last_name",
        "recording_url",
        "photos",
        "videos",
        "identifier",
        "out_contact_id",
        "end_user_id",
        "user_id",
        "avatar_url",
    )
    return tuple(json.dumps(k) + ":" for k in keys)


@contextmanager
def contract_harness() -> Iterator[UjetSettings]:
    """The UJET source against its emulator, for the contract test."""
    with emulator(small_contacts(scale=0.02)) as emu:
        yield settings_for(emu)


@contextmanager
def kill_resume_case(seed: int) -> Iterator[KillResumeCase]:
    """About 30 requests of 10 records: calls and chats of a day (the kill-and-resume test)."""
    with emulator(small_contacts(seed=seed, scale=0.03), rate_limit_per_s=1000.0) as emu:
        yield KillResumeCase(
            emulator=emu,
            settings={
                "BASE_URL": emu.base_url,
                "USERNAME": USER,
                "PASSWORD": PASSWORD,
                "PII_HASH_SECRET": PII_SECRET,
                "PER_PAGE": "10",
                "RATE_LIMIT_PER_S": "40",
                "START": "2026-09-01T00:00:00Z",
            },
            rebuilt=synced,
            truth=emu.expected_contacts,
            key=("contact_id", "segment_no"),
            cursors={"calls": None, "chats": None},
        )
