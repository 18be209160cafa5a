"""Busy rows and the zero-filled grid: what the store keeps and what a reader is shown.

The store keeps the **busy rows** of each interval table only: those with a non-zero additive
column (a row the builder aggregated from at least one contact or request). The zeros are
derived where a consumer needs the full grid (SPEC §4, "Zero-fill"): :func:`fill` gives every
group *seen in the requested window* every interval of that window, zeros for the additive
columns, exactly as the builders' own zero-fill does for the window they build. For one build
window, ``fill(busy rows of build(w), w) == build(w)`` row for row (a property in the tests).

What "seen" means per table (the builders' own rule):

- ``callvolume`` (and ``staffing``, built row by row from it): the (queue, channel) pairs with a
  busy row in the window: every inbound contact is offered in some interval;
- ``callback_intervals``: the (call target, type, first party, source type) groups with a busy
  row: every request is counted in its interval;
- ``retry_outcomes``: every call target with a request in the window (``seen``: its
  ``callback_intervals`` rows) times every retry bucket, although most targets retry little.

A group's name (queue or call target) on its zero rows is the one on its latest busy row in the
window (a built window has one name per group).

Example:
    >>> from datetime import datetime, UTC
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.contacts import generate_contacts
    >>> from engine.tables import callvolume
    >>> day = datetime(2026, 10, 1, tzinfo=UTC)
    >>> w = BuildSettings().grid((day, day.replace(day=2)))
    >>> built = callvolume.build(generate_contacts(start=w.start, days=1).lazy(), window=w,
    ...                          settings=BuildSettings()).collect()
    >>> stored = built.filter(busy("callvolume"))
    >>> filled = fill(stored.lazy(), "callvolume", w.frame).collect()
    >>> stored.height < built.height, filled.equals(built)
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from engine.interval import zero_fill
from engine.tables import callback_intervals, callvolume, retry_outcomes
from engine.tables.callback_requests import RETRY_BUCKETS

__all__ = [
    "MOST_FILLED",
    "SHAPES",
    "TableShape",
    "busy",
    "check_filled",
    "fill",
    "fill_groups",
    "fill_with",
    "filled_size",
    "typed",
]


@dataclass(frozen=True)
class TableShape:
    """How an interval table is keyed and what it adds up."""

    group: tuple[str, ...]  #: the key columns besides the interval
    additive: tuple[str, ...]  #: the columns that add (zero on a filled row)
    label: tuple[str, str]  #: (name column, the id column it names)
    schema: dict[str, pl.DataType]  #: the stored column order and types


#: The zero-filled interval tables, by name.
SHAPES: Final = {
    "callvolume": TableShape(
        ("queue_id", "channel"),
        callvolume.ADDITIVE,
        ("queue_name", "queue_id"),
        dict(callvolume.SCHEMA),
    ),
    "callback_intervals": TableShape(
        callback_intervals.GROUP,
        callback_intervals.ADDITIVE,
        ("call_target_name", "call_target_id"),
        callback_intervals.SCHEMA,
    ),
    "retry_outcomes": TableShape(
        retry_outcomes.GROUP,
        retry_outcomes.COUNTS,
        ("call_target_name", "call_target_id"),
        retry_outcomes.SCHEMA,
    ),
}


def busy(name: str) -> pl.Expr:
    """True on the rows of table ``name`` that the store keeps: any additive column non-zero
    (``staffing``, built row by row from the volume table: something offered).

    Example:
        >>> zeros = {o: [0, 0] for o in retry_outcomes.OUTCOMES}
        >>> frame = pl.DataFrame({"requests": [0, 2], **zeros})
        >>> frame.filter(busy("retry_outcomes"))["requests"].to_list()
        [2]
    """
    if name == "staffing":
        return pl.col("offered") != 0
    return pl.any_horizontal(pl.col(c) != 0 for c in SHAPES[name].additive)


def fill(
    rows: pl.LazyFrame, name: str, grid: pl.DataFrame, *, seen: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """The zero-filled table ``name`` over ``grid`` (its intervals, in order) from ``rows``: the
    stored rows (busy rows, or a dense table: filling is idempotent) of that table.

    Rows outside ``grid`` are left out. For ``retry_outcomes``, ``seen`` gives the call targets
    seen in the window: rows with ``interval_start_utc``, ``call_target_id`` and
    ``call_target_name`` (the ``callback_intervals`` rows); without it, the targets with a busy
    row.

    Returns:
        The table's stored columns, sorted by group, then interval (as the builders sort).
    """
    inside, combos, names = fill_groups(rows, name, grid, seen)
    return fill_with(inside, name, grid, combos, names)


def typed(rows: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """``rows`` of table ``name`` with its columns cast to their types (the store writes
    text); other columns as they are."""
    present = set(rows.collect_schema().names())
    return rows.with_columns(
        pl.col(c).cast(t) for c, t in SHAPES[name].schema.items() if c in present
    )


def fill_groups(
    rows: pl.LazyFrame, name: str, grid: pl.DataFrame, seen: pl.LazyFrame | None = None
) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """What :func:`fill` fills ``grid`` with: ``(the rows inside grid, typed; the groups to
    fill; each group's name there)``, for :func:`fill_with` (a caller may collect them once and
    fill the grid a part at a time: every part then has the whole grid's groups and names)."""
    shape = SHAPES[name]
    at = pl.col("interval_start_utc")
    lo, hi = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
    inside = typed(rows.filter((at >= lo) & (at < hi)), name)
    label, labelled = shape.label
    known = [inside]
    if seen is not None:
        typed_labels = [pl.col(c).cast(shape.schema[c]) for c in (label, labelled)]
        known.append(seen.filter((at >= lo) & (at < hi)).with_columns(typed_labels))
    stamped = pl.concat([k.select(at, labelled, label) for k in known], how="vertical")
    names = stamped.sort(at).group_by(labelled).agg(pl.col(label).last())
    if name == "retry_outcomes":
        buckets = pl.LazyFrame([pl.Series("retry_bucket", RETRY_BUCKETS.categories, RETRY_BUCKETS)])
        combos = names.select(labelled).join(buckets, how="cross")
    else:
        combos = inside.select(shape.group).unique()
    return inside, combos, names


def fill_with(
    inside: pl.LazyFrame, name: str, grid: pl.DataFrame, combos: pl.LazyFrame, names: pl.LazyFrame
) -> pl.LazyFrame:
    """The zero-filled table ``name`` over ``grid`` from the ``inside`` rows, ``combos`` and
    ``names`` of :func:`fill_groups` (of ``grid`` or a larger grid ``grid`` is part of)."""
    shape = SHAPES[name]
    values = inside.select("interval_start_utc", *shape.group, *shape.additive)
    filled = zero_fill(values, grid, combos, fill=shape.additive)
    return (
        filled.join(names, on=shape.label[1], how="left", nulls_equal=True, maintain_order="left")
        .select(list(shape.schema))
        .cast(shape.schema)  # type: ignore[arg-type]
    )


def filled_size(
    rows: pl.DataFrame, name: str, grid: pl.DataFrame, *, seen: pl.DataFrame | None = None
) -> tuple[int, int]:
    """``(intervals, rows)`` of :func:`fill`'s table from the busy ``rows`` of a window (each
    group, for ``retry_outcomes`` each call target of ``seen`` x retry bucket, at every
    interval of ``grid``), counted without building it; ``(0, 0)`` when there is no group."""
    if name == "retry_outcomes":
        targets = (seen if seen is not None else rows)["call_target_id"].n_unique()
        groups = targets * len(RETRY_BUCKETS.categories)
    else:
        groups = rows.select(SHAPES[name].group).n_unique()
    intervals = grid.height if groups else 0
    return intervals, groups * intervals


#: A window taken from the data is refused when its zero-filled tables would hold more than
#: this many rows and over :data:`MOST_ZEROS_PER_ROW` times as many rows as the data has.
MOST_FILLED: Final = 10_000_000
#: A real centre's busy intervals hold a few contacts each, its quiet ones none: a filled
#: table has a few rows per contact, a few tens where queues sleep at night.
MOST_ZEROS_PER_ROW: Final = 100


def check_filled(
    lo: datetime, hi: datetime, groups: int, rows: int, *, minutes: int, what: tuple[str, str]
) -> None:
    """Refuse a window taken from the data, ``lo`` to ``hi`` (``rows`` rows), when its tables
    zero-filled for ``groups`` groups would hold over :data:`MOST_FILLED` rows, nearly all
    empty (over :data:`MOST_ZEROS_PER_ROW` per row of data): a stray instant decades off (a
    null exported as 1900-01-01) fills every interval between for every group, ~500 bytes a
    row, and the process is killed for memory with no line. ``what``: the rows and the groups
    named in the message (``("contacts", "queue x channel pairs")``).

    Raises:
        ValueError: one line naming the span and asking for a window.

    Example:
        >>> from datetime import UTC
        >>> check_filled(datetime(1900, 1, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC),
        ...              7, 1_239, minutes=15, what=("contacts", "queue x channel pairs"))
        Traceback (most recent call last):
        ValueError: the 1,239 contacts span 1900-01-01T00:00:00Z .. 2026-10-01T00:00:00Z: zero-filled over their 7 queue x channel pairs, ~31,109,575 rows; give --start and --end, or look for a placeholder date in the first or last contacts
    """  # noqa: E501
    filled = groups * ((hi - lo) // timedelta(minutes=minutes) + 1)
    if filled > max(MOST_FILLED, MOST_ZEROS_PER_ROW * rows):
        span = " .. ".join(t.isoformat().replace("+00:00", "Z") for t in (lo, hi))
        msg = (f"the {rows:,} {what[0]} span {span}: zero-filled over their {groups:,} "
               f"{what[1]}, ~{filled:,} rows; give --start and --end, or look for a "
               f"placeholder date in the first or last {what[0]}")  # fmt: skip
        raise ValueError(msg)
