"""One sync of a source into a test's folder: its landing and state stores under ``root``,
every configured stream, the retry sleeps skipped (the vendor support modules' ``sync`` and the
tests' own wrappers call this)."""

from __future__ import annotations

from pathlib import Path

from connectors.source import Source, SourceSettings
from connectors.sync import SyncReport, sync_source


def sync_into(root: Path, source: Source, settings: SourceSettings) -> list[SyncReport]:
    """``sync_source`` of ``source`` with ``settings``, its stores under ``root``."""
    return sync_source(
        source,
        settings,
        landing_root=root / "landing",
        state_root=root / "state",
        sleep=lambda _: None,
    )
