"""The ``retry_outcomes`` table (SPEC §6.1, docs/callbacks.md).

One row per interval x ``call_target_id`` x ``retry_bucket`` (``1`` … ``5``, ``over5``; all six
for every call target with a request in the window), with the requests whose retry count falls in
the bucket, by final outcome. Requests without retries are in no bucket. A request counts in the
interval of its instant (its first attempt's ``created_at``).

Example:
    >>> from datetime import datetime, UTC
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.callbacks import generate_attempts
    >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> from engine.tables.callback_requests import requests
    >>> reqs = requests(generate_attempts(days=1, scale=0.2).lazy())
    >>> t = build(reqs, window=w, settings=BuildSettings())
    >>> t.collect().height % (96 * 6)
    0
"""

from __future__ import annotations

from typing import Final

import polars as pl

from engine.interval import (
    GRID,
    Grid,
    Window,
    aggregate_by_interval,
    in_grid,
    zero_fill,
)
from engine.settings import BuildSettings
from engine.tables.callback_requests import (
    OUTCOMES,
    RETRY_BUCKETS,
    busy_table,
    call_target_names,
    combine,
    finish_table,
    retry_bucket,
    rolled_up,
)
from engine.tables.callvolume import nested, rollup_grid

__all__ = [
    "COUNTS",
    "GROUP",
    "KEYS",
    "REQUEST_COLUMNS",
    "SCHEMA",
    "build",
    "busy_parts",
    "busy_rows",
    "merge_parts",
    "rollup",
]

GROUP: Final = ("call_target_id", "retry_bucket")
KEYS: Final = ("interval_start_utc", *GROUP)
#: The additive columns.
COUNTS: Final = ("requests", *OUTCOMES)
#: The request columns the table reads (:func:`build`), including the names'.
REQUEST_COLUMNS: Final = ("call_target_id", "call_target_name", "instant", "retries", "outcome")

SCHEMA: Final[dict[str, pl.DataType]] = {
    **GRID,
    "call_target_id": pl.String(),
    "call_target_name": pl.String(),
    "retry_bucket": RETRY_BUCKETS,
    **dict.fromkeys(COUNTS, pl.Int64()),
}


def _measures() -> list[pl.Expr]:
    outcome = pl.col("outcome")
    return [
        pl.len().cast(pl.Int64).alias("requests"),
        *((outcome == o).sum().cast(pl.Int64).alias(o) for o in OUTCOMES),
    ]


def _zero_fill(
    agg: pl.LazyFrame, grid: pl.DataFrame, targets: pl.LazyFrame, names: pl.LazyFrame
) -> pl.LazyFrame:
    buckets = pl.LazyFrame([pl.Series("retry_bucket", RETRY_BUCKETS.categories, RETRY_BUCKETS)])
    filled = zero_fill(agg, grid, targets.join(buckets, how="cross"), fill=COUNTS)
    return finish_table(filled, names, columns=list(SCHEMA))


def build(reqs: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings) -> pl.LazyFrame:
    """The retry outcome table for ``window`` from the requests of canonical attempts.

    Args:
        reqs: requests (:func:`engine.tables.callback_requests.requests`), at least
            :data:`REQUEST_COLUMNS`; those whose instant is outside ``window`` are ignored.
            Each request needs all its attempts, whatever their own time, to be complete.
        window: ``[start, end)``, widened to whole intervals, or the build's one
            :class:`~engine.interval.Grid` (:meth:`BuildSettings.grid`).
        settings: interval length and zone.

    Returns:
        :data:`SCHEMA`'s columns, sorted by call target, bucket and interval.

    Example:
        >>> from datetime import datetime, UTC
        >>> from engine.schema import CALLBACK_ATTEMPTS
        >>> from engine.tables.callback_requests import requests
        >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 1, 1, tzinfo=UTC)
        >>> build(requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS)), window=w,
        ...       settings=BuildSettings()).collect().columns == list(SCHEMA)
        True
    """
    grid = settings.grid(window).frame
    agg, names, reqs = _aggregated(reqs, grid)
    return _zero_fill(agg, grid, reqs.select("call_target_id").unique(), names)


def busy_rows(
    reqs: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """The rows of :func:`build`'s table that count a retried request (what the store keeps),
    in its order, without building the zero rows (:func:`engine.tables.dense.fill` gives them,
    with the call targets of the window's ``callback_intervals`` rows)."""
    grid = settings.grid(window).frame
    agg, names, _ = _aggregated(reqs, grid)
    return busy_table(agg, grid, names, group=GROUP, columns=list(SCHEMA))


def busy_parts(
    reqs: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """The aggregates of some of the window's requests (:data:`KEYS` and :data:`COUNTS`, no
    names): :func:`merge_parts` of the parts of disjoint sets of requests is :func:`busy_rows`
    of their union."""
    return _aggregated(reqs, settings.grid(window).frame)[0]


def merge_parts(
    parts: pl.LazyFrame, names: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """:func:`busy_rows` from the stacked :func:`busy_parts` of disjoint sets of requests and
    the names of their union (:func:`engine.tables.callback_requests.call_target_names`)."""
    merged = parts.group_by(KEYS).agg(combine(COUNTS))
    grid = settings.grid(window).frame
    return busy_table(merged, grid, names, group=GROUP, columns=list(SCHEMA))


def _aggregated(
    reqs: pl.LazyFrame, grid: pl.DataFrame
) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    reqs = reqs.filter(in_grid(pl.col("instant"), grid)).select(REQUEST_COLUMNS)
    retried = reqs.filter(pl.col("retries") > 0).with_columns(retry_bucket())
    agg = aggregate_by_interval(
        retried, grid, at=pl.col("instant"), by=GROUP, measures=_measures(),
        combine=combine(COUNTS),
    )  # fmt: skip
    return agg, call_target_names(reqs), reqs


def rollup(
    table: pl.LazyFrame, *, window: Window, minutes: int, tz: str, partial: bool = False
) -> pl.LazyFrame:
    """Roll the table up to coarser intervals (30, 60, or 1440 for local days), exactly.

    ``table`` is a table of ``window`` (rows outside the coarse intervals are left out), so the
    result equals :func:`build` over ``window`` at ``minutes``. The coarse intervals are
    :func:`engine.tables.callvolume.rollup_grid`'s: ``window`` must be whole coarse intervals
    (``partial=True``: the cut edge intervals too, holding only the window's part).

    Raises:
        StoreError: ``window`` cuts a coarse interval and not ``partial``; when collected, the
            table's grid does not nest in the coarse one
            (:func:`engine.tables.callvolume.nested`).

    Example:
        >>> from datetime import datetime, UTC
        >>> from engine.demo.callbacks import generate_attempts
        >>> from engine.tables.callback_requests import requests
        >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
        >>> t15 = build(requests(generate_attempts(days=1, scale=0.2).lazy()), window=w,
        ...             settings=BuildSettings())
        >>> rollup(t15, window=w, minutes=1440, tz="UTC").collect().height % 6
        0
    """
    grid = rollup_grid(window, minutes=minutes, tz=tz, partial=partial)
    inside = nested(table, grid, minutes=minutes, tz=tz)
    rolled, names = rolled_up(inside, grid, group=GROUP, columns=COUNTS)
    return _zero_fill(rolled, grid, inside.select("call_target_id").unique(), names)
