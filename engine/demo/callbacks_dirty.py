"""Dirty, raw-looking copies of clean callback attempts: vendor spellings, bad rows, extras.

Used by the demo and the tests: validation of the dirty copy must give back the clean frame, with
exactly the injected quarantine counts and non-callback records.

Example:
    >>> from engine.demo.callbacks import generate_attempts
    >>> dirty, counts = make_dirty_attempts(generate_attempts(days=1, scale=0.2), seed=1)
    >>> set(dirty.dtypes) == {pl.String()}
    True
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

__all__ = ["make_dirty_attempts"]

_ISO_MS: Final = "%Y-%m-%dT%H:%M:%S%.3fZ"

_RESPELL: Final[dict[str, dict[str, str]]] = {  # vendor spellings the validator must fold back
    "outcome": {
        "successful": "Success",
        "unavailable": "Unavailable",
        "failure": "Failure",
        "canceled": "Cancelled",
        "abandoned": "Abandoned",
        "other": "Not Completed",
    },
    "first_party_called": {"agent": "Agent First", "customer": "customer_first"},
    "type": {"asap": "ASAP", "scheduled": "Scheduled"},
    "source_type": {"voice": "Phone", "digital": "CBWidget:dc4e66dd30d8"},
}
_TEXT: Final[dict[str, tuple[str, str | None]]] = {  # reason: (column, bad value)
    "missing_id": ("attempt_id", None),
    "missing_timestamp": ("created_at", None),
    "unparsable_timestamp": ("created_at", "2026-13-45T99:00"),
    "wrong_type": ("retry_attempt", "two"),
    "negative_retry_attempt": ("retry_attempt", "-1"),
    "unknown_type": ("type", "callback-ish"),
    "unknown_outcome": ("outcome", "exploded"),
    "unknown_first_party": ("first_party_called", "robot"),
    "unknown_source_type": ("source_type", "carrier pigeon"),
}
_BAD: Final = (*_TEXT, "negative_duration", "end_before_start", "conflicting_duplicate")


def _stringify(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(pl.Datetime).dt.strftime(_ISO_MS), pl.exclude(pl.Datetime).cast(pl.String)
    )


def _corrupt(rows: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Break exactly one rule in every row (``rows`` already carry fresh identities)."""
    match reason:
        case "negative_duration":
            rows = rows.with_columns(talk_ms=-1 - pl.col("talk_ms").fill_null(0))
        case "end_before_start":
            back = pl.duration(seconds=1 + pl.int_range(pl.len()) % 60)
            rows = rows.with_columns(ended_at=pl.col("created_at") - back)
        case "conflicting_duplicate":
            rows = rows.with_columns(talk_ms=pl.col("talk_ms").fill_null(0) + 1_000)
    rows = _stringify(rows)
    if reason in _TEXT:
        name, value = _TEXT[reason]
        rows = rows.with_columns(pl.lit(value, pl.String).alias(name))
    return rows


def make_dirty_attempts(
    frame: pl.DataFrame, *, seed: int = 0, fraction: float = 0.02
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Make a raw-looking, all-text copy of clean attempts: vendor spellings, bad rows, extras.

    Every column becomes text (instants as ``2026-10-01T08:15:03.123Z``); about a third of the
    rows use the vendor's spellings (``Success``, ``Agent First``, ``ASAP``, ``CBWidget:…``);
    rows are shuffled. Added: about ``fraction`` of the rows as bad rows, evenly over the
    quarantine reasons (copies of real rows with a fresh ``attempt_id`` and ``original_id``,
    suffix ``~x<n>``, each breaking one rule; a ``conflicting_duplicate`` is a pair sharing an
    id with different ``talk_ms``, both counted); as many non-callback records (``type``
    ``unknown``, outcome ``Chose Hold``), counted under ``not_callbacks``; and, uncounted, exact
    copies of clean rows. Validation gives back exactly ``frame``.

    Args:
        frame: A frame with the canonical callback attempts schema.
        seed: Seed of every random choice.
        fraction: Share of bad rows to add, relative to ``frame.height``.

    Returns:
        The dirty frame and the rows added per quarantine reason (plus ``not_callbacks``).

    Example:
        >>> from engine.demo.callbacks import generate_attempts
        >>> dirty, counts = make_dirty_attempts(generate_attempts(days=1, scale=0.3), seed=3)
        >>> counts["unknown_outcome"] == (dirty["outcome"] == "exploded").sum()
        True
    """
    rng = np.random.default_rng(seed)
    n = frame.height
    per_reason = max(1, round(fraction * n / len(_BAD))) if n and fraction > 0 else 0
    text = _stringify(frame)
    respelt = pl.Series(rng.random(n) < 0.35)
    text = text.with_columns(
        pl.when(respelt).then(pl.col(c).replace(m)).otherwise(pl.col(c)).alias(c)
        for c, m in _RESPELL.items()
    )
    pieces, counts, fresh = [text], {}, 0
    for reason in (*_BAD, "not_callbacks"):
        pairs = reason == "conflicting_duplicate"
        size = max(1, per_reason // 2) if pairs and per_reason else per_reason
        picked = rng.choice(n, size=size, replace=n < size) if n else np.arange(0)
        suffix = pl.concat_str(pl.lit("~x"), pl.int_range(pl.len(), dtype=pl.Int64) + fresh)
        rows = frame[picked].with_columns(
            pl.concat_str("attempt_id", suffix).alias("attempt_id"),
            pl.concat_str("attempt_id", suffix).alias("original_id"),
        )
        fresh += picked.size
        if reason == "not_callbacks":
            bad = _stringify(rows).with_columns(
                type=pl.lit("unknown"), outcome=pl.lit("Chose Hold")
            )
        else:
            bad = _corrupt(rows, reason)
        if pairs:
            bad = pl.concat([_stringify(rows), bad])
        pieces.append(bad)
        counts[reason] = bad.height
    pieces.append(text[rng.choice(n, size=round(fraction * n / 2), replace=True)] if n else text)
    dirty = pl.concat(pieces)
    return dirty[rng.permutation(dirty.height)], counts
