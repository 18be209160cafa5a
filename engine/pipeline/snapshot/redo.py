"""How a run refreshes a canonical snapshot from what landed (the package says what and why).

Example:
    ``rows, quarantine = refresh(settings, ["ujet"], "contacts").frames``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from connectors.landing import latest_records, scan_files
from connectors.landing.check import unreadable_landing
from connectors.landing.manifest import landed_path
from connectors.normalise import (
    RAW_SCHEMA,
    Rebuilt,
    normalise_stream,
    payloads,
)
from connectors.source import Source, Stream
from engine.app.config import AppSettings
from engine.app.sources import connector
from engine.errors import StoreError, printable
from engine.interval import Window
from engine.pipeline.snapshot.landed import (
    absent,
    file_index,
    landed_files,
    of_stream,
    records_of,
    rejected_rows,
)
from engine.pipeline.snapshot.parts import (
    FILE_PIECE,
    FORMAT,
    Snapshot,
    homes_of,
    in_order,
    load,
    months_near,
    parted,
    pieces_of,
    save,
    scan_part,
    sharded,
)
from engine.pipeline.snapshot.splice import (
    IDENT,
    REF,
    ROW_ORDER,
    SRC,
    closure,
    held,
    identities,
    spliced,
    without,
)
from engine.pipeline.snapshot.sums import Digests, damaged
from engine.pipeline.sources import validated
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, QUARANTINE
from engine.validate.contacts import MAX_DURATION_MS

__all__ = ["Refreshed", "refresh", "refresh_sources", "snapshot_dir"]

_SRC, _REF, _IDENT = SRC, REF, IDENT
#: Above this share of all records touched, redoing everything is as cheap.
_WHOLE = 0.5
#: A whole redo maps and validates about this many records at a time (:func:`_whole`): the
#: mapping of UJET calls holds ~5x its rows while it runs (260K calls at once: ~300 MiB)...
GROUP_RECORDS = 10_000
#: ...in at most about this many groups (each update scans the identities so far: a larger landing
#: takes larger groups rather than a cost growing with the square of its records).
MAX_GROUPS = 64


def snapshot_dir(state_root: Path, table: str) -> Path:
    """Where the snapshot of ``table`` lives."""
    return Path(state_root) / "snapshot" / table


@dataclass(frozen=True)
class Refreshed:
    """What :func:`refresh` did: the table's rows (:attr:`rows`, or those of some months:
    :meth:`near`) and ``quarantine``, and how."""

    snap: Snapshot
    table: str
    quarantine: pl.DataFrame
    mode: str  #: "whole" (no usable snapshot), "unchanged", or "incremental"
    redone: int  #: records mapped and validated again
    records: int  #: records landed in all
    #: the digest of each store partition day of ``rows`` (``None``: not kept for the table)
    digests: Digests | None = None
    #: the snapshot's files found damaged on disk (it was redone whole), a line each
    repaired: tuple[str, ...] = ()

    @property
    def rows(self) -> pl.DataFrame:
        """Every row of the table (the shards not read yet are read)."""
        return self.snap.rows(self.table)

    @property
    def height(self) -> int:
        """How many rows the table has (no shard read)."""
        return self.snap.height

    def near(self, windows: Iterable[Window]) -> pl.DataFrame:
        """The rows of the months from a day before each of ``windows`` to a day after it
        (:func:`engine.pipeline.snapshot.parts.months_near`): a superset of the rows whose shard
        day falls in them, in the order of :attr:`rows`."""
        return self.snap.rows(self.table, months_near(windows))

    @property
    def chains(self) -> tuple[int, pl.DataFrame]:
        """Of callback attempts: how many chains, and their gaps (no shard read)."""
        return self.snap.chains(self.table)

    def describe(self) -> dict[str, Any]:
        """How the table was refreshed, for the run's events."""
        return {"mode": self.mode, "redone": self.redone, "records": self.records}

    @property
    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """``(rows, quarantine)``, as :func:`engine.pipeline.sources.canonical` gives them."""
        return self.rows, self.quarantine


def _mapping(stream: Stream) -> dict[str, object]:
    """The settings a stream's normalise function is bound to (Dixa's ``duration_unit``, field
    mapping, channel and outcome maps): a change of one changes the canonical rows."""
    bound = stream.normalise.keywords if isinstance(stream.normalise, partial) else {}
    return {
        k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v for k, v in bound.items()
    }


def _key(feeds: Sequence[Source], table: str, settings: object) -> str:
    """What the snapshot's rows depend on besides the landed files: a snapshot made under
    other build settings, or other mapping settings of a source, is redone whole."""
    streams = [
        [f.name, s.name, s.record_ref, str(s.landed_dtype), _mapping(s)]
        for f in feeds
        for s in f.streams
    ]
    what = {
        "format": FORMAT,
        "table": table,
        "polars": pl.__version__,
        "streams": streams,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class _Job:
    root: Path  #: the landing store
    feeds: Sequence[Source]
    table: str
    bound: int  #: the plausibility bound of durations (``[build] max_duration_hours``), ms


def _map(
    job: _Job, index: pl.DataFrame, todo: pl.DataFrame | None
) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame, list[pl.LazyFrame]]:
    """The landed records ``todo`` (``__src``, ``stream``, ``record_id``; ``None``: all),
    de-duplicated and mapped: ``(rows with __src, mapping quarantine, payloads, payloads left
    out)``. A stream that lands decoded is mapped from its typed columns: the payloads of its
    records landed once are left out (read back for the records quarantined only, ~85 % of a
    UJET landing's bytes not read)."""
    rows, quarantine, raw, later = [], [], [], []
    for feed in job.feeds:
        for stream in feed.streams:
            wanted = pl.lit(True)
            if todo is not None:
                ids = of_stream(todo.lazy(), feed.name, stream.name).select("record_id").collect()
                wanted = pl.col("record_id").is_in(ids["record_id"].implode())
            mine = of_stream(index.lazy(), feed.name, stream.name).filter(wanted).collect()
            if mine.is_empty():
                continue
            files = [landed_path(job.root, k) for k in sorted(set(mine["file"]))]
            landed = scan_files(files, stream.landed_dtype).filter(wanted)
            if stream.landed_dtype is not None:  # most ids once: no payload, no de-duplication
                many = mine.filter(pl.len().over("record_id") > 1)["record_id"].implode()
                once = landed.filter(~pl.col("record_id").is_in(many))
                later.append(payloads(feed, stream, once))
                landed = pl.concat(
                    [
                        once.with_columns(pl.lit(None, pl.String).alias("payload")),
                        latest_records(landed.filter(pl.col("record_id").is_in(many))),
                    ]
                )
            else:
                landed = latest_records(landed)
            out = normalise_stream(feed, stream, landed)
            rows.append(out.rows.with_columns(pl.lit(feed.name).alias(_SRC)))
            quarantine.append(out.quarantine)
            raw.append(out.raw)
    if not rows:
        schema = CONTACTS if job.table == "contacts" else CALLBACK_ATTEMPTS
        empty = pl.LazyFrame(schema={**schema, "record_id": pl.String(), _SRC: pl.String()})
        return empty, pl.LazyFrame(schema=QUARANTINE), pl.LazyFrame(schema=RAW_SCHEMA), []
    return pl.concat(rows, how="vertical_relaxed"), pl.concat(quarantine), pl.concat(raw), later


def _validate(
    job: _Job, index: pl.DataFrame, todo: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Map and validate the records ``todo`` (``None``: all): ``(rows, quarantine,
    identities)``; a quarantine row's ``source`` is its connector's, as in a full rebuild."""
    rows, quarantine, raw, later = _map(job, index, todo)
    rows = rows.cache()
    rebuilt = Rebuilt(rows.drop(_SRC), quarantine, raw)
    clean, bad = validated(rebuilt, job.table, max_duration_ms=job.bound)
    ref = pl.col("record_id").cast(pl.String).alias(_REF)
    idents = pl.concat([rows.select(_SRC, ref, i.alias(_IDENT)) for i in identities(job.table)])
    clean_rows, bad_rows, ident_rows = pl.collect_all([clean, bad, idents])
    if later and bad_rows.height:  # the payloads left out, of the records quarantined
        keys = bad_rows.lazy().select("source", "record_id").unique()
        found = pl.concat(later).join(keys, on=["source", "record_id"], how="semi").collect()
        bad_rows = bad_rows.join(found, on=["source", "record_id"], how="left", suffix="_p")
        bad_rows = bad_rows.with_columns(pl.coalesce("raw_p", "raw").alias("raw")).drop("raw_p")
    return clean_rows, bad_rows, ident_rows


def refresh(
    settings: AppSettings,
    names: Sequence[str],
    table: str,
    *,
    whole: bool = False,
    write: bool = True,
) -> Refreshed | None:
    """The validated rows and quarantine of ``table`` from the named sources (``None`` when
    none of them feeds it), from the snapshot and what landed since (see the module docstring).

    Args:
        settings: the effective configuration (``store.landing``, ``store.state``, ``build``).
        names: the enabled sources.
        table: ``contacts`` or ``callback_attempts``.
        whole: redo every record (``--full-refresh``, a damaged store).
        write: keep the result as the new snapshot (``False``: ``--dry-run``).

    Raises:
        StoreError: a landed file cannot be read (one line naming the store and the way back).
    """
    feeds = [
        connector(n).configured(settings.source(n)) for n in names if connector(n).table == table
    ]
    if not feeds:
        return None
    return refresh_sources(
        feeds,
        table,
        landing=settings.store.landing,
        state=settings.store.state,
        settings=settings.build.model_dump(mode="json"),
        max_duration_ms=settings.build.max_duration_ms,
        whole=whole,
        write=write,
    )


def refresh_sources(
    feeds: Sequence[Source],
    table: str,
    *,
    landing: Path,
    state: Path,
    settings: object = None,
    max_duration_ms: int = MAX_DURATION_MS,
    whole: bool = False,
    write: bool = True,
) -> Refreshed:
    """:func:`refresh` for configured sources: ``landing`` and ``state`` are the stores'
    roots; ``settings`` (JSON-able) is what else the rows depend on (a snapshot made under
    other settings is redone whole); ``max_duration_ms`` is the validation's plausibility bound.

    Raises:
        StoreError: a landed file cannot be read.
    """
    try:
        job = _Job(landing, feeds, table, max_duration_ms)
        return _refresh(job, state, [settings, max_duration_ms], whole=whole, write=write)
    except (pl.exceptions.PolarsError, OSError) as exc:
        what, name = ", ".join(f.name for f in feeds), getattr(exc, "filename", None)
        if name is not None and not Path(name).is_relative_to(landing):  # a full disk, say
            raise StoreError(f"store.state {state}: {printable(exc)}") from None
        streams = [(f.name, s.name) for f in feeds for s in f.streams]
        line = unreadable_landing(landing, streams, f"{table} ({what})", printable(exc))
        raise StoreError(line) from None


def _refresh(job: _Job, state: Path, settings: object, *, whole: bool, write: bool) -> Refreshed:
    root, feeds, table = job.root, job.feeds, job.table
    folder, key = snapshot_dir(state, table), _key(feeds, table, settings)
    files = landed_files(root, feeds)
    bad = () if whole else tuple(f"{b}; redone from the landing store" for b in damaged(folder))
    snap = None if whole or bad else load(folder, key, files)
    mode = "whole"
    if snap is not None and snap.files == files:
        mode = "unchanged"
    elif snap is not None:
        snap = _update(job, snap, files)
        mode = "incremental"
    if snap is None:  # no usable snapshot, or too much changed: redo every record
        snap, mode = _whole(job, files), "whole"
    if write and mode != "unchanged":
        save(folder, key, snap, table)
    index = scan_part(snap, "index") if mode == "unchanged" else snap.index.lazy()
    rejected = rejected_rows(root, feeds, index)
    quarantine = pl.concat([snap.quarantine, rejected])
    quarantine = quarantine.sort(list(QUARANTINE), nulls_last=True, maintain_order=True)
    digests = snap.digests(table)
    if write or mode == "unchanged":  # committed: the run reads back the months it needs
        snap = snap.released()
    return Refreshed(snap, table, quarantine, mode, snap.redone, snap.records, digests, bad)


def _whole(job: _Job, files: dict[str, int]) -> Snapshot:
    """Every landed record redone, the files taken in groups (in name order) of at most
    :data:`GROUP_RECORDS` records, or of ``2 / MAX_GROUPS`` of them when more (a larger file
    alone; two groups in a row hold more: at most ``MAX_GROUPS + 1`` groups): the first group
    as a whole, each next one as an update closed over identities, as a night's landing is
    (:func:`_update`), so that the mapping's intermediates are one group's, not every record's.
    The result is the same whatever the grouping (``tests/engine/test_snapshot.py``)."""
    index = file_index(job.root, sorted(files))
    counts = dict(index.group_by("file").len().iter_rows())
    size = max(GROUP_RECORDS, -(-2 * index.height // MAX_GROUPS))
    groups: list[dict[str, int]] = [{}]
    taken = 0  # index rows of the last group
    for name in sorted(files):  # a loop over files, not records
        if groups[-1] and taken + counts.get(name, 0) > size:  # it would pass ``size``
            groups.append({})
            taken = 0
        groups[-1][name] = files[name]
        taken += counts.get(name, 0)
    mine = index.filter(pl.col("file").is_in(list(groups[0])))
    del index  # each update reads its group's record ids (the snapshot's index grows by them)
    rows, bad, idents = _validate(job, mine, None)
    records = mine.select(_SRC, "stream", "record_id").unique().height
    shards, _ = sharded(job.table, rows)
    homes = homes_of(job.table, rows, identities(job.table))
    idents = parted(idents, homes)
    snap = Snapshot(groups[0], mine, idents, shards, bad, homes, records, redone=records)
    for group in groups[1:]:
        grown = _update(job, snap, {**snap.files, **group}, grouped=True)
        assert grown is not None  # grouped: never given up for a whole redo
        snap = grown
    in_order(snap.shards, ROW_ORDER[job.table])  # once, not after each group: a copy fewer
    return replace(snap, redone=snap.records, dirty=None)  # dirty None: save every piece


def _update(
    job: _Job, snap: Snapshot, files: dict[str, int], *, grouped: bool = False
) -> Snapshot | None:
    """``snap`` brought to the landed ``files``: the records their changes touch redone
    (``None``: so many that redoing everything is cheaper; never when ``grouped``, a step of
    :func:`_whole`)."""
    added = sorted(k for k in files if snap.files.get(k) != files[k])
    gone = sorted(k for k in snap.files if files.get(k) != snap.files[k])
    fresh, gone_rows = file_index(job.root, added), snap.index["file"].is_in(gone)
    lost, kept = snap.index.filter(gone_rows), without(snap.index, gone_rows)
    index = pl.concat([kept, fresh])
    landed = snap.records + absent(fresh, kept) - absent(lost, kept)  # distinct records
    records = closure(snap, records_of(pl.concat([lost, fresh]), job.feeds), None)
    while grouped or records.height <= _WHOLE * max(landed, records.height):
        todo = records_of(index, job.feeds, named=records)
        rows, bad, idents = _validate(job, index, todo)
        grown = closure(snap, records, idents)
        if grown.height > records.height:  # the new rows share identities with more records
            records = grown
            continue
        redone_rows = held(snap.idents, records)
        old = snap.idents.filter(redone_rows)[_IDENT]
        redone_idents = pl.concat([old, idents[_IDENT]]).unique().implode()
        named = records.rename({_SRC: "source", _REF: "record_id"})
        shards, saved = spliced(job.table, snap, redone_idents, rows)
        if not grouped:  # a whole redo sorts once, at its end
            in_order(shards, ROW_ORDER[job.table], set(shards) - set(saved))
        moved = snap.homes.select(pl.col(_IDENT).is_in(redone_idents)).to_series()
        homes = homes_of(job.table, rows, identities(job.table))
        idents = parted(idents, homes)
        changed = pl.DataFrame({"file": [*added, *gone]}, schema={"file": pl.String()})
        dirty = {  # the pieces of each bookkeeping part that changed
            "index": pieces_of(changed.select(FILE_PIECE)),
            "idents": pieces_of(snap.idents.filter(redone_rows)) | pieces_of(idents),
            "homes": pieces_of(snap.homes.filter(moved), "__shard") | pieces_of(homes, "__shard"),
        }
        return Snapshot(
            files,
            index,
            pl.concat([without(snap.idents, redone_rows), idents]),
            shards,
            pl.concat([snap.quarantine.join(named, on=["source", "record_id"], how="anti"), bad]),
            pl.concat([without(snap.homes, moved), homes]),
            landed,
            redone=records.height,
            saved=saved,
            folder=snap.folder,
            pieces=snap.pieces,
            dirty=dirty,
            sums=snap.sums,
        )
    return None
