"""Kore.ai Contact Volume rows (seed 003) -> interval rows of the volume table, and back-checks.

The mapping is the exact inverse of :func:`engine.output.files.document_rows` (docs/metrics.md, "The
Contact Volume document"), so our own export read back through it gives our table again:

==========================================  =====================================================
volume column                               Kore.ai field
==========================================  =====================================================
source                                      the connector's name (``kore``): where rows came from
interval_start_utc, interval_end_utc        ``intervalStartTimeStamp``, ``intervalEndTimeStamp``
interval_start_local, utc_offset_min        the UTC start (naive), 0: Kore.ai intervals are UTC
queue_id, queue_name                        ``queueId``, ``queueName``
channel                                     ``source`` (through ``channel_map``, e.g. ``rtm``)
offered, answered, abandoned, completed     ``offeredContacts``, ``answeredContacts``,
                                            ``abandonedContacts``, ``completedContacts``
wait_answered_ms, wait_answered_max_ms      ``queueHoldTimeAnswered``,
                                            ``maxQueueHoldTimeAnswered``
wait_abandoned_ms, wait_abandoned_max_ms    ``queueHoldTimeAbandoned``,
                                            ``maxqueueHoldTimeAbandoned`` (sic)
talk_ms, hold_ms, acw_ms, handle_ms         ``conversationTalkTime``, ``holdDuration``,
                                            ``acwDuration``, ``conversationHandleTime``
messages, csat_responses, csat_score        ``messageCount``, ``csatResponses``, ``csatScore``
short_abandoned, flow_out,                  our extension fields ``shortAbandonedContacts``,
answered_within_sl                          ``flowOutContacts``, ``answeredWithinServiceLevel``
                                            (null when absent: Kore.ai does not send them)
open, abandoned_within_sl                   null (no field carries them)
==========================================  =====================================================

Durations are multiplied by 1000 when the unit is seconds. Not imported: ``_id``, ``orgId``,
``__v``, ``iId`` (identity and bookkeeping), ``savedMessageCount`` (no canonical column), and the
derived ``serviceLevel``/``averageHandleTime``/``averageSpeedOfAnswer`` (ratios are derived, never
stored). :func:`validate_rows` quarantines rows that cannot be imported and keeps one row per
interval x queue x channel (the latest landed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import polars as pl

from engine.schema import CALLVOLUME, CHANNELS, QUARANTINE

__all__ = [
    "COUNT_FIELDS",
    "DURATION_FIELDS",
    "KORE_CALLVOLUME",
    "RECORD_DTYPE",
    "kore_rows_to_callvolume",
    "validate_rows",
]

DurationUnit = Literal["ms", "s"]

#: volume column <- Kore.ai count field
COUNT_FIELDS: Final = {
    "offered": "offeredContacts",
    "answered": "answeredContacts",
    "abandoned": "abandonedContacts",
    "completed": "completedContacts",
    "messages": "messageCount",
    "csat_responses": "csatResponses",
    "csat_score": "csatScore",
    "short_abandoned": "shortAbandonedContacts",
    "flow_out": "flowOutContacts",
    "answered_within_sl": "answeredWithinServiceLevel",
}
#: volume column <- Kore.ai duration field (ms, or s x 1000)
DURATION_FIELDS: Final = {
    "wait_answered_ms": "queueHoldTimeAnswered",
    "wait_answered_max_ms": "maxQueueHoldTimeAnswered",
    "wait_abandoned_ms": "queueHoldTimeAbandoned",
    "wait_abandoned_max_ms": "maxqueueHoldTimeAbandoned",
    "talk_ms": "conversationTalkTime",
    "hold_ms": "holdDuration",
    "acw_ms": "acwDuration",
    "handle_ms": "conversationHandleTime",
}
_TEXT: Final = ("_id", "intervalStartTimeStamp", "intervalEndTimeStamp", "orgId", "queueId")
_TEXT2: Final = ("source", "iId", "queueName")
#: The fields of a row the mapping reads (unknown keys are ignored); durations may be fractional.
RECORD_DTYPE: Final[pl.Struct] = pl.Struct(
    {
        **dict.fromkeys((*_TEXT, *_TEXT2), pl.String()),
        "__v": pl.Int64(),
        **dict.fromkeys(COUNT_FIELDS.values(), pl.Int64()),
        **dict.fromkeys(DURATION_FIELDS.values(), pl.Float64()),
    }
)
#: The imported table: the volume table's columns with ``source`` first.
KORE_CALLVOLUME: Final[dict[str, pl.DataType]] = {"source": pl.String(), **CALLVOLUME}
_REASON, _DETAIL = "__reason", "__detail"
_MEASURES: Final = (*COUNT_FIELDS, *DURATION_FIELDS)
_NUMBERS: Final = ("__v", *COUNT_FIELDS.values(), *DURATION_FIELDS.values())


def _timestamp(name: str) -> pl.Expr:
    text = pl.col(name).cast(pl.String).str.strip_chars()
    return text.str.to_datetime("%+", time_unit="us", time_zone="UTC", strict=False)


def _vendor(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Every field of :data:`RECORD_DTYPE` present (null when absent), as its dtype."""
    have = frame.collect_schema()
    return frame.with_columns(
        pl.col(name).cast(dtype, strict=False) if name in have else pl.lit(None, dtype).alias(name)
        for name, dtype in RECORD_DTYPE.to_schema().items()
    )


def _ms(field: str, unit: DurationUnit) -> pl.Expr:
    value = pl.col(field) * (1000 if unit == "s" else 1)
    return pl.when(value == value.round()).then(value.round()).cast(pl.Int64, strict=False)


def _channel(channel_map: Mapping[str, str] | None) -> pl.Expr:
    text = pl.col("source").str.strip_chars()
    if channel_map:
        text = text.replace(dict(channel_map))
    known = text.is_in(CHANNELS.categories.to_list())
    return pl.when(known).then(text).cast(CHANNELS)


def kore_rows_to_callvolume(
    frame: pl.LazyFrame | pl.DataFrame,
    *,
    unit: DurationUnit = "ms",
    channel_map: Mapping[str, str] | None = None,
    source: str = "kore",
) -> pl.LazyFrame:
    """Kore.ai ``CallVolumeUpdate`` rows (one column per field) -> volume table rows.

    A pure mapping, one row out per row in: values that do not parse become null (see
    :func:`validate_rows` for the checks that quarantine them).

    Args:
        frame: rows with Kore.ai's field names (absent fields are null, unknown ones ignored).
        unit: the duration unit of the rows, ``ms`` (default) or ``s``.
        channel_map: vendor ``source`` values that are not channels -> channel (``{"rtm":
            "voice"}``).
        source: the value of the ``source`` column.

    Returns:
        :data:`KORE_CALLVOLUME` columns.

    Example:
        >>> row = {"intervalStartTimeStamp": "2023-06-01T09:45:00.000Z", "source": "voice",
        ...        "intervalEndTimeStamp": "2023-06-01T10:00:00.000Z", "queueId": "qu-1",
        ...        "offeredContacts": 1, "holdDuration": 2}
        >>> out = kore_rows_to_callvolume(pl.DataFrame([row]), unit="s").collect()
        >>> out.select("channel", "offered", "hold_ms", "open").row(0)
        ('voice', 1, 2000, None)
    """
    start = _timestamp("intervalStartTimeStamp")
    return (
        _vendor(frame.lazy())
        .select(
            pl.lit(source, pl.String).alias("source"),
            start.alias("interval_start_utc"),
            _timestamp("intervalEndTimeStamp").alias("interval_end_utc"),
            start.dt.replace_time_zone(None).alias("interval_start_local"),
            pl.when(start.is_not_null()).then(pl.lit(0, pl.Int32)).alias("utc_offset_min"),
            pl.col("queueId").alias("queue_id"),
            pl.col("queueName").alias("queue_name"),
            _channel(channel_map).alias("channel"),
            *(pl.col(theirs).alias(ours) for ours, theirs in COUNT_FIELDS.items()),
            *(_ms(theirs, unit).alias(ours) for ours, theirs in DURATION_FIELDS.items()),
        )
        .with_columns(pl.lit(None, pl.Int64).alias(c) for c in ("open", "abandoned_within_sl"))
        .select(KORE_CALLVOLUME.keys())
        .cast(KORE_CALLVOLUME)  # type: ignore[arg-type]
    )


def _flags(unit: DurationUnit, channel_map: Mapping[str, str] | None, minutes: int) -> pl.Expr:
    """The first reason a vendor row cannot be imported, else null."""
    start, end = _timestamp("intervalStartTimeStamp"), _timestamp("intervalEndTimeStamp")
    given = [pl.col(f).is_not_null() for f in DURATION_FIELDS.values()]
    whole = [_ms(f, unit).is_not_null() for f in DURATION_FIELDS.values()]
    checks: list[tuple[pl.Expr, str]] = [
        (pl.any_horizontal(pl.col(c).is_null() for c in ("queueId", "source")), "missing_id"),
        (pl.col("intervalStartTimeStamp").is_null(), "missing_timestamp"),
        (start.is_null() | end.is_null(), "unparsable_timestamp"),
        (end - start != pl.duration(minutes=minutes), "bad_interval"),
        (_channel(channel_map).is_null(), "unknown_channel"),
        (pl.any_horizontal(g & ~w for g, w in zip(given, whole, strict=True)), "wrong_type"),
        (pl.any_horizontal(pl.col(f) < 0 for f in _NUMBERS), "negative_value"),
    ]
    reason = pl.lit(None, pl.String)
    for flag, why in reversed(checks):
        reason = pl.when(flag.fill_null(value=False)).then(pl.lit(why)).otherwise(reason)
    return reason


def validate_rows(
    landed: pl.LazyFrame,
    *,
    unit: DurationUnit = "ms",
    channel_map: Mapping[str, str] | None = None,
    interval_minutes: int = 15,
    source: str = "kore",
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Split decoded rows into volume rows and quarantine rows.

    Args:
        landed: one row per landed record: Kore.ai field columns, ``record_id`` and ``raw`` (the
            landed JSON payload), and ``fetched_at``, ``batch_id``, ``page_no`` (landing order).
        unit: the duration unit.
        channel_map: see :func:`kore_rows_to_callvolume`.
        interval_minutes: the expected interval length; other lengths are ``bad_interval``.
        source: the ``source`` value.

    Returns:
        ``(rows, quarantine)``: :data:`KORE_CALLVOLUME` rows, one per interval x queue x channel
        (the latest landed wins; two different rows landed at the same position both go to
        quarantine as ``conflicting_duplicate``), and :data:`engine.schema.QUARANTINE` rows.
    """
    vendor = _vendor(landed).with_columns(
        _flags(unit, channel_map, interval_minutes).alias(_REASON)
    )
    mapped = kore_rows_to_callvolume(vendor, unit=unit, channel_map=channel_map, source=source)
    keep = ["record_id", "raw", "fetched_at", "batch_id", "page_no", _REASON]
    both = pl.concat([mapped, vendor.select(keep)], how="horizontal")
    key = ["interval_start_utc", "queue_id", "channel"]
    passed = both.filter(pl.col(_REASON).is_null())
    order = pl.struct("fetched_at", "batch_id", "page_no")
    latest = passed.filter(order.rank("dense", descending=True).over(key) == 1)
    measures = pl.struct(*_MEASURES, "queue_name", "interval_end_utc")
    clash = measures.n_unique().over(key) > 1
    conflicts = latest.filter(clash).with_columns(pl.lit("conflicting_duplicate").alias(_REASON))
    rows = latest.filter(~clash).unique(subset=key, keep="any").select(KORE_CALLVOLUME.keys())
    bad = pl.concat([both.filter(pl.col(_REASON).is_not_null()), conflicts])
    quarantine = bad.select(
        pl.lit(source, pl.String).alias("source"),
        pl.lit(f"callvolume_{source}").alias("table"),
        pl.col("record_id").cast(pl.String),
        pl.col(_REASON).alias("reason"),
        pl.lit(None, pl.String).alias("detail"),
        pl.col("raw").cast(pl.String),
    ).cast(QUARANTINE)  # type: ignore[arg-type]
    return rows.sort(key), quarantine
