"""The source side of ``wfm-intervals run``: sync every enabled source, then rebuild canonical rows.

:func:`sync_all` pulls each enabled source (:func:`connectors.sync.sync_source`) and fails fast:
the first stream that fails stops the run with its one-line error (:class:`SyncFailedError`),
after everything it committed stays landed. Besides the sync reports it counts, per stream, the
record versions that are new in the landing store (a re-read of unchanged records is not new).
After a stream has synced it compacts the stream's landing partitions of earlier fetch dates (one
file per page becomes one file per day; :func:`connectors.landing.compact`): a sync only ever
writes to the partition of the day it runs, so those are complete, and without this a nightly run
would scan one more day of small files every night.
:func:`canonical` rebuilds the canonical rows of one table (``contacts`` from UJET and Dixa,
``callback_attempts`` from Mindful) and their quarantine from the landing store
(:func:`connectors.normalise.rebuild`).

Example:
    ``pulls = sync_all(settings, ["ujet", "mindful"])`` then
    ``rows, quarantine = canonical(settings, ["ujet"], "contacts")``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from connectors.landing import compact, scan_landed
from connectors.normalise import rebuild
from connectors.sync import Progress, sync_source
from engine import clock
from engine.app.config import AppSettings
from engine.app.sources import connector
from engine.errors import SyncFailedError
from engine.schema import QUARANTINE

__all__ = ["Pull", "SyncFailedError", "canonical", "sync_all"]

Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class Pull:
    """What one stream's sync pulled: the sync report's counts and the new record versions."""

    source: str
    stream: str
    pages: int
    records: int  #: records received (re-reads of the lookback included)
    landed: int  #: rows written to the landing store
    new: int  #: record versions the landing store did not hold before
    rejected: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    throttled: int = 0
    cursor: str | None = None
    seconds: float = 0.0
    compacted: int = 0  #: landing files of earlier fetch dates merged away after the sync

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-able dict."""
        return asdict(self)


def _versions(settings: AppSettings, source: str, stream: str) -> pl.DataFrame:
    landed = scan_landed(settings.store.landing, source, stream)
    return landed.select("record_id", pl.col("payload").hash().alias("version")).collect()


def sync_all(settings: AppSettings, names: Sequence[str], emit: Emit | None = None) -> list[Pull]:
    """Sync the named sources in order; one :class:`Pull` per stream.

    Raises:
        SyncFailedError: a stream failed (nothing after it is synced).
        ConnectorError: settings a client cannot be built from, or a failed preflight.
    """
    say = emit or (lambda _event, _fields: None)
    pulls: list[Pull] = []
    today = clock.now().date()  # partitions before it are complete (fetch dates, UTC)
    for name in names:
        source, source_settings = connector(name), settings.source(name)
        configured = source.configured(source_settings)
        streams = [s.name for s in configured.streams]
        before = {s: _versions(settings, name, s) for s in streams}

        def progress(p: Progress) -> None:
            say(
                "sync.page",
                {
                    "source": p.source,
                    "stream": p.stream,
                    "pages": p.pages,
                    "records": p.records,
                    "total_hint": p.total_hint,
                },
            )

        began = time.perf_counter()
        reports = sync_source(
            source,
            source_settings,
            landing_root=settings.store.landing,
            state_root=settings.store.state,
            progress=progress,
        )
        for r in reports:
            if not r.ok:
                raise SyncFailedError(f"{r.source}/{r.stream}: {r.error}")
            after = _versions(settings, name, r.stream)
            new = after.join(before[r.stream], on=["record_id", "version"], how="anti").height
            pull = Pull(
                r.source,
                r.stream,
                r.pages,
                r.records,
                r.landed,
                new,
                r.rejected,
                r.retries,
                r.throttled,
                r.cursor,
                r.seconds,
                compact(
                    settings.store.landing,
                    name,
                    r.stream,
                    before=today,
                    record_dtype=configured.stream(r.stream).landed_dtype,
                ),
            )
            pulls.append(pull)
            say("sync.stream", pull.to_dict())
        say("sync.source", {"source": name, "seconds": round(time.perf_counter() - began, 3)})
    return pulls


def canonical(
    settings: AppSettings, names: Sequence[str], table: str
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The canonical rows of ``table`` from the named sources that feed it, and their
    quarantine (``None`` when none of them does).

    Example:
        >>> from engine.app.config import load_settings
        >>> canonical(load_settings(env_file=None), ["kore"], "contacts") is None
        True
    """
    landing = settings.store.landing
    outs = [
        rebuild(connector(n), landing, settings.source(n))
        for n in names
        if connector(n).table == table
    ]
    if not outs:
        return None
    rows, quarantine = pl.collect_all(
        [pl.concat([o.rows for o in outs]), pl.concat([o.quarantine for o in outs])]
    )
    return rows, quarantine.cast(QUARANTINE)  # type: ignore[arg-type]
