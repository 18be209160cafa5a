"""Dirty, raw-looking copies of clean synthetic contacts, for validation tests and the demo.

Example:
    >>> from engine.demo.contacts import generate_contacts
    >>> dirty, counts = make_dirty(generate_contacts(days=1, scale=0.2), seed=3)
    >>> counts["unknown_channel"] == (dirty["channel"] == "fax").sum()
    True
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from engine.schema import OUTCOMES, UTC_TS

__all__ = ["make_dirty"]

_Arr = npt.NDArray[Any]
_ISO_MS: Final = "%Y-%m-%dT%H:%M:%S%.3fZ"


def _stringify(frame: pl.DataFrame) -> pl.DataFrame:
    texts = pl.col("channel", "direction", "outcome").cast(pl.String())
    return frame.with_columns(texts, pl.col(pl.Datetime).dt.strftime(_ISO_MS))


_TEXT: Final[dict[str, tuple[str, str | None]]] = {
    "missing_id": ("contact_id", None),
    "missing_timestamp": ("offered_at", None),
    "unparsable_timestamp": ("offered_at", "2026-13-45T99:00"),
    "unknown_channel": ("channel", "fax"),
    "unknown_direction": ("direction", "sideways"),
    "unknown_outcome": ("outcome", "escalated"),
}
_BAD_REASONS: Final = (*_TEXT, "end_before_offer", "answer_before_offer", "negative_duration")


def _corrupt(rows: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Break exactly one rule in every row (``rows`` already carry fresh identities)."""
    even = pl.int_range(pl.len()) % 2 == 0
    earlier = pl.col("offered_at") - pl.duration(seconds=1 + pl.int_range(pl.len()) % 60)
    match reason:
        case "end_before_offer":
            rows = rows.with_columns(ended_at=earlier)
        case "answer_before_offer":
            rows = rows.with_columns(answered_at=earlier)
        case "negative_duration":
            rows = rows.with_columns(
                talk_ms=pl.when(even).then(-1 - pl.col("talk_ms")).otherwise("talk_ms"),
                wait_ms=pl.when(even).then("wait_ms").otherwise(-1 - pl.col("wait_ms")),
            )
        case "conflicting_duplicate":
            rows = rows.with_columns(talk_ms=pl.col("talk_ms") + 1_000)
    rows = _stringify(rows)
    if reason in _TEXT:
        name, value = _TEXT[reason]
        rows = rows.with_columns(pl.lit(value, dtype=pl.String()).alias(name))
    return rows


def make_dirty(
    frame: pl.DataFrame, *, seed: int = 0, fraction: float = 0.02
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Make a raw-looking copy of a clean ``contacts`` frame: bad rows, duplicates, old versions.

    Enum columns become strings and timestamps ISO-8601 strings (``2026-10-01T08:15:03.123Z``), so
    the frame can carry unparsable values; other columns keep their types; rows are shuffled.
    About ``fraction`` of the rows are added bad rows, evenly over the reason codes: copies of
    real rows with a fresh ``contact_id`` (suffix ``~x<n>``), each breaking one rule. A
    ``conflicting_duplicate`` is a pair sharing a fresh identity and ``updated_at`` with different
    ``talk_ms``; both rows count. Also added, uncounted: exact copies of clean rows and superseded
    versions of ended ones (``open``, ``updated_at`` = ``offered_at``). Validation and
    de-duplication (latest ``updated_at`` wins) give back exactly ``frame``.

    Args:
        frame: A frame with the canonical contacts schema.
        seed: Seed of every random choice.
        fraction: Share of bad rows to add, relative to ``frame.height``.

    Returns:
        The dirty frame and the number of bad rows added per quarantine reason code.

    Example:
        >>> from engine.demo.contacts import generate_contacts
        >>> dirty, counts = make_dirty(generate_contacts(days=1, scale=0.2), seed=3)
        >>> counts["unknown_channel"] == (dirty["channel"] == "fax").sum()
        True
    """
    rng = np.random.default_rng(seed)
    n = frame.height
    per_reason = max(1, round(fraction * n / (len(_BAD_REASONS) + 1))) if n and fraction > 0 else 0
    ended = frame["ended_at"].is_not_null().to_numpy()
    unanswered = frame["answered_at"].is_null().to_numpy()
    later = (frame["updated_at"] > frame["offered_at"]).to_numpy()
    candidates = {"end_before_offer": np.flatnonzero(ended & unanswered)}
    candidates["answer_before_offer"] = np.flatnonzero(~unanswered)

    def sample(pool: _Arr, size: int) -> _Arr:
        return rng.choice(pool, size=size, replace=pool.size < size) if pool.size else pool

    pieces, counts, fresh = [_stringify(frame)], {}, 0
    for reason in (*_BAD_REASONS, "conflicting_duplicate"):
        pairs = reason == "conflicting_duplicate"
        size = max(1, per_reason // 2) if pairs else per_reason
        picked = sample(candidates.get(reason, np.arange(n)), size if per_reason else 0)
        suffix = pl.concat_str(pl.lit("~x"), pl.int_range(pl.len(), dtype=pl.Int64) + fresh)
        rows = frame[picked].with_columns(pl.concat_str("contact_id", suffix).alias("contact_id"))
        fresh += picked.size
        bad = _corrupt(rows, reason)
        if pairs:
            bad = pl.concat([_stringify(rows), bad])
        pieces.append(bad)
        counts[reason] = bad.height
    extra = round(fraction * n / 2) if n else 0
    pieces.append(pieces[0][sample(np.arange(n), extra)])
    zeros = pl.col("wait_ms", "talk_ms", "hold_ms", "acw_ms", "csat_responses", "csat_score") * 0
    waiting = {"outcome": pl.lit("open", dtype=OUTCOMES), "updated_at": pl.col("offered_at")}
    waiting |= dict.fromkeys(("answered_at", "ended_at"), pl.lit(None, dtype=UTC_TS))
    old = frame[sample(np.flatnonzero(ended & later), extra)].with_columns(zeros, **waiting)
    pieces.append(_stringify(old))
    dirty = pl.concat(pieces)
    return dirty[rng.permutation(dirty.height)], counts
