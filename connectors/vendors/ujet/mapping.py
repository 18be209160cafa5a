"""The UJET call and chat mapping, in one vectorised plan (see
:mod:`connectors.vendors.ujet.client`).

The records are read from the landing store's ``record`` column (the payload decoded to
:data:`RECORD_DTYPE` when the page landed: a rebuild parses no JSON; the store decodes files
landed before that column existed as it scans them). A frame of landed records without the
column (scanned without the dtype) is decoded here with the store's own function,
:func:`connectors.landing.with_record` (a batch-level ``map_batches`` in the lazy plan).
``queue_durations`` is exploded with its index (one canonical segment per entry); each
answered entry takes the handle entry and the agent participant of the same answered rank
(``list.get``: a positional join, never a cross join); queue names come from the record's menu
objects (``menu_path``, ``selected_menu``, and a join on the menus of ``transfers``).

The segments are not validated here: the canonical rules are applied once, at the pipeline
edge, to the rows of every source (times stay ISO text for it to parse). Each row names its
record (``record_id``, the landed id), so that the edge quarantines a record whole, with its
landed payload. The few problems the mapping alone can see (an answered entry without its handle
entry, a rating outside 0-5, a negative message count) are quarantined here, the record whole
with its payload (the first flagged segment gives the reason), and its rows are left out.

Example:
    >>> from connectors.landing import LANDING_SCHEMA
    >>> rows, bad = segments_and_quarantine(pl.LazyFrame(schema=LANDING_SCHEMA), endpoint="calls")
    >>> rows.collect().height, bad.collect().height
    (0, 0)
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import polars as pl

from connectors.landing import RECORD, with_record
from connectors.normalise import whole_ms
from connectors.source import Normalised
from engine.schema import QUARANTINE

__all__ = [
    "ABANDON_REASONS",
    "ABANDON_STATUSES",
    "ACTIVE_STATUSES",
    "FLOW_OUT_EVENTS",
    "FLOW_OUT_STATUSES",
    "RECORD_DTYPE",
    "SOURCE",
    "segments_and_quarantine",
]

SOURCE = "ujet"
_MENU = pl.Struct({"name": pl.String, "materialized_path": pl.String})
_SECONDS = pl.Float64  # durations are whole seconds in the seed; fractions would still be exact ms
#: The fields of a call or chat record the mapping reads (unknown keys are ignored).
RECORD_DTYPE: pl.DataType = pl.Struct(
    {
        "call_type": pl.String,
        "status": pl.String,
        "fail_reason": pl.String,
        "updated_at": pl.String,
        "rating": pl.Int64,
        "message_count": pl.Int64,
        "selected_menu": pl.Struct({"id": pl.String, "name": pl.String}),
        "menu_path": _MENU,
        "transfers": pl.List(pl.Struct({"from_menu": _MENU, "to_menu": _MENU})),
        "queue_durations": pl.List(
            pl.Struct(
                {
                    "menu_path_id": pl.String,
                    "queue_duration": _SECONDS,
                    "started_at": pl.String,
                    "ended_at": pl.String,
                    "service_level_target_time": _SECONDS,
                    "event": pl.String,
                }
            )
        ),
        "handle_durations": pl.List(
            pl.Struct(
                {
                    "call_duration": _SECONDS,
                    "chat_duration": _SECONDS,
                    "acw_duration": _SECONDS,
                    "ended_at": pl.String,
                }
            )
        ),
        "participants": pl.List(pl.Struct({"type": pl.String, "hold_duration": _SECONDS})),
    }
)
FLOW_OUT_EVENTS = ("transferred", "deflected", "voicemail", "scheduled", "expired")
#: Record states in which a queue entry without an event is still waiting (calls and chats).
ACTIVE_STATUSES = (
    "selecting",
    "queued",
    "assigned",
    "connecting",
    "switching",
    "connected",
    "action_only",
)
ABANDON_REASONS = ("eu_abandoned", "eu_canceled", "eu_rejected", "eu_in_menu_abandoned")
ABANDON_STATUSES = ("canceled", "no_response")
FLOW_OUT_STATUSES = (
    "deflected",
    "voicemail",
    "voicemail_received",
    "voicemail_read",
    "scheduled",
    "recovered",
    "failed",
)
_REASON, _DETAIL = "__reason", "__detail"
#: A call's ``call_type``, as the seed lists it (display names, and the class names its query
#: filter takes): the outbound ones, then the rest. Any other is quarantined
#: (``unknown_direction``), never taken for inbound.
OUTBOUND_CALL_TYPES = ("Voice Outbound", "OutboundCall")
CALL_TYPES = (
    *OUTBOUND_CALL_TYPES,
    *("Voice Inbound (IVR)", "Voice Inbound (App)", "Voice Callback (Web)"),
    *("Voice Scheduled (App)", "Voice Scheduled (Web)", "IncomingCallApp", "ScheduledCallApp"),
    *("AgentScheduledCall", "IvrCall", "IncomingCallWeb", "ScheduledCallWeb", "ActionOnlyCall"),
)


def _contact_id(unit: str) -> pl.Expr:
    return pl.concat_str(pl.lit(f"{unit}-"), "record_id").alias("contact_id")


def _menu_id(path: pl.Expr) -> pl.Expr:
    """The menu id a ``materialized_path`` ends in (``"10/3002"`` -> ``"3002"``)."""
    return path.str.extract(r"([^/]+)$")


_LANDED_JSON_ONLY = pl.Schema(
    {"record_id": pl.String(), "payload": pl.String(), RECORD: RECORD_DTYPE}
)


def _fields(landed: pl.LazyFrame) -> pl.LazyFrame:
    """``record_id`` and the fields of :data:`RECORD_DTYPE`: from the landed ``record`` column
    (the stream lands decoded), else decoded from ``payload`` here the way the landing store
    decodes (:func:`connectors.landing.with_record`), for frames landed as JSON only."""
    if RECORD not in landed.collect_schema().names():
        landed = landed.select("record_id", "payload").map_batches(
            partial(with_record, dtype=RECORD_DTYPE), schema=_LANDED_JSON_ONLY, streamable=True
        )
    return landed.select("record_id", pl.col(RECORD).cast(RECORD_DTYPE).struct.unnest())


def _records(landed: pl.LazyFrame, unit: str) -> pl.LazyFrame:
    """One row per landed record: the decoded fields the mapping reads."""
    answered = pl.element().struct.field("event") == "answered"
    return _fields(landed).with_columns(
        _contact_id(unit),
        pl.col("queue_durations").list.len().fill_null(0).cast(pl.Int32).alias("__n"),
        pl.col("queue_durations").list.eval(answered).alias("__answered"),
    )


def _segments(records: pl.LazyFrame, unit: str) -> pl.LazyFrame:
    """One row per ``queue_durations`` entry, with its handle entry and agent by answered rank."""
    is_agent = pl.element().struct.field("type") == "agent"
    n_answered = pl.col("__n_answered").cast(pl.Int64)
    # The answered rank is a running count over the whole exploded column minus the answered
    # entries of the records before (explode keeps the order): a per-list ``cum_sum`` in
    # ``list.eval`` cost ~0.5 µs per record, this costs next to nothing. The values are the old
    # ones (-1 before the first answered entry; null where ``__answered`` is null), and what an
    # entry that is not answered looks up by its rank is never used.
    rank = pl.col("__answered").cast(pl.Int64).cum_sum() - pl.col("__before") - 1
    exploded = (
        records.filter(pl.col("__n") > 0)
        .with_columns(
            pl.int_ranges(0, "__n", dtype=pl.Int32).alias("__idx"),
            pl.col("__answered").list.sum().alias("__n_answered"),
            pl.col("participants").list.filter(is_agent).alias("__agents"),
        )
        .with_columns((n_answered.cum_sum() - n_answered).alias("__before"))
        .explode(["queue_durations", "__idx", "__answered"])
        .with_columns(rank.alias("__rank"))
    )
    q = pl.col("queue_durations").struct.field
    rank_col = pl.col("__rank")
    segs = exploded.select(
        "record_id",
        "contact_id",
        "__idx",
        "__rank",
        "__n",
        "__answered",
        "__n_answered",
        *(pl.col(c) for c in ("call_type", "status", "fail_reason", "updated_at")),
        *(pl.col(c) for c in ("rating", "message_count", "menu_path", "selected_menu")),
        *(q(f).alias(f"q_{f}") for f in ("menu_path_id", "queue_duration", "started_at")),
        *(q(f).alias(f"q_{f}") for f in ("ended_at", "service_level_target_time", "event")),
        pl.col("handle_durations").list.get(rank_col, null_on_oob=True).alias("__handle"),
        pl.col("__agents").list.get(rank_col, null_on_oob=True).alias("__agent"),
    )
    # Names of the menus a contact was transferred between (only records with transfers).
    menu = pl.col("__menu").struct.field
    transfer_names = (
        records.filter(pl.col("transfers").list.len() > 0)
        .select(
            "contact_id",
            pl.concat_list(
                pl.col("transfers").list.eval(pl.element().struct.field("to_menu")),
                pl.col("transfers").list.eval(pl.element().struct.field("from_menu")),
            ).alias("__menu"),
        )
        .explode("__menu")
        .select(
            "contact_id",
            _menu_id(menu("materialized_path")).alias("q_menu_path_id"),
            menu("name").alias("__transfer_name"),
        )
        .filter(pl.col("__transfer_name").is_not_null())
        .unique(["contact_id", "q_menu_path_id"], keep="any")
    )
    return segs.join(transfer_names, on=["contact_id", "q_menu_path_id"], how="left")


def _outcome() -> pl.Expr:
    event, status, reason = pl.col("q_event"), pl.col("status"), pl.col("fail_reason")
    last = pl.col("__idx") == pl.col("__n") - 1
    from_status = (
        pl.when(status.is_null() | status.is_in(ACTIVE_STATUSES))
        .then(pl.lit("open"))
        .when(reason.is_in(ABANDON_REASONS) | status.is_in(ABANDON_STATUSES))
        .then(pl.lit("abandoned"))
        .when(status.is_in(FLOW_OUT_STATUSES) | (reason == "expired"))
        .then(pl.lit("flow_out"))
        .otherwise(pl.concat_str(pl.lit("status="), status))
    )
    return (
        pl.when(event.is_in(("answered", "abandoned")))
        .then(event)
        .when(event.is_in(FLOW_OUT_EVENTS))
        .then(pl.lit("flow_out"))
        .when(event.is_null() & last)
        .then(from_status)
        .when(event.is_null())
        .then(pl.lit("open"))
        .otherwise(event)
    )


def _ms(seconds: pl.Expr) -> pl.Expr:
    return whole_ms(seconds * 1000)


def _carrier() -> pl.Expr:
    """The segment that carries messages and the survey: the last answered, else the last."""
    n_answered = pl.col("__n_answered")
    last_answered = pl.col("__answered") & (pl.col("__rank") == n_answered - 1)
    return (
        pl.when(n_answered > 0).then(last_answered).otherwise(pl.col("__idx") == pl.col("__n") - 1)
    )


def _canonical(unit: str) -> list[pl.Expr]:
    """The canonical columns of a segment and its ``record_id`` (times still ISO strings: the
    validation at the pipeline edge parses them)."""
    answered = pl.col("__answered")
    handle = pl.col("__handle").struct.field
    rating = pl.col("rating")
    surveyed = _carrier() & rating.is_between(1, 5)
    channel, direction = (
        ("voice", pl.col("call_type").is_in(OUTBOUND_CALL_TYPES))
        if unit == "call"
        else ("chat", pl.lit(value=False))
    )
    menu_path, selected = pl.col("menu_path").struct.field, pl.col("selected_menu").struct.field
    queue_id = pl.col("q_menu_path_id")
    messages = pl.col("message_count") if unit == "chat" else pl.lit(0, pl.Int64)
    return [
        pl.lit(SOURCE).alias("source"),
        pl.col("contact_id"),
        (pl.col("__idx") + 1).alias("segment_no"),
        pl.lit(channel).alias("channel"),
        pl.when(direction).then(pl.lit("outbound")).otherwise(pl.lit("inbound")).alias("direction"),
        queue_id.alias("queue_id"),
        pl.coalesce(
            pl.when(_menu_id(menu_path("materialized_path")) == queue_id).then(menu_path("name")),
            pl.when(selected("id") == queue_id).then(selected("name")),
            pl.col("__transfer_name"),
        ).alias("queue_name"),
        pl.col("q_started_at").alias("offered_at"),
        pl.when(answered).then(pl.col("q_ended_at")).alias("answered_at"),
        pl.when(answered)
        .then(handle("ended_at"))
        .otherwise(pl.col("q_ended_at"))
        .alias("ended_at"),
        _outcome().alias("outcome"),
        _ms(pl.col("q_queue_duration")).alias("wait_ms"),
        pl.when(answered).then(_ms(handle(f"{unit}_duration"))).otherwise(0).alias("talk_ms"),
        pl.when(answered)
        .then(_ms(pl.col("__agent").struct.field("hold_duration")).fill_null(0))
        .otherwise(0)
        .alias("hold_ms"),
        pl.when(answered).then(_ms(handle("acw_duration"))).otherwise(0).alias("acw_ms"),
        _ms(pl.col("q_service_level_target_time")).alias("sl_threshold_ms"),
        pl.when(_carrier()).then(messages.fill_null(0)).otherwise(0).alias("messages"),
        pl.when(surveyed).then(1).otherwise(0).cast(pl.Int64).alias("csat_responses"),
        pl.when(surveyed).then(rating).otherwise(0).alias("csat_score"),
        pl.col("updated_at"),
        pl.col("record_id"),
    ]


def _flags(unit: str) -> list[pl.Expr]:
    """Mapping problems the canonical validator cannot see (first one wins)."""
    call_type = pl.col("call_type")
    checks = [
        (
            pl.col("__answered") & pl.col("__handle").is_null(),
            "inconsistent_record",
            "handle_durations",
        ),
        (
            pl.lit(unit == "call") & call_type.is_not_null() & ~call_type.is_in(CALL_TYPES),
            "unknown_direction",
            "call_type",
        ),
        (~pl.col("rating").is_between(0, 5), "wrong_type", "rating"),
        (pl.col("message_count") < 0, "negative_duration", "message_count"),
    ]
    reason, detail = pl.lit(None, pl.String), pl.lit(None, pl.String)
    for flag, why, where in reversed(checks):
        reason = pl.when(flag.fill_null(value=False)).then(pl.lit(why)).otherwise(reason)
        detail = pl.when(flag.fill_null(value=False)).then(pl.lit(where)).otherwise(detail)
    return [reason.alias(_REASON), detail.alias(_DETAIL)]


def segments_and_quarantine(
    landed: pl.LazyFrame, *, endpoint: Literal["calls", "chats"]
) -> Normalised:
    """Landed records of ``calls`` or ``chats`` -> canonical segments (not yet validated, each
    with its ``record_id``) and the quarantine of what the mapping alone can see."""
    unit = endpoint[:-1]
    records = _records(landed, unit).cache()
    segments = _segments(records, unit)
    loose = segments.select(*_canonical(unit), *_flags(unit)).cache()
    bad = (
        loose.filter(pl.col(_REASON).is_not_null())
        .select("contact_id", "segment_no", _REASON, _DETAIL)
        .sort("contact_id", "segment_no", maintain_order=True)
        .unique("contact_id", keep="first", maintain_order=True)
    )
    quarantine = (
        bad.join(landed.select(_contact_id(unit), "payload"), on="contact_id", how="left")
        .select(
            pl.lit(SOURCE).alias("source"),
            pl.lit("contacts").alias("table"),
            pl.col("contact_id").alias("record_id"),
            pl.col(_REASON).alias("reason"),
            pl.col(_DETAIL).alias("detail"),
            pl.col("payload").alias("raw"),
        )
        .cast(QUARANTINE)  # type: ignore[arg-type]
    )
    rows = loose.join(bad.select("contact_id"), on="contact_id", how="anti").drop(_REASON, _DETAIL)
    return Normalised(rows, quarantine)
