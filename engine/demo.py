"""The UJET leg of the demo: emulator on loopback -> real connector over HTTP -> tables.

:func:`run_demo` generates seeded synthetic voice and chat traffic (:mod:`engine.synthetic`),
serves it from the UJET emulator on a free 127.0.0.1 port (with IVR menu abandons and outbound
dials, which are never offered to a queue), syncs it through the real connector (rate limiter,
retries, landing, state) with the settings of ``config/demo.toml``, rebuilds the canonical
contacts from the landing store, checks them against the emulator's own truth
(:meth:`~connectors.emulator.ujet.UjetEmulator.expected_contacts`), builds and writes the
tables, and stops the emulator. The landing store and state live in a temporary directory;
credentials and the PII hash key are random per run: the demo needs no configuration.

Example:
    ``report = run_demo(Path("demo-out/ujet"), days=28, seed=7)`` then ``report.matches``.
"""

from __future__ import annotations

import secrets
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal
from pydantic import SecretStr

from connectors.emulator.ujet import UjetEmulator
from connectors.normalise import rebuild
from connectors.sync import SyncReport, sync_source
from connectors.ujet import UJET, UjetSettings
from engine import export, pipeline, synthetic
from engine.config import CONFIG_DIR
from engine.pipeline import BuildReport
from engine.settings import BuildSettings

__all__ = ["DEMO_CONFIG", "DEMO_START", "DemoReport", "run_demo"]

DEMO_CONFIG = CONFIG_DIR / "demo.toml"
DEMO_START = datetime(2026, 10, 1, tzinfo=UTC)
_EMULATOR_RATE = 50.0  # requests/s the demo emulator allows (the connector uses demo.toml's)


@dataclass
class DemoReport:
    """What the UJET demo did: records served, stream reports, the truth check, the build."""

    records: int
    segments: int
    syncs: list[SyncReport]
    matches: bool
    mismatch: str | None
    quarantined: int
    build: BuildReport | None
    seconds: dict[str, float] = field(default_factory=dict)


def _voice_and_chat(days: int, seed: int, scale: float) -> pl.DataFrame:
    frame = synthetic.generate_contacts(
        seed=seed, start=DEMO_START, days=days, scale=scale, source="ujet"
    )
    channel, direction = pl.col("channel").cast(pl.String), pl.col("direction").cast(pl.String)
    voice_or_chat = channel.is_in(["voice", "chat"])
    return frame.filter(voice_or_chat & ~((channel == "chat") & (direction == "outbound")))


def _demo_settings(
    base_url: str, username: str, password: str
) -> tuple[UjetSettings, dict[str, Any]]:
    config = tomllib.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
    ujet = UjetSettings(
        **config["sources"]["ujet"],
        enabled=True,
        base_url=base_url,
        username=username,
        password=SecretStr(password),
        pii_hash_secret=SecretStr(secrets.token_urlsafe(24)),
    )
    return ujet, config


def _compare(synced: pl.DataFrame, truth: pl.DataFrame) -> str | None:
    try:
        assert_frame_equal(synced, truth)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    return None


def run_demo(
    out: Path,
    *,
    days: int = 28,
    seed: int = 7,
    scale: float = 0.05,
    say: Callable[[str], None] = print,
) -> DemoReport:
    """Run the UJET demo end to end (see the module docstring) and write the tables to ``out``.

    Args:
        out: Output directory (``store/``, ``exports/``, ``quarantine/``, ``summary.json``).
        days: Days of traffic from 2026-10-01.
        seed: Seed of the traffic and the emulator's decorations.
        scale: Arrival-rate multiplier (0.05: about 450 voice and chat contacts a weekday).
        say: Where progress lines go.

    Returns:
        The :class:`DemoReport`; ``matches`` is the check against the emulator's truth.
    """
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    contacts = _voice_and_chat(days, seed, scale)
    extras = max(1, contacts["contact_id"].n_unique() // 50)
    username, password = "demo-" + secrets.token_hex(4), secrets.token_urlsafe(18)
    emulator = UjetEmulator(
        contacts,
        username=username,
        password=password,
        rate_limit_per_s=_EMULATOR_RATE,
        seed=seed,
        extra_menu_abandons=extras,
        extra_outbound=extras,
    )
    records = sum(len(emulator.records(e)) for e in ("calls", "chats"))
    seconds["generate"] = round(time.perf_counter() - began, 2)
    say(f"UJET emulator: {records:,} call and chat records ({days} days, seed {seed})")
    with emulator, tempfile.TemporaryDirectory(prefix="wfm-demo-ujet-") as tmp:
        settings, config = _demo_settings(emulator.base_url, username, password)
        say(f"syncing from {emulator.base_url} at {settings.rate_limit_per_s:g} requests/s ...")
        began = time.perf_counter()
        landing, state = Path(tmp) / "landing", Path(tmp) / "state"
        syncs = sync_source(UJET, settings, landing_root=landing, state_root=state)
        seconds["sync"] = round(time.perf_counter() - began, 2)
        for r in syncs:
            status = "ok" if r.ok else f"FAILED: {r.error}"
            say(
                f"  {r.source}/{r.stream}: {r.pages:,} pages, {r.records:,} records, "
                f"{r.retries} retries, {r.throttled} throttled, {r.seconds:.1f}s  {status}"
            )
        began = time.perf_counter()
        normalised = rebuild(UJET, landing)
        synced, quarantine = pl.collect_all([normalised.rows, normalised.quarantine])
        synced = synced.sort("contact_id", "segment_no")
        mismatch = _compare(synced, emulator.expected_contacts())
        seconds["normalise"] = round(time.perf_counter() - began, 2)
    verdict = "OK" if mismatch is None else f"MISMATCH ({mismatch})"
    say(f"check: {synced.height:,} synced segments == the emulator's truth: {verdict}")
    build = None
    if mismatch is None and all(r.ok for r in syncs):
        began = time.perf_counter()
        build_settings = BuildSettings(**config.get("build", {}))
        window = (DEMO_START, DEMO_START + timedelta(days=days))
        build = pipeline.build_contacts(
            synced.lazy(),
            settings=build_settings,
            out_dir=out,
            window=window,
            org_id=str(config.get("output", {}).get("org_id", "o-demo")),
        )
        export.write_csv(quarantine, out / "quarantine" / "ujet_records.csv")
        seconds["build"] = round(time.perf_counter() - began, 2)
        say(f"built {build.table_rows:,} interval rows into {out}")
    return DemoReport(
        records=records,
        segments=synced.height,
        syncs=syncs,
        matches=mismatch is None,
        mismatch=mismatch,
        quarantined=quarantine.height,
        build=build,
        seconds=seconds,
    )
