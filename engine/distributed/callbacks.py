"""The callback tables and the metrics document built on a Ray cluster, by the same builders.

A request counts in the interval of its instant (its first attempt's ``created_at``), and its
attempts may come hours later, across UTC midnight: a request's day is the UTC day of the start
of *its* interval, and every attempt of the request goes with it (the callback store is
partitioned the same way, by request). :func:`callback_tables` stamps each attempt with its
request's day on the driver (:func:`engine.output.store.request_instant`, rows in chain order)
and Ray Data hands each day's attempts to one task (:func:`engine.distributed.cluster.map_days`),
which runs the single-machine code over that day's intervals of each grid:

- the requests (:func:`engine.output.store.requests_of`), then the busy rows of
  :func:`engine.tables.callback_intervals.build` and :func:`engine.tables.retry_outcomes.build`
  (each call target named by the builders' rule over the day: the name on its latest request);
- the document's parts (:func:`engine.tables.callback_metrics.document_parts`): additive
  aggregates and each customer key's requests.

The driver then does what needs the whole window, as the single-machine code does for the
run's exports: the zero-fill of each grid (:func:`engine.tables.dense.fill`: the groups seen in
the window; every target with a request, times every retry bucket), which names each call
target on every row by its latest busy row, that is by the day of its latest request, whose
task named it by that request: the builders' name over the whole window; and the document from
the merged parts
(:func:`engine.tables.callback_metrics.merge_parts`, then
:func:`~engine.tables.callback_metrics.render`): unique and repeat customers counted once, over
the keys of the whole window. With ``dense=False`` (a build that writes the store only) the
driver zero-fills nothing: it names each call target on its busy rows by the same rule and puts
them in the builders' order. Every value equals the single-machine one
(tests/engine/test_distributed.py).

When the attempts are committed to the store already (``store/callback_attempts``, partitioned
by the UTC date of each request: the nightly run commits them before it builds), the driver
passes the table's path instead of the rows: it lists the files of the partitions the grids and
the document can draw from (from the Delta log), and each partition's Ray task reads its own
files with Polars, proves them in chain order (or sorts them into it) and stamps each attempt
with its request's day (:func:`engine.distributed.cluster.map_partitions`); a request and all its
attempts lie in one partition (the store's rule), so nothing of a chain is missing. No attempt
passes through this process then (its caller may hold them: it wrote them). With an address,
the cluster job (``_on_cluster``: from joining to the tasks' frames) runs in a helper process
(:mod:`engine.distributed.helper`), the merge here.

The ``callbacks`` command's job (:func:`command_tables`) reads every partition, and each read
task also counts its requests and finds its chains' gaps (a chain lies in one partition); for
the store alone its day tasks' busy rows stay on the cluster and Ray tasks write them as the
store tables' data files, named by each call target's latest name over the window, which the
driver reduces from each day's (:func:`engine.distributed.cluster.write_days`); the driver
commits the files.

Example:
    ``pairs, doc = callback_tables(attempts, [grid], document=grid.window, settings=settings)``
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from engine.distributed.cluster import (
    DAY,
    by_interval_day,
    connect,
    map_days,
    map_partitions,
    pack,
    read_files,
    store_partitions,
    unpack,
    write_days,
)
from engine.distributed.helper import away, call
from engine.interval import Grid, Window
from engine.output import datafiles, delta, location
from engine.output.delta import PARTITION
from engine.output.store import request_instant, requests_of
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, dense, retry_outcomes
from engine.tables.callback_requests import chain_order_breaks, in_chain_order, requests
from engine.validate.callback_attempts import callback_gaps

__all__ = ["CommandTables", "callback_tables", "command_tables"]

_TABLES = {"callback_intervals": callback_intervals, "retry_outcomes": retry_outcomes}
Found = dict[tuple[str, int], list[pl.DataFrame]]
_AT, _TARGET, _LABEL = "interval_start_utc", "call_target_id", "call_target_name"


def _day_parts(
    attempts: pl.DataFrame,
    *,
    grids: Sequence[pl.DataFrame],
    document: Window,
    settings_json: dict[str, Any],
) -> pl.DataFrame:
    """One UTC day's parts (a Ray task): per grid with intervals that day, both tables' busy
    rows; the document's two parts."""
    settings = BuildSettings.model_validate(settings_json)
    day = attempts[DAY][0]
    reqs = requests_of(attempts.drop(DAY)).collect().lazy()  # once, for every reader
    plans: dict[tuple[str, int], pl.LazyFrame] = {}
    for i, grid in enumerate(grids):
        part = grid.filter(pl.col("interval_start_utc").dt.date() == day)
        if part.height == 0:
            continue
        window = (part["interval_start_utc"][0], part["interval_end_utc"][-1])
        for name, module in _TABLES.items():
            table = module.build(reqs, window=window, settings=settings)
            plans[name, i] = table.filter(dense.busy(name))
        rows = plans["callback_intervals", i]  # each target's name on its latest busy row, and
        # the table's groups (small: what the driver needs of the busy rows to have them written)
        latest = rows.select(_AT, _TARGET, _LABEL).sort(_AT).group_by(_TARGET).agg(pl.all().last())
        plans["targets", i] = latest
        plans["groups", i] = rows.unique(callback_intervals.GROUP)
    additive, per_key = callback_metrics.document_parts(reqs, begin=document[0], end=document[1])
    plans["additive", -1], plans["customers", -1] = additive, per_key
    return pack(dict(zip(plans, pl.collect_all(list(plans.values())), strict=True)))


def _in_chain_order(attempts: pl.DataFrame) -> pl.DataFrame:
    """``attempts`` as they are when every chain is provably one run in chain order, else
    sorted into it (:func:`engine.tables.callback_requests.chain_order_breaks`)."""
    if chain_order_breaks(attempts.lazy()).collect().item() == 0:
        return attempts
    return in_chain_order(attempts.lazy()).collect()


def _read_partition(
    files: list[str], *, cover: pl.DataFrame, side: bool = False
) -> pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame]:
    """One partition of ``store/callback_attempts`` (a Ray task reads its files): its attempts
    in chain order, each stamped with the UTC day of its request's interval in ``cover`` (the
    requests of no interval left out, with all their attempts); ``side``: and its requests'
    count and its chains' gaps (packed: a chain lies in one partition, the store's rule), the
    single-machine functions over all its attempts."""
    attempts = _in_chain_order(read_files(files, CALLBACK_ATTEMPTS).collect())
    stamped = by_interval_day(attempts, request_instant(), cover)
    if not side:
        return stamped
    count, gaps = pl.collect_all(
        [requests_of(attempts).select(pl.len()), callback_gaps(attempts.lazy())]
    )
    return stamped, pack({("requests", -1): count, ("gaps", -1): gaps})


def _partitions(store: Path, cover: pl.DataFrame, *, every: bool = False) -> list[list[str]]:
    """The files of the partitions (request dates) that can hold a request of ``cover``'s
    intervals: the UTC dates each interval touches (``every``: all the table's)."""
    if every:
        return store_partitions(store, pl.lit(value=True))
    first = cover.select(pl.col("interval_start_utc").dt.date())
    last = cover.select((pl.col("interval_end_utc") - timedelta(microseconds=1)).dt.date())
    dates = pl.concat([first.to_series(), last.to_series()]).unique()
    return store_partitions(store, pl.col(PARTITION).is_in(dates.implode()))


def _target_names(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Each call target's name on its latest row of ``rows`` (``callback_intervals``' busy
    rows, or each day's latest of them: its latest request's day, whose task named it by that
    request: the builders' name over the window)."""
    return rows.select(_AT, _TARGET, _LABEL).sort(_AT).group_by(_TARGET).agg(pl.col(_LABEL).last())


def _with_names(busy: dict[str, pl.LazyFrame], names: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """Both tables' busy rows of one grid, each call target named by ``names``, in the
    builders' order (group, nulls first, interval)."""
    named = {}
    for name, module in _TABLES.items():
        joined = busy[name].drop(_LABEL).join(names, on=_TARGET, how="left", nulls_equal=True)
        order = [*dense.SHAPES[name].group, "interval_start_utc"]
        named[name] = joined.select(list(module.SCHEMA)).sort(order, nulls_last=False)
    return named


def _named(busy: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """Both tables' busy rows of one grid, each call target named by its latest busy row of
    ``callback_intervals`` (:func:`_target_names`), in the builders' order."""
    return _with_names(busy, _target_names(busy["callback_intervals"]))


def _busy(found: Found, i: int) -> dict[str, pl.LazyFrame]:
    """Grid ``i``'s busy rows of both tables, from the days' frames (lazy)."""
    busy = {}
    for name, module in _TABLES.items():
        parts = found.get((name, i), [])
        rows = pl.concat(parts) if parts else pl.DataFrame(schema=module.SCHEMA)
        busy[name] = rows.cast(module.SCHEMA).lazy()
    return busy


def _finish(found: Found, *, names: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """A day's busy rows as the store's rows of both tables (in a writing task)."""
    if not any(found.get((name, 0)) for name in _TABLES):
        return {}
    named = _with_names(_busy(found, 0), names.lazy())
    return dict(zip(named, pl.collect_all(list(named.values())), strict=True))


def _finisher(found: Found) -> Any:
    """What the writing tasks do, once each call target's name is known (the days' latest)."""
    latest = found.get(("targets", 0), [])
    shape = {c: callback_intervals.SCHEMA[c] for c in (_AT, _TARGET, _LABEL)}
    rows = pl.concat([r.cast(shape) for r in latest]) if latest else pl.DataFrame(schema=shape)  # type: ignore[arg-type]
    return partial(_finish, names=_target_names(rows.lazy()).collect())


def _merged(
    found: dict[tuple[str, int], list[pl.DataFrame]], i: int, grid: Grid, *, filled: bool
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Grid ``i``'s two tables from the days' busy rows (lazy): zero-filled over the grid, or
    (not ``filled``) the busy rows only."""
    busy = _busy(found, i)
    if not filled:
        named = _named(busy)
        return named["callback_intervals"], named["retry_outcomes"]
    table = dense.fill(busy["callback_intervals"], "callback_intervals", grid.frame)
    seen = busy["callback_intervals"]  # every request of the grid is on a busy row of it
    retries = dense.fill(busy["retry_outcomes"], "retry_outcomes", grid.frame, seen=seen)
    return table, retries


def _on_cluster(
    attempts: pl.DataFrame | Path,
    grids: Sequence[Grid],
    *,
    document: Window,
    settings: BuildSettings,
    address: str | None,
    every: bool = False,
    write: tuple[dict[str, str], str] | None = None,
) -> Any:
    """What the day tasks return, by key: the job on the cluster (with an address, from the
    helper process: :mod:`engine.distributed.helper`). With ``attempts`` a store path:
    ``every``, every partition is read, each giving its requests' count and its gaps too
    (``("requests", -1)``, ``("gaps", -1)``); ``write`` (each table's location, the writer's
    tag): the tasks write grid 0's tables there, and what returns is
    :func:`engine.distributed.cluster.write_days`' pair."""
    if away(address):  # a cluster apart from this process: its driver in a helper process,
        # which has a working folder of its own
        attempts = attempts.resolve() if isinstance(attempts, Path) else attempts
        return call(
            address, _on_cluster, attempts, grids, document=document, settings=settings,
            address=address, every=every, write=write,
        )  # fmt: skip
    connect(address)
    cover = pl.concat([*(g.frame for g in grids), settings.grid(document, checked=False).frame])
    task = partial(
        _day_parts,
        grids=[g.frame for g in grids],
        document=document,
        settings_json=settings.model_dump(mode="json"),
    )
    if isinstance(attempts, Path):
        read = partial(_read_partition, cover=cover, side=every)
        schema = pl.Schema({**CALLBACK_ATTEMPTS, DAY: pl.Date()})
        spans = cover["interval_start_utc"].dt.date().n_unique()
        parts = _partitions(attempts, cover, every=every)
        packed = map_partitions(parts, read, schema, task, days=spans, held=write is None)
        if write is not None:
            where, tag = write
            return write_days(packed, busy=tuple(_TABLES), finish=_finisher, where=where, tag=tag)
    else:
        days = by_interval_day(_in_chain_order(attempts), request_instant(), cover)
        packed = map_days(days, task)
    return unpack(packed)


def callback_tables(
    attempts: pl.DataFrame | Path,
    grids: Sequence[Grid],
    *,
    document: Window,
    settings: BuildSettings,
    address: str | None = None,
    dense: bool = True,
) -> tuple[list[tuple[pl.DataFrame, pl.DataFrame]], dict[str, Any]]:
    """``callback_intervals`` and ``retry_outcomes`` of each of ``grids`` (one length and zone)
    and the metrics document of ``document``, built by Ray tasks over the UTC days of the
    requests; equal to the single-machine ones
    (:func:`engine.pipeline.callbacks.callback_results`).

    Args:
        attempts: validated attempts (in chain order, as the store keeps them; otherwise they
            are sorted into it first), or the path of the store table that holds them
            (``store/callback_attempts``, committed: its partitions are read by the Ray tasks,
            not by this process).
        grids: the windows of the tables (:meth:`BuildSettings.grid`).
        document: ``[begin, end)`` of the metrics document (aware instants).
        settings: interval length and zone.
        address: the Ray cluster (see :func:`engine.distributed.cluster.connect`).
        dense: the tables zero-filled over each grid; ``False``: their busy rows only (what
            the store keeps; :func:`engine.pipeline.callbacks.callback_tables`' ``dense``).

    Returns:
        One (``callback_intervals``, ``retry_outcomes``) pair per grid, and the document.

    Raises:
        ClusterError: Ray is not installed, or the cluster at ``address`` cannot be joined.
        StoreError: ``attempts`` is a path with no readable store table.
        ValueError: an empty or reversed document window, or a naive instant.
    """
    _document_checked(document)
    found: Found = _on_cluster(
        attempts, grids, document=document, settings=settings, address=address
    )
    plans = [p for i, g in enumerate(grids) for p in _merged(found, i, g, filled=dense)]
    frames = pl.collect_all(plans)
    pairs = list(zip(frames[::2], frames[1::2], strict=True))
    return pairs, _document(found, document)


def _document_checked(document: Window) -> None:
    """The document's errors (an empty or reversed window, a naive instant), before any job."""
    empty = requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS))
    callback_metrics.document_parts(empty, begin=document[0], end=document[1])


def _document(found: Found, document: Window) -> dict[str, Any]:
    """The metrics document of ``document`` from the days' parts: sums and maxima merged, the
    customers counted over the whole window's keys."""
    additive = found.get(("additive", -1), [])
    if not additive:  # no request in any window: the document of none
        empty = requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS))
        return callback_metrics.document(empty, begin=document[0], end=document[1])
    per_key = pl.concat(found[("customers", -1)]).lazy()
    merged = callback_metrics.merge_parts(pl.concat(additive).lazy(), per_key)
    return callback_metrics.render(*merged)


class CommandTables(NamedTuple):
    """What ``callbacks --engine ray`` gets from the cluster (:func:`command_tables`)."""

    table: pl.DataFrame  #: ``callback_intervals`` zero-filled, or (written) its groups
    retries: pl.DataFrame  #: ``retry_outcomes`` zero-filled, or (written) none
    document: dict[str, Any]
    stored: list[Path]  #: the store tables the tasks wrote (committed), or none
    requests: int  #: every request of the store table read
    gaps: pl.DataFrame  #: every chain's gaps, by source and original id


def command_tables(
    attempts: Path, grid: Grid, *, settings: BuildSettings, address: str | None,
    store: Path | None = None,
) -> CommandTables:  # fmt: skip
    """Both callback tables of ``grid``, the document of its window, and the request count and
    gaps of every attempt of the committed store table ``attempts`` (the callbacks command's:
    it holds exactly the command's attempts), each partition's counted and its gaps found by
    the task that reads it (this process adds up the counts and puts the gaps together).

    ``store`` (the store's folder): the tasks write both tables' busy rows as data files of
    ``store/callback_intervals`` and ``store/retry_outcomes`` (or their object-store URLs)
    and this process commits each table's files in one transaction, replacing the table, as
    a local build with Parquet alone does; the rows never reach this process (what returns
    in ``table`` is the tables' groups, for the report). A job that fails before a table's
    commit leaves that table as it was (its files, in a local folder, removed). Without
    ``store``: the tables zero-filled, built as :func:`callback_tables` builds them.

    Raises:
        ClusterError: Ray is not installed, or the cluster at ``address`` cannot be joined.
        StoreError: no readable store table at ``attempts``; a file or a commit failed.
    """
    document, tag = grid.window, uuid.uuid4().hex[:12]
    _document_checked(document)
    paths = {name: store / name for name in _TABLES} if store is not None else {}
    where = {name: location.uri(path) for name, path in paths.items()}
    left = dict(paths)  # the tables not committed yet
    try:
        got = _on_cluster(
            attempts, [grid], document=document, settings=settings, address=address, every=True,
            write=(where, tag) if store is not None else None,
        )  # fmt: skip
        found: Found = got[0] if store is not None else got
        files: dict[str, list[dict[str, Any]]] = got[1] if store is not None else {}
        for name, path in paths.items():
            actions = datafiles.actions_of(files[name])
            schema = pl.Schema(_TABLES[name].SCHEMA)
            delta.commit_files(path, actions, schema=schema, tag=tag, placed=True)
            left.pop(name)
    except BaseException:
        for path in left.values():
            datafiles.discard(path, tag)  # files no version names: the table is as it was
        raise
    if store is None:
        table, retries = pl.collect_all(list(_merged(found, 0, grid, filled=True)))
    else:
        groups = found.get(("groups", 0), [])
        shape = callback_intervals.SCHEMA
        table = pl.concat([g.cast(shape) for g in groups]) if groups else pl.DataFrame(schema=shape)  # type: ignore[arg-type]
        table = table.unique(callback_intervals.GROUP, keep="first")
        retries = pl.DataFrame(schema=retry_outcomes.SCHEMA)
    counts = found.get(("requests", -1), [])
    gaps = found.get(("gaps", -1), [])
    none = callback_gaps(pl.LazyFrame(schema=CALLBACK_ATTEMPTS)).collect()
    gaps_found = pl.concat(gaps) if gaps else none
    return CommandTables(
        table, retries, _document(found, document), list(paths.values()),
        sum(int(c.item()) for c in counts), gaps_found.sort("source", "original_id"),
    )  # fmt: skip
