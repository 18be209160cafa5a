"""The callback tables and metrics document of a window from its requests in parts: each part a
disjoint set of requests (a day of a build that streams its attempts,
:mod:`engine.output.attempts`), merged once every part is read.

What each part gives (:func:`part_plans`): both tables' aggregates per interval and group
(:func:`engine.tables.callback_intervals.busy_parts`,
:func:`engine.tables.retry_outcomes.busy_parts`), each call target's latest request
(:func:`engine.tables.callback_requests.latest_names`) and the document's parts
(:func:`engine.tables.callback_metrics.document_parts`). All of them add up exactly
(:func:`merged`): the rows of one interval and group combine (sums add, maxima take the max; two
parts share a row only where an interval holds requests of both), the latest of the latest
requests names each target, and the customers are counted once, over the merged keys. So the
merge equals the builders' busy rows and document of the union.

Example:
    >>> from datetime import timedelta
    >>> from engine.demo.callbacks import generate_attempts
    >>> from engine.settings import BuildSettings
    >>> from engine.tables import callback_intervals
    >>> from engine.tables.callback_requests import requests
    >>> s = BuildSettings()
    >>> reqs = requests(generate_attempts(days=2, scale=0.1).lazy()).collect()
    >>> g = s.grid((reqs["instant"].min(), reqs["instant"].max() + timedelta(seconds=1)))
    >>> halves = [reqs.filter(pl.col("instant").dt.day() == d) for d in (1, 2)]
    >>> parts = [pl.collect_all(part_plans(h.lazy(), grid=g, settings=s)) for h in halves]
    >>> table, retries, document = merged(parts, grid=g, settings=s)
    >>> built = callback_intervals.busy_rows(reqs.lazy(), window=g, settings=s)
    >>> table.collect().equals(built.collect())
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import polars as pl

from engine.interval import Grid, in_grid
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, retry_outcomes
from engine.tables.callback_requests import call_target_names, latest_names

__all__ = [
    "KEY_SETS",
    "empty_parts",
    "key_set",
    "key_set_requests",
    "merged",
    "merged_tables",
    "names_and_document",
    "part_plans",
]

#: The customer keys of the parts may be counted in this many disjoint sets (by a hash of the
#: key, :func:`key_set`), each merged alone (:func:`key_set_requests`): exact, since a key is
#: in one set, and only one set's keys are held at a time.
KEY_SETS: Final = 16


def key_set() -> pl.Expr:
    """The set (``0`` … ``KEY_SETS - 1``) of a row's ``customer_key``."""
    return (pl.col("customer_key").hash() % KEY_SETS).alias("key_set")


def key_set_requests(per_key: pl.LazyFrame) -> pl.LazyFrame:
    """Each key's requests (column ``requests``, the key dropped) from the stacked document
    parts' keys of one set: what :func:`engine.tables.callback_metrics.customers` counts."""
    return per_key.group_by("customer_key").agg(pl.col("requests").sum()).select("requests")


def part_plans(reqs: pl.LazyFrame, *, grid: Grid, settings: BuildSettings) -> list[pl.LazyFrame]:
    """One part's plans (collect them together: ``reqs`` is read by each), for the tables of
    ``grid`` and the document of its window: both tables' aggregates, the latest requests, the
    document's additive row and customer keys."""
    inside = reqs.filter(in_grid(pl.col("instant"), grid.frame))
    additive, per_key = callback_metrics.document_parts(reqs, begin=grid.start, end=grid.end)
    return [
        callback_intervals.busy_parts(reqs, window=grid, settings=settings),
        retry_outcomes.busy_parts(reqs, window=grid, settings=settings),
        latest_names(inside),
        additive,
        per_key,
    ]


def merged(
    parts: Sequence[Sequence[pl.DataFrame | pl.LazyFrame]],
    *,
    grid: Grid,
    settings: BuildSettings,
    keys: pl.LazyFrame | None = None,
) -> tuple[pl.LazyFrame, pl.LazyFrame, dict[str, Any]]:
    """``callback_intervals``' and ``retry_outcomes``' busy rows over ``grid`` (lazy, in the
    builders' order) and the metrics document, from every part's collected
    :func:`part_plans` (each part's grid within ``grid``, its intervals the same). No part:
    the tables and document of no request. ``keys``: every customer key's requests, merged
    already (:func:`key_set_requests` of every set, stacked), when the parts' were set aside."""
    if not parts:
        parts = [empty_parts(grid, settings)]
    stacked = [pl.concat([f.lazy() for f in p]) for p in zip(*parts, strict=True)]
    table, retries, latest, additive, per_key = stacked
    names, document = names_and_document(latest, additive, per_key, keys=keys)
    return (*merged_tables(table, retries, names, grid=grid, settings=settings), document)


def empty_parts(grid: Grid, settings: BuildSettings) -> list[pl.LazyFrame]:
    """The parts of no request."""
    from engine.schema import CALLBACK_ATTEMPTS  # noqa: PLC0415 - only when nothing was read
    from engine.tables.callback_requests import requests  # noqa: PLC0415

    return part_plans(
        requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS)), grid=grid, settings=settings
    )


def names_and_document(
    latest: pl.LazyFrame,
    additive: pl.LazyFrame,
    per_key: pl.LazyFrame,
    *,
    keys: pl.LazyFrame | None = None,
) -> tuple[pl.LazyFrame, dict[str, Any]]:
    """The call targets' names and the metrics document from every part's latest requests,
    additive row and customer keys, stacked (``keys``: as in :func:`merged`)."""
    additive, per_key = callback_metrics.merge_parts(additive, per_key)
    return call_target_names(latest), callback_metrics.render(
        additive, per_key if keys is None else keys
    )


def merged_tables(
    table: pl.LazyFrame,
    retries: pl.LazyFrame,
    names: pl.LazyFrame,
    *,
    grid: Grid,
    settings: BuildSettings,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Both tables' busy rows from their parts stacked (all of them, or all of those of some
    intervals: the rows of those intervals) and the call targets' names."""
    return (
        callback_intervals.merge_parts(table, names, window=grid, settings=settings),
        retry_outcomes.merge_parts(retries, names, window=grid, settings=settings),
    )
