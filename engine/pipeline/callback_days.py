"""The days of a streamed callback build (:func:`engine.output.attempts.sink_attempts`), and the
callback tables merged from their parts one UTC date of intervals at a time.

Each day's requests give their parts (:mod:`engine.tables.callback_parts`): both tables'
aggregates, each call target's latest request, the document's additive row and its customer
keys. So that what is held does not grow with the window as the days go by, the large parts
leave memory as soon as they are made, to a scratch folder in Arrow IPC: the tables' aggregates
by the UTC date of their interval (:func:`day`), the customer keys by key set
(:func:`engine.tables.callback_parts.key_set`). Once every day is read, each date's aggregates
are merged alone (:func:`slices`): the rows of an interval are in its date's files only, so a
date's merged rows are exactly the rows of that date of the tables merged whole, in the same
order (group, then interval). A build that stores Parquet only writes each date's rows to the
store as they are made (:func:`write_store`), never holding either table whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import naming
from engine.interval import Grid
from engine.output import datafiles, delta
from engine.output.attempts import abandon, compact
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_parts
from engine.tables.callback_requests import chain_start
from engine.tables.dense import busy
from engine.validate.callback_attempts import callback_gaps

__all__ = ["TABLES", "Day", "customer_keys", "day", "holding", "names_and_document", "slices"]

#: The callback tables, in the order of their parts (:func:`callback_parts.part_plans`).
TABLES = ("callback_intervals", "retry_outcomes")


def holding(lo: object, hi: object, settings: BuildSettings) -> Grid:
    """The smallest whole-interval grid holding the instants ``lo`` to ``hi`` (none: an error)."""
    if not isinstance(lo, datetime) or not isinstance(hi, datetime):
        msg = "no valid callback attempts to take a window from: give --start and --end"
        raise ValueError(msg)
    return settings.grid((lo, hi + timedelta(microseconds=1)), checked=False)


@dataclass(frozen=True)
class Day:
    """What one day of a streamed build gives (:func:`day`)."""

    requests: int
    span: tuple[datetime, datetime] | None  #: its requests' first and last instant
    gaps: pl.DataFrame
    parts: list[pl.DataFrame]  #: the latest requests and the document's additive row


def day(
    ordered: pl.DataFrame, reqs: pl.LazyFrame, *, grid: Grid | None, settings: BuildSettings,
    scratch: Path | None,
) -> Day:  # fmt: skip
    """One day's requests (held once), gaps and, with ``scratch``, the tables' and document's
    parts over ``grid`` (``None``: the day's own span, within the build's): the tables'
    aggregates and the customer keys written to ``scratch`` (see the module docstring), the
    small parts kept."""
    held = reqs.collect()
    lo, hi = held.select(pl.col("instant").min().alias("lo"), pl.col("instant").max()).row(0)
    span = (lo, hi) if held.height else None
    plans = [callback_gaps(_holed(ordered.lazy()))]
    if scratch is not None and span is not None:
        own = grid or holding(*span, settings)
        plans += callback_parts.part_plans(held.lazy(), grid=own, settings=settings)
    gaps, *parts = pl.collect_all(plans)
    if parts and scratch is not None:
        table, retries, latest, additive, per_key = parts
        _spill_tables(scratch / "tables", (table, retries))
        sets = per_key.with_columns(callback_parts.key_set()).partition_by("key_set")
        for rows in sets:
            (folder := scratch / "keys" / str(rows["key_set"][0])).mkdir(
                parents=True, exist_ok=True
            )
            with naming(spill := folder / f"{uuid.uuid4().hex}.arrow"):
                rows.drop("key_set").write_ipc(spill)
        parts = [compact(latest), additive]
    return Day(held.height, span, compact(gaps), parts)


def _holed(ordered: pl.LazyFrame) -> pl.LazyFrame:
    """The rows of the chains of ``ordered`` (in chain order: each chain one run) whose retry
    numbers have holes by :func:`engine.validate.callback_attempts.callback_gaps`' test, found
    run by run (an integer group-by) rather than by the text keys: the gaps of these rows are
    those of all of ``ordered``."""
    retry, run = pl.col("retry_attempt"), chain_start(pl.int_range(pl.len())).cum_sum()
    holed = (
        ordered.with_columns(run.alias("_run"))
        .group_by("_run")
        .agg(retry.n_unique().alias("_n"), retry.max().cast(pl.Int64).alias("_max"))
        .filter(pl.col("_n") != pl.col("_max") + 1)
    )
    return ordered.with_columns(run.alias("_run")).join(holed, on="_run", how="semi").drop("_run")


def _spill_tables(folder: Path, parts: Sequence[pl.DataFrame]) -> None:
    """Both tables' aggregates of a day, by the UTC date of their interval: one file of each
    table per date (possibly empty)."""
    dates = pl.concat([p.select(datafiles.days_of("interval_start_utc")) for p in parts])
    name = uuid.uuid4().hex
    for date in dates.to_series().unique():
        (sub := folder / date.isoformat()).mkdir(parents=True, exist_ok=True)
        on = pl.col("interval_start_utc").dt.date() == date
        for i, rows in enumerate(parts):
            with naming(spill := sub / f"{i}-{name}.arrow"):
                rows.filter(on).write_ipc(spill)


def customer_keys(folder: Path) -> pl.LazyFrame:
    """Every customer key's requests from the sets written to ``folder`` (:func:`day`), each
    set merged alone."""
    sets = [sorted(s.glob("*.arrow")) for s in sorted(folder.iterdir())] if folder.exists() else []
    merged = [callback_parts.key_set_requests(pl.scan_ipc(f)).collect() for f in sets if f]
    return pl.concat(merged).lazy() if merged else pl.LazyFrame(schema={"requests": pl.UInt32})


def names_and_document(
    days: Sequence[Day], scratch: Path, *, grid: Grid, settings: BuildSettings
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The call targets' names and the metrics document of ``grid`` from every day's parts."""
    empty = callback_parts.empty_parts(grid, settings)
    small = [d.parts for d in days if d.parts]
    latest, additive = empty[2], empty[3]
    if small:
        latest, additive = (pl.concat([f.lazy() for f in p]) for p in zip(*small, strict=True))
    names, document = callback_parts.names_and_document(
        latest, additive, empty[4], keys=customer_keys(scratch / "keys")
    )
    return names.collect(), document


def slices(
    scratch: Path, names: pl.DataFrame, *, grid: Grid, settings: BuildSettings
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Both tables' busy rows, one UTC date of intervals at a time (in date order; none: the
    empty tables), merged from that date's aggregates (:func:`day`)."""
    folder = scratch / "tables"
    dates = sorted(folder.iterdir()) if folder.exists() else []
    if not dates:
        table, retries = callback_parts.empty_parts(grid, settings)[:2]
        dates, parts = [], [(table, retries)]
    else:
        parts = [
            (pl.scan_ipc(sorted(d.glob("0-*.arrow"))), pl.scan_ipc(sorted(d.glob("1-*.arrow"))))
            for d in dates
        ]
    for table, retries in parts:
        plans = callback_parts.merged_tables(
            table, retries, names.lazy(), grid=grid, settings=settings
        )
        merged_table, merged_retries = pl.collect_all(plans)
        yield merged_table, merged_retries


def write_store(
    made: Iterable[tuple[pl.DataFrame, pl.DataFrame]], out_dir: Path
) -> tuple[pl.DataFrame, list[Path]]:
    """Both tables' busy rows, as :func:`slices` makes them, written to their store tables
    (``out_dir/store/<table>``, each partition's rows in their order), committed once all are
    written; the tables' groups (one row per group of ``callback_intervals``, for the report)
    and the tables' directories."""
    paths = [out_dir / "store" / name for name in TABLES]
    tag = uuid.uuid4().hex[:12]
    created = [p for p in (out_dir, out_dir / "store", *paths) if not p.exists()]
    actions: list[list[Any]] = [[], []]
    schemas: list[pl.Schema] = []
    groups: list[pl.DataFrame] = []
    try:
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
        for rows in made:
            schemas = schemas or [r.schema for r in rows]
            for name, path, frame, done in zip(TABLES, paths, rows, actions, strict=True):
                kept = frame.filter(busy(name)).with_columns(
                    datafiles.days_of("interval_start_utc")
                )
                done.extend(datafiles.write_partitions(path, kept, tag))
            groups.append(rows[0].unique(callback_intervals.GROUP, keep="first"))
    except BaseException:
        for path in paths:
            abandon(path, tag, [])
        abandon(out_dir, None, created)
        raise
    for path, done, schema in zip(paths, actions, schemas, strict=True):
        delta.commit_files(path, done, schema=schema, tag=tag)
    seen = pl.concat(groups).unique(callback_intervals.GROUP, keep="first")
    return seen, paths
