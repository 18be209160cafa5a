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
(:func:`connectors.normalise.rebuild`), and validates them: this is the one place the canonical
rules are applied to a connector's rows (:func:`validated`). A record with a bad row is
quarantined whole, under its record id, with its landed payload as ``raw``; the connectors'
own quarantine (landing rejects, what a mapping alone can see) comes first, and no record is
quarantined twice.

Example:
    ``pulls = sync_all(settings, ["ujet", "mindful"])`` then
    ``rows, quarantine = canonical(settings, ["ujet"], "contacts")``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from connectors.errors import LandingError
from connectors.landing import compact, latest_records, scan_files
from connectors.landing.check import check_landing, refuse_unsyncable, unreadable_landing
from connectors.landing.manifest import landed_files, read_manifest, stream_dir
from connectors.normalise import Rebuilt, rebuild
from connectors.source import Source, SourceSettings, Stream
from connectors.state import StateStore
from connectors.sync import Progress, sync_source
from engine import clock
from engine.app.config import AppSettings
from engine.app.sources import connector
from engine.errors import StoreError, SyncFailedError, printable
from engine.output import delta
from engine.schema import QUARANTINE, SOURCE_RECORD
from engine.validate.callback_attempts import validate_callback_attempts
from engine.validate.contacts import MAX_DURATION_MS, validate_contacts

__all__ = [
    "Pull",
    "SyncFailedError",
    "canonical",
    "canonical_frames",
    "canonical_source",
    "run_lookback",
    "sync_all",
    "tables_fed",
    "validated",
]

_VALIDATE = {"contacts": validate_contacts, "callback_attempts": validate_callback_attempts}

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
    repaired: list[str] = field(default_factory=list)  #: landing files lost or torn, re-fetched
    started_from: str = ""  #: the cursor the sync started from (lookback included)
    error: str | None = None  #: as ``sync --json`` has it (a run stops at a stream's error)

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-able dict."""
        return asdict(self)


def _new_versions(settings: AppSettings, source: str, stream: str, before: set[Path]) -> int:
    """Record versions landed since the stream's files were ``before``: records of the files
    added whose latest version the earlier files did not hold (only those records are read,
    and of the earlier files only those that may hold them: :func:`_holding`).

    A version is its payload's hash, taken as the files are read (a streaming scan): the
    payloads themselves are never held, ~2.5 KB a UJET record (a first run's 300K of them
    held ~640 MB to be counted). When no earlier file may hold them (a first run), a record
    landed once is one new version without reading its payload (a first run's 210K UJET calls
    streamed through the hash held ~100 MiB more): only the others' payloads are hashed."""
    root = settings.store.landing
    files = landed_files(root, source, stream)
    added = [f for f in files if f not in before]
    if not added:
        return 0
    try:
        landed = scan_files(added, None).group_by("record_id").len().collect()
        ids = landed["record_id"]
        old = _holding(settings, source, stream, [f for f in files if f in before], ids)
        # No earlier file holds them (a first run): a record landed once is one new version.
        plain = ids.clear() if old else landed.filter(pl.col("len") == 1)["record_id"]
        ids = ids.filter(~ids.is_in(plain.implode()))
        if ids.is_empty():
            return plain.len()

        def versions(paths: list[Path]) -> pl.DataFrame:
            rows = scan_files(paths, None).filter(pl.col("record_id").is_in(ids.implode()))
            hashed = rows.with_columns(pl.col("payload").hash())
            return hashed.collect(engine="streaming")

        def latest(paths: list[Path]) -> pl.LazyFrame:
            if not paths:
                return pl.LazyFrame(schema={"record_id": pl.String, "version": pl.UInt64})
            found = latest_records(versions(paths).lazy())
            return found.select("record_id", pl.col("payload").alias("version"))

        fresh = latest([*old, *added]).join(latest(old), on=["record_id", "version"], how="anti")
        return plain.len() + fresh.collect().height
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(settings, f"{source}/{stream}", exc, [(source, stream)]) from None


def _holding(
    settings: AppSettings, source: str, stream: str, old: list[Path], ids: pl.Series
) -> list[Path]:
    """The files of ``old`` that may hold any of ``ids``: those the canonical snapshot's index
    says hold one, and those it does not know as they are (landed since it was made, or of
    another size); all of them when there is no snapshot to ask. A year of landing is not
    read to count one day's new versions."""
    from engine.pipeline.snapshot import landed, snapshot_dir  # noqa: PLC0415 - an import cycle

    folder = snapshot_dir(settings.store.state, connector(source).table)
    known = landed.landed_index(folder, source, stream, ids)
    if known is None:
        return old
    sizes, holding = known
    home = stream_dir(settings.store.landing, source, stream)
    keys = [f"{source}/{stream}/{f.relative_to(home).as_posix()}" for f in old]
    return [
        f
        for f, key in zip(old, keys, strict=True)
        if key in holding or sizes.get(key) != f.stat().st_size
    ]


def _unreadable(
    settings: AppSettings, what: str, exc: BaseException, streams: Sequence[tuple[str, str]]
) -> StoreError:
    """Landed files that cannot be read: one line naming them (each file of ``streams`` read
    alone), their streams and how to recover
    (:func:`connectors.landing.check.unreadable_landing`)."""
    return StoreError(unreadable_landing(settings.store.landing, streams, what, printable(exc)))


def keep_landed(settings: AppSettings, name: str) -> None:
    """Refuse to sync a stream of source ``name`` into a landing store that holds nothing of it
    (no file, no manifest entry) while no state of the stream says what was landed (the state
    lost with the landing: moved, not mounted, a relative ``[store] landing`` read from another
    working directory; or rows ``build`` wrote) and the store's table it feeds holds rows from
    it: the next rebuild would replace those rows with what this sync fetches. A stream's rows
    are told apart by their record refs when the source has several (UJET's ``call-7`` and
    ``chat-9`` contacts: :func:`_rows_of`), so one stream lost with its state is refused while
    its source's others are intact. Where a stream's state knows (its ``landed`` flag),
    :func:`connectors.landing.check.repair_landing` decides; lost files the manifest lists are
    fetched again there.

    Raises:
        LandingError: as above (exit 2), naming both paths and the ways out.
        StateError: a stream's state file unreadable, or lost beside landed files (every
            stream of every source is checked before any is fetched: one source's torn state
            once stopped ``sync`` after it had committed the sources before it).
    """
    root, configured = settings.store.landing, connector(name).configured(settings.source(name))
    streams = configured.streams
    bare = [  # no file and no manifest entry (files lost but listed are fetched again)
        s
        for s in streams
        if not landed_files(root, name, s.name) and not read_manifest(root, name, s.name).entries
    ]
    for stream in streams:  # before any source is fetched (the sync's own check stops at it)
        found = check_landing(root, settings.store.state, name, stream.name)
        refuse_unsyncable(found, root, name, stream.name)
    states = StateStore(settings.store.state)
    unknown = [s for s in bare if (st := states.get(name, s.name)) is None or st.landed is None]
    path = settings.output.dir / "store" / configured.table
    if not unknown or not delta.is_table(path):
        return
    for stream in unknown:
        what = name if len(streams) == 1 else f"{name}/{stream.name}"
        held = _rows_of(delta.scan(path), name, stream, several=len(streams) > 1)
        if held:
            raise LandingError(
                f"{what}: the landing store {root.resolve()} and the state hold nothing of it, "
                f"while {path.resolve()} holds {held:,} rows from it (a landing store lost, "
                "moved or not mounted, a relative [store] landing read from another working "
                "directory, or rows `build` wrote): a run would replace them with what the "
                "source serves now. Point [store] landing and state at the right folders; or, "
                f"to start the source over, move {path.name} aside (the next run rebuilds it)"
            )


#: The column of a canonical table that holds a row's record ref (``Stream.ref``).
_REF_COLUMN = {"contacts": "contact_id", "callback_attempts": "attempt_id"}


def _rows_of(rows: pl.LazyFrame, source: str, stream: Stream, *, several: bool) -> int:
    """How many of a stored table's ``rows`` came from ``source`` (all of them when the table
    has no ``source`` column); with ``several`` streams, from ``stream``: those whose id is
    one of its record refs (a UJET call's contacts are ``call-<id>``, its chat's ``chat-<id>``)."""
    from engine.pipeline.snapshot.landed import id_of  # noqa: PLC0415 - an import cycle

    names = rows.collect_schema().names()
    if "source" in names:
        rows = rows.filter(pl.col("source") == source)
    column = next((c for c in _REF_COLUMN.values() if c in names), None)
    if several and column is not None:
        rows = rows.filter(id_of(stream, pl.col(column)).is_not_null())
    return int(rows.select(pl.len()).collect().item())


def run_lookback(settings: AppSettings, names: Sequence[str]) -> float:
    """A run's lookback in minutes: ``[run] lookback_minutes``, else the largest of ``names``'."""
    given, own = settings.run.lookback_minutes, (settings.source(n).lookback_minutes for n in names)
    return max(own) if given is None else given


def sync_all(settings: AppSettings, names: Sequence[str], emit: Emit | None = None,
             reread: float = 0.0) -> list[Pull]:  # fmt: skip
    """Sync the named sources in order; one :class:`Pull` per stream. Kore.ai re-reads at least
    ``reread`` minutes (a run's lookback): a run compares only the rows it read again
    (:func:`engine.pipeline.checks.synced_window`), over the intervals it rebuilds.

    Raises:
        SyncFailedError: a stream failed (nothing after it is synced).
        ConnectorError: settings a client cannot be built from, or a failed preflight; a
            landing store lost (:func:`keep_landed`).
    """
    say = emit or (lambda _event, _fields: None)
    pulls: list[Pull] = []
    today = clock.now().date()  # partitions before it are complete (fetch dates, UTC)
    for name in names:  # every source, before any is fetched
        keep_landed(settings, name)
    for name in names:
        source, source_settings = connector(name), settings.source(name)
        if name == "kore" and reread > source_settings.lookback_minutes:
            source_settings = source_settings.model_copy(update={"lookback_minutes": reread})
        configured = source.configured(source_settings)
        streams = [s.name for s in configured.streams]
        root = settings.store.landing
        before = {s: set(landed_files(root, name, s)) for s in streams}

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
            new = _new_versions(settings, name, r.stream, before[r.stream])
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
                list(r.repaired),
                r.started_from,
            )
            pulls.append(pull)
            say("sync.stream", pull.to_dict())
        say("sync.source", {"source": name, "seconds": round(time.perf_counter() - began, 3)})
    return pulls


def validated(
    rebuilt: Rebuilt, table: str, *, max_duration_ms: int = MAX_DURATION_MS
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The pipeline edge for one source's rebuilt rows: ``(clean, quarantine)`` of ``table``.

    The rows are validated once (:func:`engine.validate.contacts.validate_contacts` or
    :func:`engine.validate.callback_attempts.validate_callback_attempts`, each record named by
    its ``record_id``); a quarantined record's ``raw`` is its landed payload (the canonical form
    the validation saw when there is none). The connector's own quarantine rows come first.

    Raises:
        KeyError: ``table`` is not one the pipeline validates.
    """
    # Cached: the clean rows, the quarantine and its payloads all start from the same rebuild
    # (the landing scan and the mapping); without it, collecting them together ran that plan
    # three times (1.8 s against 0.6 s for 15k Mindful attempts).
    rows, raw = rebuilt.rows.cache(), rebuilt.raw.cache()
    clean, bad = _VALIDATE[table](rows, record=SOURCE_RECORD, max_duration_ms=max_duration_ms)
    payloads = raw.select("source", "record_id", pl.col("raw").alias("__payload"))
    bad = (
        bad.join(payloads, on=["source", "record_id"], how="left", nulls_equal=False)
        .with_columns(pl.coalesce("__payload", "raw").alias("raw"))
        .select(list(QUARANTINE))
    )
    return clean, pl.concat([rebuilt.quarantine.cast(QUARANTINE), bad])  # type: ignore[arg-type]


def canonical_source(
    source: Source,
    landing: Path,
    settings: SourceSettings | None = None,
    *,
    max_duration_ms: int = MAX_DURATION_MS,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """One source's validated canonical rows and their quarantine, from the landing store at
    ``landing`` (:func:`connectors.normalise.rebuild`, then :func:`validated`), lazily.

    Raises:
        KeyError: the source feeds no table the pipeline validates (Kore.ai's interval rows).
    """
    return validated(
        rebuild(source, landing, settings), source.table, max_duration_ms=max_duration_ms
    )


def canonical_frames(
    settings: AppSettings, names: Sequence[str], table: str
) -> tuple[pl.LazyFrame, pl.LazyFrame] | None:
    """:func:`canonical`, lazily (``None`` when none of the named sources feeds ``table``)."""
    landing = settings.store.landing
    outs = [
        canonical_source(
            connector(n),
            landing,
            settings.source(n),
            max_duration_ms=settings.build.max_duration_ms,
        )
        for n in names
        if connector(n).table == table
    ]
    if not outs:
        return None
    return pl.concat([o[0] for o in outs]), pl.concat([o[1] for o in outs])


def canonical(
    settings: AppSettings, names: Sequence[str], table: str
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The validated canonical rows of ``table`` from the named sources that feed it, and
    their quarantine (``None`` when none of them does).

    Example:
        >>> from engine.app.config import load_settings
        >>> canonical(load_settings(env_file=None), ["kore"], "contacts") is None
        True
    """
    frames = canonical_frames(settings, names, table)
    if frames is None:
        return None
    try:
        rows, quarantine = pl.collect_all(list(frames))
    except (pl.exceptions.PolarsError, OSError) as exc:
        feeds = [n for n in names if connector(n).table == table]
        streams = [
            (n, s.name) for n in feeds for s in connector(n).configured(settings.source(n)).streams
        ]
        raise _unreadable(settings, f"{table} ({', '.join(feeds)})", exc, streams) from None
    return rows, quarantine


def tables_fed(names: Sequence[str]) -> list[str]:
    """The store tables the named sources feed (the Kore.ai import, rebuilt whole by every run,
    aside).

    Example:
        >>> tables_fed(["ujet"])
        ['contacts', 'callvolume', 'staffing']
    """
    tables = {connector(n).table for n in names}
    found = []
    if "contacts" in tables:
        found += ["contacts", "callvolume", "staffing"]
    if "callback_attempts" in tables:
        found += ["callback_attempts", "callback_intervals", "retry_outcomes"]
    return found
