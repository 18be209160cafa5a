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
the keys of the whole window. Every value equals
the single-machine one (tests/engine/test_distributed.py).

Example:
    ``pairs, doc = callback_tables(attempts, [grid], document=grid.window, settings=settings)``
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import polars as pl

from engine.distributed.cluster import DAY, by_interval_day, connect, map_days, pack, unpack
from engine.interval import Grid, Window
from engine.output.store import request_instant, requests_of
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


def _merged(
    found: dict[tuple[str, int], list[pl.DataFrame]], i: int, grid: Grid
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Grid ``i``'s two tables, zero-filled over the grid, from the days' busy rows (lazy)."""
    busy = {}
    for name, module in _TABLES.items():
        parts = found.get((name, i), [])
        rows = pl.concat(parts) if parts else pl.DataFrame(schema=module.SCHEMA)
        busy[name] = rows.cast(module.SCHEMA).lazy()
    table = dense.fill(busy["callback_intervals"], "callback_intervals", grid.frame)
    seen = busy["callback_intervals"]  # every request of the grid is on a busy row of it
    retries = dense.fill(busy["retry_outcomes"], "retry_outcomes", grid.frame, seen=seen)
    return table, retries


def callback_tables(
    attempts: pl.DataFrame,
    grids: Sequence[Grid],
    *,
    document: Window,
    settings: BuildSettings,
    address: str | None = None,
) -> tuple[list[tuple[pl.DataFrame, pl.DataFrame]], dict[str, Any]]:
    """``callback_intervals`` and ``retry_outcomes`` of each of ``grids`` (one length and zone)
    and the metrics document of ``document``, built by Ray tasks over the UTC days of the
    requests; equal to the single-machine ones
    (:func:`engine.pipeline.callbacks.callback_results`).

    Args:
        attempts: validated attempts (in chain order, as the store keeps them; otherwise they
            are sorted into it first).
        grids: the windows of the tables (:meth:`BuildSettings.grid`).
        document: ``[begin, end)`` of the metrics document (aware instants).
        settings: interval length and zone.
        address: the Ray cluster (see :func:`engine.distributed.cluster.connect`).

    Returns:
        One (``callback_intervals``, ``retry_outcomes``) pair per grid, and the document.

    Raises:
        ClusterError: Ray is not installed, or the cluster at ``address`` cannot be joined.
        ValueError: an empty or reversed document window, or a naive instant.
    """
    empty = requests(attempts.head(0).lazy())
    callback_metrics.document_parts(empty, begin=document[0], end=document[1])  # its errors now
    connect(address)
    cover = [*(g.frame for g in grids), settings.grid(document).frame]
    ordered = _in_chain_order(attempts)
    days = by_interval_day(ordered, request_instant(), pl.concat(cover))
    task = partial(
        _day_parts,
        grids=[g.frame for g in grids],
        document=document,
        settings_json=settings.model_dump(mode="json"),
    )
    found = unpack(map_days(days, task))
    plans = [p for i, grid in enumerate(grids) for p in _merged(found, i, grid)]
    frames = pl.collect_all(plans)
    pairs = list(zip(frames[::2], frames[1::2], strict=True))
    additive = found.get(("additive", -1), [])
    if not additive:  # no request in any window: the document of none
        return pairs, callback_metrics.document(empty, begin=document[0], end=document[1])
    per_key = pl.concat(found[("customers", -1)]).lazy()
    merged = callback_metrics.merge_parts(pl.concat(additive).lazy(), per_key)
    return pairs, callback_metrics.render(*merged)
