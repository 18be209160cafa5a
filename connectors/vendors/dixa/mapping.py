"""Dixa records -> canonical contacts through a configurable field mapping (vectorised).

The mapping is a setting: *record field* -> *canonical column*, where a record field is a field
``name`` (its value) or ``name.label`` (its label). :data:`DEFAULT_FIELD_MAPPING` reads the
``conversations`` record (one record per queue offer; see
:mod:`connectors.emulator.dixa.record` for the emulator's side of the contract):

==================================  ===========================================================
record field (``_type``)            canonical column
==================================  ===========================================================
``csid`` (Long)                     ``contact_id`` (decimal string)
``offer_number`` (Long)             ``segment_no`` (1 when not mapped: one record per contact)
``initial_channel`` (String)        ``channel`` through ``channel_map`` (:data:`CHANNEL_MAP`)
``initial_direction`` (String)      ``direction`` (lower-cased)
``queue_id`` / ``queue_id.label``   ``queue_id`` / ``queue_name``
``offered_at``, ``answered_at``,    ``offered_at``, ``answered_at``, ``ended_at``,
``ended_at``, ``updated_at``        ``updated_at`` (Timestamp)
``queue_outcome`` (String)          ``outcome`` through ``outcome_map`` (:data:`OUTCOME_MAP`)
``queue_time``, ``talk_time``,      ``wait_ms``, ``talk_ms``, ``hold_ms``, ``acw_ms``,
``hold_time``, ``wrap_up_time``,    ``sl_threshold_ms``: numbers in ``duration_unit``
``sla_threshold`` (Double)          (default seconds) x 1000, rounded to whole ms
``message_count``, ``rating_count``,  ``messages``, ``csat_responses``, ``csat_score``
``rating_score`` (Long)
==================================  ===========================================================

Values are handed on as text (times, counts) or as exact milliseconds (durations), each row
named by its ``record_id`` (the landed id): the validation at the pipeline edge applies the
canonical rules once, so a value of a wrong or unknown type is quarantined there with its reason
(``wrong_type``, ``unparsable_timestamp``, ``unknown_channel``, ...) and the landed payload as
``raw``, never fatal. A field absent from a record is null (absent counts and durations are 0,
an absent ``wait_ms`` is derived from the times, as the validation does).

Example:
    >>> from connectors.landing import LANDING_SCHEMA
    >>> landed = pl.LazyFrame(schema=LANDING_SCHEMA)
    >>> normalise(landed, mapping=DEFAULT_FIELD_MAPPING).rows.collect().height
    0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import polars as pl

from connectors.normalise import whole_ms
from connectors.source import Normalised
from connectors.vendors.dixa.fields import decode_fields
from engine.schema import CONTACTS, SOURCE_RECORD, empty_quarantine

__all__ = [
    "CHANNEL_MAP",
    "DEFAULT_FIELD_MAPPING",
    "DURATION_COLUMNS",
    "OUTCOME_MAP",
    "REQUIRED_COLUMNS",
    "SOURCE",
    "DurationUnit",
    "Reader",
    "field_value",
    "normalise",
    "record_key",
]

SOURCE: Final = "dixa"
DurationUnit = Literal["s", "ms"]
Reader = Callable[[Mapping[str, Any]], object]
DEFAULT_FIELD_MAPPING: Final[Mapping[str, str]] = {
    "csid": "contact_id",
    "offer_number": "segment_no",
    "initial_channel": "channel",
    "initial_direction": "direction",
    "queue_id": "queue_id",
    "queue_id.label": "queue_name",
    "offered_at": "offered_at",
    "answered_at": "answered_at",
    "ended_at": "ended_at",
    "queue_outcome": "outcome",
    "queue_time": "wait_ms",
    "talk_time": "talk_ms",
    "hold_time": "hold_ms",
    "wrap_up_time": "acw_ms",
    "sla_threshold": "sl_threshold_ms",
    "message_count": "messages",
    "rating_count": "csat_responses",
    "rating_score": "csat_score",
    "updated_at": "updated_at",
}
#: Dixa ``initial_channel`` values -> canonical channels (upper-cased before lookup).
CHANNEL_MAP: Final[Mapping[str, str]] = {
    "PSTN_PHONE": "voice",
    "CALLBACK": "callback",
    "WIDGET_CHAT": "chat",
    "EMAIL": "email",
    "CONTACT_FORM": "email",
    "WHATSAPP": "messaging",
    "FACEBOOK_MESSENGER": "messaging",
    "SMS": "messaging",
}
#: Dixa ``queue_outcome`` values -> canonical outcomes (upper-cased before lookup).
OUTCOME_MAP: Final[Mapping[str, str]] = {
    "ANSWERED": "answered",
    "ABANDONED": "abandoned",
    "WAITING": "open",
    "TRANSFERRED": "flow_out",
    "VOICEMAIL": "flow_out",
    "CALLBACK_REQUESTED": "flow_out",
    "TIMEOUT": "flow_out",
}
DURATION_COLUMNS: Final = ("wait_ms", "talk_ms", "hold_ms", "acw_ms", "sl_threshold_ms")
#: Canonical columns the mapping must fill (``source`` is constant, ``segment_no`` defaults).
REQUIRED_COLUMNS: Final = ("contact_id", "channel", "queue_id", "offered_at", "outcome")


def field_value(record: Mapping[str, Any], ref: str) -> Any:
    """The value (or, for ``name.label``, the label) of a field of a raw record, else ``None``.

    Example:
        >>> rec = {"fields": [{"name": "queue_id", "field": {"value": "q1", "label": "Sales"}}]}
        >>> field_value(rec, "queue_id"), field_value(rec, "queue_id.label")
        ('q1', 'Sales')
    """
    name, _, part = ref.partition(".")
    fields = record.get("fields")
    for item in fields if isinstance(fields, list) else ():
        if isinstance(item, dict) and item.get("name") == name:
            inner = item.get("field")
            return inner.get(part or "value") if isinstance(inner, dict) else None
    return None


def record_key(mapping: Mapping[str, str]) -> tuple[Reader, Reader]:
    """``(record_id, updated_at)`` readers for the landing store, from the mapping.

    The record id is ``"<contact_id>:<segment_no>"`` (segment 1 when unmapped), exactly the id
    the validator gives the canonical row; ``updated_at`` is the mapped field, else the record's
    primary timestamp.
    """
    by_column = {column: ref for ref, column in mapping.items()}
    contact, segment = by_column.get("contact_id", ""), by_column.get("segment_no")
    updated = by_column.get("updated_at")

    def record_id(record: Mapping[str, Any]) -> object:
        cid = field_value(record, contact)
        if isinstance(cid, bool) or not isinstance(cid, str | int) or cid == "":
            return None
        seg = field_value(record, segment) if segment else 1
        return f"{cid}:{seg}" if isinstance(seg, int | str) and not isinstance(seg, bool) else None

    def updated_at(record: Mapping[str, Any]) -> object:
        if updated:
            return field_value(record, updated)
        primary = record.get("primaryTimestampField")
        return primary.get("timestamp") if isinstance(primary, dict) else None

    return record_id, updated_at


def _column(
    ref: str, column: str, unit: DurationUnit, maps: Mapping[str, Mapping[str, str]]
) -> pl.Expr:
    """The canonical column (as text or exact ms) from one field's long rows."""
    text = pl.col("text")
    if ref.endswith(".label"):
        return pl.col("label")
    if column in DURATION_COLUMNS:
        number = pl.coalesce(
            pl.col("double"), pl.col("long").cast(pl.Float64), text.cast(pl.Float64, strict=False)
        )
        ms = whole_ms(number * (1000 if unit == "s" else 1))  # no overflow read as an absent 0
        return pl.when(number.is_finite()).then(ms.cast(pl.String)).otherwise(text)
    if column in maps:
        upper = text.str.to_uppercase()
        return upper.replace_strict(dict(maps[column]), default=text, return_dtype=pl.String)
    if column == "direction":
        return text.str.to_lowercase()
    return text


def _canonical(
    fields: pl.LazyFrame,
    mapping: Mapping[str, str],
    unit: DurationUnit,
    maps: Mapping[str, Mapping[str, str]],
) -> pl.LazyFrame:
    """One row per record: ``record_id`` and the mapped canonical columns (loose text for the
    validation at the pipeline edge)."""
    columns = [
        _column(ref, column, unit, maps)
        .filter(pl.col("name") == ref.partition(".")[0])
        .first()
        .alias(column)
        for ref, column in mapping.items()
    ]
    names = sorted({ref.partition(".")[0] for ref in mapping})
    wide = fields.filter(pl.col("name").is_in(names)).group_by("record_id").agg(columns)
    extra = [pl.lit(SOURCE).alias("source")]
    if "segment_no" not in mapping.values():
        extra.append(pl.lit("1").alias("segment_no"))
    return wide.with_columns(extra)


def normalise(
    landed: pl.LazyFrame,
    *,
    mapping: Mapping[str, str],
    duration_unit: DurationUnit = "s",
    channel_map: Mapping[str, str] = CHANNEL_MAP,
    outcome_map: Mapping[str, str] = OUTCOME_MAP,
) -> Normalised:
    """Landed Dixa records -> canonical contacts (not yet validated, each with its landed
    ``record_id``); the mapping itself quarantines nothing.

    Args:
        landed: landed records (:data:`~connectors.landing.LANDING_SCHEMA`), de-duplicated.
        mapping: record field -> canonical column (see the module docstring).
        duration_unit: unit of the numbers mapped to ``*_ms`` columns.
        channel_map: Dixa channel -> canonical channel.
        outcome_map: Dixa outcome -> canonical outcome.
    """
    maps = {"channel": channel_map, "outcome": outcome_map}
    loose = _canonical(decode_fields(landed), mapping, duration_unit, maps)
    columns = [c for c in CONTACTS if c in _columns(mapping)]
    return Normalised(loose.select(*columns, SOURCE_RECORD), empty_quarantine().lazy())


def _columns(mapping: Mapping[str, str]) -> set[str]:
    return {"source", "segment_no", *mapping.values()}
