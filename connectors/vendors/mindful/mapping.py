"""Landed Mindful historical records (seed 001) -> canonical ``callback_attempts``, vectorised.

One plan, no row loop: decode each landed ``payload`` with the explicit :data:`RECORD_DTYPE`
(unknown keys are ignored by construction) and rename to the canonical columns, each row named by
its ``record_id`` (the landed id). The validation at the pipeline edge applies the canonical rules
once: it owns the vendor spellings, the type checks, the quarantine reasons (with the landed
payload as ``raw``) and which records are not callbacks.

=========================  =====================================================================
canonical                  Mindful
=========================  =====================================================================
source                     the constant ``"mindful"``
attempt_id, original_id    ``id``, ``originalId`` (a retry shares its original's ``originalId``)
retry_attempt, has_retry   ``retryAttempt`` (0 = first), ``hasRetry``
call_target_id / _name     ``callTargetId`` / ``callTargetName``
type                       ``type``: ``asap``/``scheduled``; ``unknown`` (e.g. the caller chose
                           to hold) is not a callback: counted, never quarantined
first_party_called         ``firstPartyCalled`` (``agent``, ``customer``, ``customer_first``…)
source_type                ``source``: ``CBWidget:…`` -> digital; ``Phone:…`` or a bare phone
                           number (the number that was called) -> voice
created_at … ended_at      ``createdAt``, ``processedAt``, ``estimatedFor``, ``endedAt``
outcome                    ``outcome`` (``Success``, ``Unavailable``, ``Not Completed``…)
callback_ms                ``actualCallbackTime`` x 1000
estimated_callback_ms      ``estimatedCallbackTime`` x 1000
customer_wait_ms           ``customerWaitDuration`` x 1000
talk_ms                    ``talkDuration`` x 1000
punctuality_ms             ``punctuality`` x 1000 (signed; taken as given, not recomputed)
was_punctual               ``wasPunctual``
customer_key               ``phoneNumber``, already replaced by its keyed hash before landing
=========================  =====================================================================

Durations are decoded as numbers of seconds (``Float64``, so ``10`` and ``10.0`` both work); a
value that is not a whole number of milliseconds is quarantined as ``wrong_type`` at the edge.

Example:
    >>> from connectors.landing import LANDING_SCHEMA
    >>> canonical(pl.LazyFrame(schema=LANDING_SCHEMA)).collect().height
    0
"""

from __future__ import annotations

from typing import Final

import polars as pl

from connectors.landing import RECORD
from engine.schema import SOURCE_RECORD

__all__ = ["PHONE_SOURCE", "RECORD_DTYPE", "SOURCE", "canonical"]

SOURCE: Final = "mindful"
#: A ``source`` that is a phone number (the number called), not a widget: voice.
PHONE_SOURCE: Final = r"^\s*\+?[0-9][0-9 ().-]{5,}$"
_S, _F = pl.String(), pl.Float64()
#: The fields of a record the mapping reads, with their JSON types (seed 001).
RECORD_DTYPE: Final = pl.Struct(
    {
        "id": _S,
        "originalId": _S,
        "retryAttempt": pl.Int64(),
        "hasRetry": pl.Boolean(),
        "callTargetId": _S,
        "callTargetName": _S,
        "type": _S,
        "firstPartyCalled": _S,
        "source": _S,
        "createdAt": _S,
        "processedAt": _S,
        "estimatedFor": _S,
        "endedAt": _S,
        "outcome": _S,
        "actualCallbackTime": _F,
        "estimatedCallbackTime": _F,
        "customerWaitDuration": _F,
        "talkDuration": _F,
        "punctuality": _F,
        "wasPunctual": pl.Boolean(),
        "phoneNumber": _S,
    }
)
_RENAME: Final = {
    "attempt_id": "id",
    "original_id": "originalId",
    "retry_attempt": "retryAttempt",
    "has_retry": "hasRetry",
    "call_target_id": "callTargetId",
    "call_target_name": "callTargetName",
    "type": "type",
    "first_party_called": "firstPartyCalled",
    "created_at": "createdAt",
    "processed_at": "processedAt",
    "estimated_for": "estimatedFor",
    "ended_at": "endedAt",
    "outcome": "outcome",
    "was_punctual": "wasPunctual",
    "customer_key": "phoneNumber",
}
_SECONDS: Final = {
    "callback_ms": "actualCallbackTime",
    "estimated_callback_ms": "estimatedCallbackTime",
    "customer_wait_ms": "customerWaitDuration",
    "talk_ms": "talkDuration",
    "punctuality_ms": "punctuality",
}


def canonical(landed: pl.LazyFrame) -> pl.LazyFrame:
    """Landed records as canonical-named columns (not yet validated) and their ``record_id``,
    one row per record.

    Example:
        >>> import json
        >>> landed = pl.LazyFrame({"record_id": ["a"], "payload": [json.dumps({"id": "a",
        ...     "talkDuration": 61, "source": "+1 855 555 0100", "x_new": 1})]})
        >>> canonical(landed).select("attempt_id", "talk_ms", "source_type").collect().row(0)
        ('a', 61000.0, 'phone')
    """
    decoded = RECORD in landed.collect_schema().names()  # landed decoded, or JSON only
    record = (pl.col(RECORD) if decoded else pl.col("payload").str.json_decode(RECORD_DTYPE)).struct
    source = record.field("source")
    return landed.select(
        pl.lit(SOURCE).alias("source"),
        *(record.field(field).alias(name) for name, field in _RENAME.items()),
        pl.when(source.str.contains(PHONE_SOURCE))
        .then(pl.lit("phone"))
        .otherwise(source)
        .alias("source_type"),
        *((record.field(field) * 1000).alias(name) for name, field in _SECONDS.items()),
        pl.col("record_id").alias(SOURCE_RECORD),
    )
