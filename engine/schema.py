"""The canonical contract: table schemas shared by the connectors and the engine.

Timestamps are ``Datetime("us", "UTC")``; durations are integer milliseconds (``Int64``, suffix
``_ms``) so that sums are exact and order-independent; enumerations are ``pl.Enum`` so that
comparisons in the hot aggregation path are integer comparisons.

Example:
    >>> import polars as pl
    >>> from engine.schema import CONTACTS, empty_contacts
    >>> empty_contacts().schema == pl.Schema(CONTACTS)
    True
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = [
    "CALLBACK_ATTEMPTS",
    "CALLBACK_FIRST_PARTIES",
    "CALLBACK_OUTCOMES",
    "CALLBACK_SOURCE_TYPES",
    "CALLBACK_TYPES",
    "CALLVOLUME",
    "CALLVOLUME_MAXIMA",
    "CALLVOLUME_SUMS",
    "CHANNELS",
    "CONTACTS",
    "CONTACTS_KEY",
    "CONTACTS_REQUIRED",
    "DIRECTIONS",
    "GRID",
    "OUTCOMES",
    "QUARANTINE",
    "SOURCE_RECORD",
    "UTC_TS",
    "empty_contacts",
    "empty_quarantine",
]

UTC_TS: Final = pl.Datetime("us", "UTC")

CHANNELS: Final = pl.Enum(["voice", "chat", "email", "callback", "messaging"])
DIRECTIONS: Final = pl.Enum(["inbound", "outbound"])
OUTCOMES: Final = pl.Enum(["answered", "abandoned", "flow_out", "open"])

#: SPEC §3.1: one row per queue segment (one offer of a contact to one queue).
CONTACTS: Final[dict[str, pl.DataType]] = {
    "source": pl.String(),
    "contact_id": pl.String(),
    "segment_no": pl.Int32(),
    "channel": CHANNELS,
    "direction": DIRECTIONS,
    "queue_id": pl.String(),
    "queue_name": pl.String(),
    "offered_at": UTC_TS,
    "answered_at": UTC_TS,
    "ended_at": UTC_TS,
    "outcome": OUTCOMES,
    "wait_ms": pl.Int64(),
    "talk_ms": pl.Int64(),
    "hold_ms": pl.Int64(),
    "acw_ms": pl.Int64(),
    "sl_threshold_ms": pl.Int64(),
    "messages": pl.Int64(),
    "csat_responses": pl.Int64(),
    "csat_score": pl.Int64(),
    "updated_at": UTC_TS,
}

#: The identity of a segment: unique after validation.
CONTACTS_KEY: Final = ("source", "contact_id", "segment_no")

#: Columns an input file must have; the others default (null times, zero counts and durations).
CONTACTS_REQUIRED: Final = (
    "source",
    "contact_id",
    "segment_no",
    "channel",
    "queue_id",
    "offered_at",
    "outcome",
)

CALLBACK_TYPES: Final = pl.Enum(["asap", "scheduled"])
CALLBACK_FIRST_PARTIES: Final = pl.Enum(["agent", "customer"])
CALLBACK_SOURCE_TYPES: Final = pl.Enum(["voice", "digital"])
CALLBACK_OUTCOMES: Final = pl.Enum(
    ["successful", "unavailable", "failure", "canceled", "abandoned", "other"]
)

#: SPEC §3.2: one row per callback attempt.
CALLBACK_ATTEMPTS: Final[dict[str, pl.DataType]] = {
    "source": pl.String(),
    "attempt_id": pl.String(),
    "original_id": pl.String(),
    "retry_attempt": pl.Int32(),
    "has_retry": pl.Boolean(),
    "call_target_id": pl.String(),
    "call_target_name": pl.String(),
    "type": CALLBACK_TYPES,
    "first_party_called": CALLBACK_FIRST_PARTIES,
    "source_type": CALLBACK_SOURCE_TYPES,
    "created_at": UTC_TS,
    "processed_at": UTC_TS,
    "estimated_for": UTC_TS,
    "ended_at": UTC_TS,
    "outcome": CALLBACK_OUTCOMES,
    "callback_ms": pl.Int64(),
    "estimated_callback_ms": pl.Int64(),
    "customer_wait_ms": pl.Int64(),
    "talk_ms": pl.Int64(),
    "punctuality_ms": pl.Int64(),
    "was_punctual": pl.Boolean(),
    "customer_key": pl.String(),
}

#: SPEC §7: a record that could not be normalised, with why.
QUARANTINE: Final[dict[str, pl.DataType]] = {
    "source": pl.String(),
    "table": pl.String(),
    "record_id": pl.String(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
}


#: The column a connector's canonical rows carry besides the table's own: the id of the raw
#: record each row came from, as quarantine rows name it (a record is quarantined whole, with its
#: landed payload as ``raw``, when the validation at the pipeline edge fails any of its rows).
SOURCE_RECORD: Final = "record_id"


def empty_contacts() -> pl.DataFrame:
    """An empty frame with the canonical contacts schema."""
    return pl.DataFrame(schema=CONTACTS)


def empty_quarantine() -> pl.DataFrame:
    """An empty frame with the quarantine schema."""
    return pl.DataFrame(schema=QUARANTINE)


#: The interval key columns every interval table starts with (SPEC §4).
GRID: Final[dict[str, pl.DataType]] = {
    "interval_start_utc": UTC_TS,
    "interval_end_utc": UTC_TS,
    "interval_start_local": pl.Datetime("us"),
    "utc_offset_min": pl.Int32(),
}

#: The volume table's additive columns that sum (SPEC §5), in table order.
CALLVOLUME_SUMS: Final = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "flow_out",
    "open",
    "completed",
    "answered_within_sl",
    "abandoned_within_sl",
    "wait_answered_ms",
    "wait_abandoned_ms",
    "talk_ms",
    "hold_ms",
    "acw_ms",
    "handle_ms",
    "messages",
    "csat_responses",
    "csat_score",
)
#: The volume table's additive columns that take the maximum.
CALLVOLUME_MAXIMA: Final = ("wait_answered_max_ms", "wait_abandoned_max_ms")

#: SPEC §5: the stored volume table, one row per interval x queue x channel (the Kore.ai
#: connector imports its rows into the same shape).
CALLVOLUME: Final[dict[str, pl.DataType]] = {
    **GRID,
    "queue_id": pl.String(),
    "queue_name": pl.String(),
    "channel": CHANNELS,
    **dict.fromkeys((*CALLVOLUME_SUMS, *CALLVOLUME_MAXIMA), pl.Int64()),
}
