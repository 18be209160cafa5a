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

Example:
    ``pairs, doc = callback_tables(attempts, [grid], document=grid.window, settings=settings)``
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

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
)
from engine.distributed.helper import away, call
from engine.interval import Grid, Window
from engine.output.delta import PARTITION
from engine.output.store import request_instant, requests_of
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, dense, retry_outcomes
from engine.tables.callback_requests import chain_order_breaks, in_chain_order, requests

__all__ = ["callback_tables"]

_TABLES = {"callback_intervals": callback_intervals, "retry_outcomes": retry_outcomes}


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
    additive, per_key = callback_metrics.document_parts(reqs, begin=document[0], end=document[1])
    plans["additive", -1], plans["customers", -1] = additive, per_key
    return pack(dict(zip(plans, pl.collect_all(list(plans.values())), strict=True)))


def _in_chain_order(attempts: pl.DataFrame) -> pl.DataFrame:
    """``attempts`` as they are when every chain is provably one run in chain order, else
    sorted into it (:func:`engine.tables.callback_requests.chain_order_breaks`)."""
    if chain_order_breaks(attempts.lazy()).collect().item() == 0:
        return attempts
    return in_chain_order(attempts.lazy()).collect()


def _read_partition(files: list[str], *, cover: pl.DataFrame) -> pl.DataFrame:
    """One partition of ``store/callback_attempts`` (a Ray task reads its files): its attempts
    in chain order, each stamped with the UTC day of its request's interval in ``cover`` (the
    requests of no interval left out, with all their attempts)."""
    attempts = _in_chain_order(read_files(files, CALLBACK_ATTEMPTS).collect())
    return by_interval_day(attempts, request_instant(), cover)


def _partitions(store: Path, cover: pl.DataFrame) -> list[list[str]]:
    """The files of the partitions (request dates) that can hold a request of ``cover``'s
    intervals: the UTC dates each interval touches."""
    first = cover.select(pl.col("interval_start_utc").dt.date())
    last = cover.select((pl.col("interval_end_utc") - timedelta(microseconds=1)).dt.date())
    dates = pl.concat([first.to_series(), last.to_series()]).unique()
    return store_partitions(store, pl.col(PARTITION).is_in(dates.implode()))


def _named(busy: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """Both tables' busy rows of one grid, each call target named by its latest busy row of
    ``callback_intervals`` (its latest request's day, whose task named it by that request: the
    builders' name over the window), in the builders' order (group, nulls first, interval)."""
    at, target, label = pl.col("interval_start_utc"), "call_target_id", "call_target_name"
    rows = busy["callback_intervals"]
    names = rows.select(at, target, label).sort(at).group_by(target).agg(pl.col(label).last())
    named = {}
    for name, module in _TABLES.items():
        joined = busy[name].drop(label).join(names, on=target, how="left", nulls_equal=True)
        order = [*dense.SHAPES[name].group, "interval_start_utc"]
        named[name] = joined.select(list(module.SCHEMA)).sort(order, nulls_last=False)
    return named


def _merged(
    found: dict[tuple[str, int], list[pl.DataFrame]], i: int, grid: Grid, *, filled: bool
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Grid ``i``'s two tables from the days' busy rows (lazy): zero-filled over the grid, or
    (not ``filled``) the busy rows only."""
    busy = {}
    for name, module in _TABLES.items():
        parts = found.get((name, i), [])
        rows = pl.concat(parts) if parts else pl.DataFrame(schema=module.SCHEMA)
        busy[name] = rows.cast(module.SCHEMA).lazy()
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
) -> dict[tuple[str, int], list[pl.DataFrame]]:
    """What the day tasks return, by key: the job on the cluster (with an address, from the
    helper process: :mod:`engine.distributed.helper`)."""
    if away(address):  # a cluster apart from this process: its driver in a helper process,
        # which has a working folder of its own
        attempts = attempts.resolve() if isinstance(attempts, Path) else attempts
        return call(
            address, _on_cluster, attempts, grids, document=document, settings=settings,
            address=address,
        )  # fmt: skip
    connect(address)
    cover = pl.concat([*(g.frame for g in grids), settings.grid(document).frame])
    task = partial(
        _day_parts,
        grids=[g.frame for g in grids],
        document=document,
        settings_json=settings.model_dump(mode="json"),
    )
    if isinstance(attempts, Path):
        read = partial(_read_partition, cover=cover)
        schema = pl.Schema({**CALLBACK_ATTEMPTS, DAY: pl.Date()})
        spans = cover["interval_start_utc"].dt.date().n_unique()
        packed = map_partitions(_partitions(attempts, cover), read, schema, task, days=spans)
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
    empty = requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS))
    callback_metrics.document_parts(empty, begin=document[0], end=document[1])  # its errors now
    found = _on_cluster(attempts, grids, document=document, settings=settings, address=address)
    plans = [p for i, g in enumerate(grids) for p in _merged(found, i, g, filled=dense)]
    frames = pl.collect_all(plans)
    pairs = list(zip(frames[::2], frames[1::2], strict=True))
    additive = found.get(("additive", -1), [])
    if not additive:  # no request in any window: the document of none
        return pairs, callback_metrics.document(empty, begin=document[0], end=document[1])
    per_key = pl.concat(found[("customers", -1)]).lazy()
    merged = callback_metrics.merge_parts(pl.concat(additive).lazy(), per_key)
    return pairs, callback_metrics.render(*merged)
