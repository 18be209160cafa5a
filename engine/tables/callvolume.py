"""The interval volume table, ``callvolume`` (SPEC §5): one row per interval x queue x channel.

Only additive columns are stored (counts, sums, maxima); ratios are derived by :func:`derive` at
output, so that any roll-up (:func:`rollup`) is exact.

Example:
    >>> from datetime import datetime, UTC
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.contacts import generate_contacts
    >>> start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> contacts = generate_contacts(start=start, days=1).lazy()
    >>> table = build(contacts, window=(start, end), settings=BuildSettings()).collect()
    >>> table.height % 96
    0
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import polars as pl

from engine.errors import InputSchemaError, StoreError
from engine.interval import (
    Grid,
    Window,
    grain_ms,
    in_grid,
    interval_grid,
    on_grid,
    to_intervals,
    zero_fill,
)
from engine.schema import CALLVOLUME, CALLVOLUME_MAXIMA, CALLVOLUME_SUMS, UTC_TS
from engine.settings import BuildSettings

__all__ = [
    "ADDITIVE",
    "DERIVED",
    "KEYS",
    "MAXIMA",
    "SCHEMA",
    "build",
    "busy_rows",
    "configured_threshold_ms",
    "derive",
    "latest_queue_name",
    "nested",
    "rollup",
    "rollup_grid",
    "rollup_window",
]

KEYS: Final = ("interval_start_utc", "queue_id", "channel")
SUMS: Final = CALLVOLUME_SUMS
MAXIMA: Final = CALLVOLUME_MAXIMA
ADDITIVE: Final = (*SUMS, *MAXIMA)
DERIVED: Final = ("aht_ms", "asa_ms", "abandon_rate", "service_level")

#: The stored table: interval key columns, queue, channel, additive measures (the contract in
#: :mod:`engine.schema`, where the Kore.ai connector reads it too).
SCHEMA: Final = CALLVOLUME


def configured_threshold_ms(settings: BuildSettings) -> pl.Expr:
    """The service-level threshold configured for each row (``queue_id``, ``channel``): the
    channel's default, then queue-wide overrides, then queue-and-channel ones (most specific
    wins). A record's own vendor threshold is not considered (see :func:`_threshold_ms`)."""
    t: pl.Expr = pl.lit(settings.sl_default_ms.get("voice", 20_000), pl.Int64)
    for channel, ms in settings.sl_default_ms.items():
        t = pl.when(pl.col("channel") == channel).then(pl.lit(ms, pl.Int64)).otherwise(t)
    # Queue-wide overrides first, then queue-and-channel ones on top, so the latter win.
    for o in sorted(settings.sl_overrides, key=lambda o: o.channel is not None):
        cond = pl.col("queue_id") == o.queue_id
        if o.channel is not None:
            cond &= pl.col("channel") == o.channel
        t = pl.when(cond).then(pl.lit(o.threshold_ms, pl.Int64)).otherwise(t)
    return t


def _threshold_ms(settings: BuildSettings) -> pl.Expr:
    """The service-level threshold of each contact: its own vendor threshold when
    ``use_vendor_threshold``, else the configured one."""
    t = configured_threshold_ms(settings)
    return pl.coalesce(pl.col("sl_threshold_ms"), t) if settings.use_vendor_threshold else t


def _measures(settings: BuildSettings) -> list[pl.Expr]:
    outcome, wait = pl.col("outcome"), pl.col("wait_ms")
    answered, abandoned = outcome == "answered", outcome == "abandoned"
    t = _threshold_ms(settings)
    within = wait <= t if settings.sl_comparator == "<=" else wait < t
    handle = pl.col("talk_ms") + pl.col("hold_ms") + pl.col("acw_ms")
    measures = [
        pl.len().alias("offered"),
        answered.sum().alias("answered"),
        abandoned.sum().alias("abandoned"),
        (abandoned & (wait < settings.short_abandon_ms)).sum().alias("short_abandoned"),
        (outcome == "flow_out").sum().alias("flow_out"),
        (outcome == "open").sum().alias("open"),
        (answered & pl.col("ended_at").is_not_null()).sum().alias("completed"),
        (answered & within).sum().alias("answered_within_sl"),
        (abandoned & within).sum().alias("abandoned_within_sl"),
        pl.when(answered).then(wait).sum().alias("wait_answered_ms"),
        pl.when(abandoned).then(wait).sum().alias("wait_abandoned_ms"),
        pl.col("talk_ms").sum(),
        pl.col("hold_ms").sum(),
        pl.col("acw_ms").sum(),
        handle.sum().alias("handle_ms"),
        pl.col("messages").sum(),
        pl.col("csat_responses").sum(),
        pl.col("csat_score").sum(),
        pl.when(answered).then(wait).max().fill_null(0).alias("wait_answered_max_ms"),
        pl.when(abandoned).then(wait).max().fill_null(0).alias("wait_abandoned_max_ms"),
    ]
    return [m.cast(pl.Int64) for m in measures]  # counts of booleans come out as UInt32


def _combine() -> list[pl.Expr]:
    """How additive columns of finer rows combine into a coarser row."""
    return [pl.col(c).sum() for c in SUMS] + [pl.col(c).max() for c in MAXIMA]


def _attributed_at(settings: BuildSettings) -> pl.Expr:
    if settings.attribution == "end":
        # A segment that has not ended yet stays in its offer interval until it does.
        return pl.coalesce(pl.col("ended_at"), pl.col("offered_at"))
    return pl.col("offered_at")


def latest_queue_name() -> pl.Expr:
    """Per queue, the name on its most recently updated row (ties: the greatest name).

    Evaluated on the small aggregated frame, where each (queue, name) carries its latest
    ``updated_at``, so the contacts are read once.
    """
    pick = pl.col("queue_name").sort_by(["updated_at", "queue_name"], nulls_last=False).last()
    return pick.over("queue_id").fill_null(pl.col("queue_id")).alias("queue_name")


#: A queue and channel (a queue has one name in a built table): the zero-fill's group, in order.
_PAIR: Final = ("queue_id", "channel", "queue_name")


def _zero_fill(agg: pl.LazyFrame, grid: pl.DataFrame) -> pl.LazyFrame:
    """Zero-filled, sorted by queue, channel and interval (a queue has one name here)."""
    pairs = agg.select(_PAIR).unique()
    return zero_fill(agg, grid, pairs, fill=ADDITIVE).select(SCHEMA.keys())


def build(
    contacts: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """The volume table for ``window`` from canonical (validated) contacts.

    Args:
        contacts: canonical contacts (:data:`engine.schema.CONTACTS`), unique by identity.
        window: ``[start, end)``, widened to whole intervals, or the build's one
            :class:`~engine.interval.Grid` (:meth:`BuildSettings.grid`).
        settings: interval length, zone, attribution, thresholds.

    Returns:
        One row per interval x (queue, channel) seen in the window, zero-filled, with
        :data:`SCHEMA`'s columns, sorted by queue, channel and interval.
    """
    grid = settings.grid(window)
    return _from_grains(_grains_in(contacts, grid, settings), window=grid, settings=settings)


def busy_rows(
    contacts: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings
) -> pl.LazyFrame:
    """The rows of :func:`build`'s table that hold something (every interval x queue and
    channel with a contact counted in it: what the store keeps), in its order, without
    building the zero rows; :func:`engine.tables.dense.fill` gives the whole table back.
    """
    grid = settings.grid(window)
    grains_ = _grains_in(contacts, grid, settings)
    return _from_grains(grains_, window=grid, settings=settings, dense=False)


#: The group keys of a grain besides its instant.
_BY: Final = ("queue_id", "queue_name", "channel")


def _grains(contacts: pl.LazyFrame, *, grain_ms: int, settings: BuildSettings) -> pl.LazyFrame:
    """The measures of ``contacts``' inbound rows per ``grain_ms`` step of their attribution
    instant (``_at``, the step's start: integer arithmetic on the large frame) and queue, name
    and channel, with the latest ``updated_at``."""
    step = grain_ms * 1000
    at = _attributed_at(settings).cast(pl.Int64) // step
    inbound = contacts.filter(pl.col("direction") == "inbound")
    measures = [*_measures(settings), pl.col("updated_at").max()]
    agg = inbound.group_by(*_BY, at.alias("_at")).agg(measures)
    return agg.with_columns((pl.col("_at") * step).cast(UTC_TS))


def _from_grains(
    grains: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings, dense: bool = True
) -> pl.LazyFrame:
    """:func:`build`'s table (``dense=False``: :func:`busy_rows`') from :func:`_grains` at the
    grain of the window's grid (grains outside it are left out)."""
    grid = settings.grid(window).frame
    # A renamed queue has rows under several names: all get its latest, then merge.
    named = _in_intervals(grains, grid).with_columns(latest_queue_name())
    agg = named.group_by("interval_start_utc", *_BY).agg(_combine())
    if dense:
        return _zero_fill(agg, grid)
    return on_grid(agg, grid, order=_PAIR).select(SCHEMA.keys())


def _in_intervals(grains: pl.LazyFrame, grid: pl.DataFrame) -> pl.LazyFrame:
    """``grains`` with the start of their interval (``interval_start_utc``), those outside
    ``grid`` left out: joined on the grid's own grains (few), no sort of the rows."""
    start, end = pl.col("interval_start_utc"), pl.col("interval_end_utc")
    step = f"{grain_ms(grid)}ms"
    own = grid.select(start, pl.datetime_ranges(start, end, step, closed="left").alias("_at"))
    return grains.join(own.explode("_at").lazy(), on="_at", how="inner").drop("_at")


#: The instants of a contact, UTC microseconds in canonical contacts (:data:`UTC_TS`).
_INSTANTS: Final = ("offered_at", "answered_at", "ended_at", "updated_at")


def _in_utc_us(contacts: pl.LazyFrame) -> pl.LazyFrame:
    """``contacts`` with its aware instants as :data:`UTC_TS` (a notebook's frame from pandas
    holds nanoseconds: read as microseconds, its intervals fell outside the grid and the table
    was empty, silently); naive instants are refused, as validation refuses them."""
    schema = contacts.collect_schema()
    odd = [c for c in _INSTANTS if c in schema and schema[c] != UTC_TS]
    for c in odd:
        dtype = schema[c]
        if not isinstance(dtype, pl.Datetime) or not dtype.time_zone:
            msg = f"{c}: {dtype} is not an aware instant (validate_contacts reads it)"
            raise InputSchemaError(msg)
    return contacts.with_columns(pl.col(odd).dt.convert_time_zone("UTC").dt.cast_time_unit("us"))


def _grains_in(contacts: pl.LazyFrame, grid: Grid, settings: BuildSettings) -> pl.LazyFrame:
    """:func:`_grains` of the contacts attributed inside ``grid``, at its grain."""
    inside = _in_utc_us(contacts).filter(in_grid(_attributed_at(settings), grid.frame))
    return _grains(inside, grain_ms=grain_ms(grid.frame), settings=settings)


def rollup_grid(window: Window, *, minutes: int, tz: str, partial: bool = False) -> pl.DataFrame:
    """The coarse intervals a roll-up over ``window`` returns (:func:`rollup`, and the callback
    tables' ``rollup``): every interval of ``minutes`` (30, 60, or 1440 for local days, 23 or 25
    hours long on a DST change) in ``tz`` that overlaps ``window``
    (:func:`engine.interval.interval_grid`).

    A roll-up equals a direct build at the coarser length, value for value (SPEC §5), only over
    coarse intervals its table covers whole: an interval the window cuts would hold the
    contacts of its part in the window under the bounds of the whole interval. So ``window``
    must start and end on boundaries of the coarse intervals (:func:`engine.snap_window` with
    ``minutes`` and ``tz`` gives such a window; build the finer table over it), unless
    ``partial``: then the cut first and last intervals are returned too, holding only the
    window's part, and the caller marks them (the report's days cut by its window).

    Raises:
        StoreError: ``window`` cuts a coarse interval and not ``partial`` (the message names
            the coarse intervals it touches); ``window`` reversed or naive (a ``ValueError``).
    """
    grid = interval_grid(*window, minutes=minutes, tz=tz)
    first, last = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
    if not partial and (first != window[0] or last != window[1]):
        msg = (
            f"roll-up window {_z(window[0])} .. {_z(window[1])} is not whole {minutes}-minute "
            f"intervals in {tz} (those it touches run {_z(first)} .. {_z(last)}): an interval it "
            "cuts would hold part of its contacts under the whole interval's bounds; roll up a "
            "table built over whole coarse intervals (engine.snap_window), or pass partial=True "
            "and mark the cut ones"
        )
        raise StoreError(msg)
    return grid


def _z(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def nested(table: pl.LazyFrame, grid: pl.DataFrame, *, minutes: int, tz: str) -> pl.LazyFrame:
    """``table``'s rows that start in ``grid`` (a roll-up's coarse intervals,
    :func:`rollup_grid`), each of whose interval must lie inside one interval of ``grid``.

    A roll-up assigns a fine row to the coarse interval its start falls in; that is exact only
    when the table's grid nests in the coarse one: ``minutes`` a whole multiple of the table's
    interval and every coarse boundary one of the table's (a 60-minute UTC table does not
    nest in Asia/Kolkata hours, which start at hh:30 UTC, nor in 15-minute intervals). A row
    whose interval ends after its coarse interval's end would be counted in that interval
    whole, so collecting the result raises instead.

    Raises:
        StoreError: when collected, a row's interval is not inside one coarse interval (the
            message names both); refused whether or not the window cuts (``partial``).
    """
    start, end = pl.col("interval_start_utc"), pl.col("interval_end_utc")
    bounds = grid.lazy().select(start.alias("_lo"), end.alias("_hi"))
    inside = table.filter(in_grid(start, grid)).sort("interval_start_utc")
    placed = inside.join_asof(bounds, left_on="interval_start_utc", right_on="_lo")
    spans = pl.struct(start, end, pl.col("_lo"), pl.col("_hi"))

    def refuse(rows: pl.Series) -> pl.Series:
        bad = rows.filter(rows.struct.field("interval_end_utc") > rows.struct.field("_hi"))
        if bad.len():
            fine, coarse = bad[0], f"{minutes}-minute intervals in {tz}"
            msg = (
                f"roll-up to {coarse}: the table's interval {_z(fine['interval_start_utc'])} "
                f".. {_z(fine['interval_end_utc'])} is not inside one of them (it starts in "
                f"{_z(fine['_lo'])} .. {_z(fine['_hi'])}): its grid does not nest in theirs; "
                "roll up to a whole multiple of the table's interval whose boundaries are its "
                "boundaries (a zone whose offset differs by a part of the interval needs a table "
                "built in that zone or at a finer interval)"
            )
            raise StoreError(msg)
        return pl.Series(rows.len() * [True], dtype=pl.Boolean)

    checked = spans.map_batches(refuse, return_dtype=pl.Boolean)
    return placed.filter(checked).drop("_lo", "_hi")


def rollup(
    table: pl.LazyFrame, *, window: Window, minutes: int, tz: str, partial: bool = False
) -> pl.LazyFrame:
    """Roll a volume table up to coarser intervals (30, 60, or 1440 for local days).

    ``table`` is a table of ``window`` (built over it, or its rows in it; rows outside the
    coarse intervals are left out), on a finer grid whose boundaries include the coarser
    one's, so each fine interval lies in exactly one coarse interval; sums add and maxima take
    the max, so the result equals :func:`build` over ``window`` at ``minutes``, exactly. The
    coarse intervals are :func:`rollup_grid`'s: ``window`` must be whole coarse intervals
    (``partial=True``: the cut edge intervals too, holding only the window's part).

    Raises:
        StoreError: ``window`` cuts a coarse interval and not ``partial`` (:func:`rollup_grid`);
            when collected, the table's grid does not nest in the coarse one (:func:`nested`).

    Example:
        >>> from datetime import datetime, UTC
        >>> from engine.settings import BuildSettings
        >>> from engine.demo.contacts import generate_contacts
        >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
        >>> t15 = build(generate_contacts(start=w[0], days=1).lazy(), window=w,
        ...             settings=BuildSettings())
        >>> rollup(t15, window=w, minutes=60, tz="UTC").collect().height % 24
        0
    """
    grid = rollup_grid(window, minutes=minutes, tz=tz, partial=partial)
    inside = nested(table, grid, minutes=minutes, tz=tz)
    agg = inside.select(*KEYS, "queue_name", *ADDITIVE).rename({"interval_start_utc": "_at"})
    by = ("queue_id", "queue_name", "channel")  # a built table has one name per queue
    return _zero_fill(to_intervals(agg, grid, at="_at", by=by, combine=_combine()), grid)


def rollup_window(table: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (queue, channel) over the whole table: the window total."""
    return (
        table.group_by("queue_id", "channel")
        .agg(
            pl.col("interval_start_utc").min(),
            pl.col("interval_end_utc").max(),
            pl.col("queue_name").first(),
            *_combine(),
        )
        .sort("queue_id", "channel")
    )


def derive(table: pl.LazyFrame, *, settings: BuildSettings) -> pl.LazyFrame:
    """Add the derived ratios (null where the denominator is zero).

    ``aht_ms = handle_ms / answered``, ``asa_ms = wait_answered_ms / answered``,
    ``abandon_rate = abandoned / offered``, ``service_level`` by ``settings.sl_formula``.
    """
    a, ab = pl.col("answered"), pl.col("abandoned")
    a_t, ab_t, ab_s = (
        pl.col("answered_within_sl"),
        pl.col("abandoned_within_sl"),
        pl.col("short_abandoned"),
    )
    num, den = {
        "answered_over_answered_abandoned": (a_t, a + ab),
        "exclude_short_abandons": (a_t, a + ab - ab_s),
        "ignore_abandons_within_t": (a_t, a + ab - ab_t),
        "abandons_within_t_positive": (a_t + ab_t, a + ab),
        "answered_only": (a_t, a),
    }[settings.sl_formula]

    def ratio(n: pl.Expr, d: pl.Expr) -> pl.Expr:
        return pl.when(d > 0).then(n / d)

    return table.with_columns(
        ratio(pl.col("handle_ms"), a).alias("aht_ms"),
        ratio(pl.col("wait_answered_ms"), a).alias("asa_ms"),
        ratio(ab, pl.col("offered")).alias("abandon_rate"),
        ratio(num, den).alias("service_level"),
    )
