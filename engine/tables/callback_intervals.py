"""The ``callback_intervals`` table (SPEC §6.1, docs/callbacks.md).

One row per interval x ``call_target_id`` x ``type`` x ``first_party_called`` x ``source_type``,
zero-filled over the window for every combination seen in it. A request counts in the interval
of its instant (its first attempt's ``created_at``). Only additive columns are stored (counts,
sums, non-null counts and maxima, see :data:`engine.tables.callback_requests.ADDITIVE`), so summing
rows
over whole intervals gives the metrics document's additive fields exactly and :func:`rollup` is
exact.

Example:
    >>> from datetime import datetime, UTC
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.callbacks import generate_attempts
    >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> from engine.tables.callback_requests import requests
    >>> reqs = requests(generate_attempts(days=1, scale=0.2).lazy())
    >>> t = build(reqs, window=w, settings=BuildSettings())
    >>> t.collect().height % 96
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
from engine.schema import CALLBACK_FIRST_PARTIES, CALLBACK_SOURCE_TYPES, CALLBACK_TYPES
from engine.settings import BuildSettings
from engine.tables import callback_requests as callback_request
from engine.tables.callback_requests import (
    ADDITIVE,
    busy_table,
    call_target_names,
    combine,
    finish_table,
    measures,
    rolled_up,
)
from engine.tables.callvolume import nested, rollup_grid

__all__ = [
    "ADDITIVE",
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

#: The group columns besides the interval.
GROUP: Final = ("call_target_id", "type", "first_party_called", "source_type")
KEYS: Final = ("interval_start_utc", *GROUP)
#: The request columns the table reads (:func:`build`), including the names': every one
#: but the chain key and the customer (only the document counts customers).
REQUEST_COLUMNS: Final = tuple(
    c
    for c in callback_request.REQUEST_COLUMNS
    if c not in ("source", "original_id", "customer_key")
)

#: The stored table: interval key columns, the group, the call target's name, additive measures.
SCHEMA: Final[dict[str, pl.DataType]] = {
    **GRID,
    "call_target_id": pl.String(),
    "call_target_name": pl.String(),
    "type": CALLBACK_TYPES,
    "first_party_called": CALLBACK_FIRST_PARTIES,
    "source_type": CALLBACK_SOURCE_TYPES,
    **dict.fromkeys(ADDITIVE, pl.Int64()),
}


def _zero_fill(agg: pl.LazyFrame, names: pl.LazyFrame, grid: pl.DataFrame) -> pl.LazyFrame:
    filled = zero_fill(agg, grid, agg.select(GROUP).unique(), fill=ADDITIVE)
    return finish_table(filled, names, columns=list(SCHEMA))


def build(reqs: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings) -> pl.LazyFrame:
    """The callback interval table for ``window`` from the requests of canonical attempts.

    Args:
        reqs: requests (:func:`engine.tables.callback_requests.requests`), at least
            :data:`REQUEST_COLUMNS`; those whose instant is outside ``window`` are ignored.
            Each request needs all its attempts, whatever their own time, to be complete.
        window: ``[start, end)``, widened to whole intervals, or the build's one
            :class:`~engine.interval.Grid` (:meth:`BuildSettings.grid`).
        settings: interval length and zone (the other settings do not apply to callbacks).

    Returns:
        :data:`SCHEMA`'s columns, sorted by the group columns and interval.

    Example:
        >>> from datetime import datetime, UTC
        >>> from engine.schema import CALLBACK_ATTEMPTS
        >>> from engine.tables.callback_requests import requests
        >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 1, 1, tzinfo=UTC)
        >>> empty = requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS))
        >>> build(empty, window=w, settings=BuildSettings()).collect().height
        0
    """
    grid = settings.grid(window).frame
    return _zero_fill(*_aggregated(reqs, grid), grid)


def busy_rows(
    reqs: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """The rows of :func:`build`'s table that hold a request (what the store keeps), in its
    order, without building the zero rows (:func:`engine.tables.dense.fill` gives them)."""
    grid = settings.grid(window).frame
    agg, names = _aggregated(reqs, grid)
    return busy_table(agg, grid, names, group=GROUP, columns=list(SCHEMA))


def busy_parts(
    reqs: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """The aggregates of some of the window's requests (one row per interval and group,
    :data:`KEYS` and :data:`ADDITIVE`, no names): :func:`merge_parts` of the parts of disjoint
    sets of requests is :func:`busy_rows` of their union."""
    return _aggregated(reqs, settings.grid(window).frame)[0]


def merge_parts(
    parts: pl.LazyFrame, names: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """:func:`busy_rows` from the stacked :func:`busy_parts` of disjoint sets of requests and
    the names of their union (:func:`engine.tables.callback_requests.call_target_names`): the
    rows of one key combine (sums add, maxima take the max)."""
    merged = parts.group_by(KEYS).agg(combine())
    grid = settings.grid(window).frame
    return busy_table(merged, grid, names, group=GROUP, columns=list(SCHEMA))


def _aggregated(reqs: pl.LazyFrame, grid: pl.DataFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    reqs = reqs.filter(in_grid(pl.col("instant"), grid)).select(REQUEST_COLUMNS)
    agg = aggregate_by_interval(
        reqs, grid, at=pl.col("instant"), by=GROUP, measures=measures(), combine=combine()
    )
    return agg, call_target_names(reqs)


def rollup(
    table: pl.LazyFrame, *, window: Window, minutes: int, tz: str, partial: bool = False
) -> pl.LazyFrame:
    """Roll the table up to coarser intervals (30, 60, or 1440 for local days), exactly.

    ``table`` is a table of ``window`` (rows outside the coarse intervals are left out); each
    fine interval lies in exactly one coarse interval; sums add and maxima take the max, so the
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
        >>> rollup(t15, window=w, minutes=60, tz="UTC").collect().height % 24
        0
    """
    grid = rollup_grid(window, minutes=minutes, tz=tz, partial=partial)
    inside = nested(table, grid, minutes=minutes, tz=tz)
    rolled, names = rolled_up(inside, grid, group=GROUP, columns=ADDITIVE)
    return _zero_fill(rolled, names, grid)
