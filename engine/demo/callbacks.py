"""Seeded synthetic callback attempts (Mindful-shaped chains) and dirty raw copies of them.

The model (every draw vectorised with numpy):

- Requests: Poisson counts per call target and 15-minute slot, with two business-day peaks (UTC
  wall clock) and lower weekends; first attempts uniform within the slot, in whole milliseconds.
- Attributes per request: ``type`` (ASAP or scheduled), ``first_party_called`` and
  ``source_type`` by the call target's shares; ``customer_key`` (64 hex digits, like the keyed
  hash of a phone number) drawn with a skew from a finite pool, so customers repeat; 2 % have none.
- Retries: ``min(geometric(0.6) - 1, 7)``; non-final attempts end ``unavailable`` (75 %) or
  ``failure``; the final attempt's outcome is drawn from every outcome, ``other`` included.
- Times, whole seconds like the vendor's: estimated callback time lognormal around 4 minutes
  (ASAP), 15 minutes to 4 hours ahead (scheduled), about 10 minutes for a retry; actual callback
  time around it, so ``punctuality_ms`` is signed; successful attempts have a customer wait
  (exponential, mean 25 s; 3 % unknown) and a talk time (lognormal, mean 5.5 min); abandoned ones
  a wait but no talk; canceled ones were never processed (no callback time, punctuality or
  ``processed_at``). A retry is created when the previous attempt ends.
- Gaps: 2 % of the chains with two or more retries lose one middle attempt.

:func:`make_dirty_attempts` (from :mod:`engine.demo.callbacks_dirty`) makes raw-looking copies.

Example:
    >>> frame = generate_attempts(seed=1, days=1, scale=0.1)
    >>> frame.schema == pl.Schema(CALLBACK_ATTEMPTS)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from engine.demo.callbacks_dirty import make_dirty_attempts
from engine.schema import (
    CALLBACK_ATTEMPTS,
    CALLBACK_FIRST_PARTIES,
    CALLBACK_OUTCOMES,
    CALLBACK_SOURCE_TYPES,
    CALLBACK_TYPES,
    UTC_TS,
)

__all__ = ["DEFAULT_TARGETS", "CallTarget", "generate_attempts", "make_dirty_attempts"]

_Arr = npt.NDArray[Any]
_SLOT_MS: Final = 900_000
_DEFAULT_START: Final = datetime(2026, 10, 1, tzinfo=UTC)
_WEEKDAY: Final = np.array([1.08, 1.03, 1.0, 0.97, 0.92, 0.4, 0.25])  # Mon..Sun
_FINAL_OUTCOMES: Final = np.array([0.68, 0.12, 0.05, 0.07, 0.06, 0.02])  # CALLBACK_OUTCOMES order


@dataclass(frozen=True)
class CallTarget:
    """One call target (a callback queue) of the synthetic organisation.

    Example:
        >>> CallTarget("1", "X", 100.0).asap_share
        0.75
    """

    call_target_id: str
    call_target_name: str
    daily_requests: float  # mean requests per weekday at scale 1.0
    asap_share: float = 0.75
    agent_first_share: float = 0.6
    digital_share: float = 0.3


DEFAULT_TARGETS: Final = (
    CallTarget("4380", "Billing", 320.0, 0.8, 0.6, 0.3),
    CallTarget("4381", "Support", 480.0, 0.75, 0.5, 0.35),
    CallTarget("4382", "Sales", 220.0, 0.6, 0.7, 0.45),
    CallTarget("4383", "Claims", 150.0, 0.85, 0.4, 0.2),
    CallTarget("5298", "Calls test", 30.0, 0.5, 0.5, 0.5),
)


def _hex(rng: np.random.Generator, n: int, digits: int) -> _Arr:
    width = digits + digits % 2
    raw = np.frombuffer(rng.bytes(n * width // 2).hex().encode(), dtype=f"S{width}")
    return raw.astype(f"U{digits}")


def _requests(
    targets: Sequence[CallTarget], start_ms: int, days: int, scale: float, rng: np.random.Generator
) -> tuple[_Arr, _Arr]:
    """First-attempt instants (ms since epoch, sorted) and call target indices."""
    slot_ms = start_ms + np.arange(days * 96, dtype=np.int64) * _SLOT_MS
    local = pl.Series(slot_ms * 1000).cast(UTC_TS)
    hour = local.dt.hour().to_numpy() + local.dt.minute().to_numpy() / 60 + 0.125
    curve = 0.02 + np.exp(-0.5 * ((hour - 10.5) / 1.5) ** 2)
    curve += 0.8 * np.exp(-0.5 * ((hour - 14.5) / 1.8) ** 2)
    curve *= _WEEKDAY[local.dt.weekday().to_numpy() - 1] / curve[:96].sum()
    daily = np.array([t.daily_requests for t in targets]) * scale
    counts = rng.poisson(curve[:, None] * daily[None, :]).ravel()
    slot, target = np.divmod(np.repeat(np.arange(counts.size), counts), len(targets))
    at = slot_ms[slot] + rng.integers(0, _SLOT_MS, slot.size)
    order = np.argsort(at, kind="stable")
    return at[order], target[order]


def _seconds(values: _Arr) -> _Arr:
    return np.round(values / 1000).astype(np.int64) * 1000


def _attempt_columns(
    n: int, kind: _Arr, retries: _Arr, final_outcome: _Arr, rng: np.random.Generator
) -> dict[str, _Arr]:
    """Per-attempt columns (times as ms offsets from the attempt's own creation)."""
    req = np.repeat(np.arange(n), retries + 1)
    m = req.size
    k = np.arange(m) - np.repeat(np.cumsum(retries + 1) - (retries + 1), retries + 1)
    final = k == retries[req]
    outcome = np.where(final, final_outcome[req], np.where(rng.random(m) < 0.75, 1, 2))
    scheduled = (kind[req] == 1) & (k == 0)
    est = np.where(
        k > 0,
        rng.lognormal(np.log(600_000), 0.3, m),
        np.where(
            scheduled, rng.integers(3, 49, m) * 300_000, rng.lognormal(np.log(200_000), 0.6, m)
        ),
    )
    est = _seconds(est)
    late = np.where(scheduled, rng.normal(0, 90_000, m), est * (rng.lognormal(0, 0.25, m) - 1))
    callback = np.maximum(_seconds(est + late), 0)
    canceled, successful = outcome == 3, outcome == 0
    waits = (outcome == 4) | successful  # abandoned while waiting for the other party
    wait = _seconds(rng.exponential(np.where(successful, 25_000, 40_000), m))
    talk = _seconds(rng.lognormal(np.log(280_000), 0.6, m))
    tail = np.where(successful, wait + talk, np.where(waits, wait, rng.integers(20, 46, m) * 1000))
    ended = np.where(canceled, _seconds(rng.random(m) * est), callback + tail)
    return {
        "req": req,
        "k": k,
        "final": final,
        "outcome": outcome,
        "estimated": np.where(rng.random(m) < 0.01, -1, est),
        "callback": np.where(canceled, -1, callback),
        "wait": np.where(waits & (rng.random(m) >= 0.03), wait, -1),
        "talk": np.where(successful, talk, -1),
        "ended": ended,
        "punctual": np.abs(callback - est) <= np.maximum(60_000, est // 10),
    }


def _epoch_ms(instant: datetime) -> int:
    if instant.tzinfo is None:
        msg = f"naive datetime {instant!r}: pass a timezone-aware instant"
        raise ValueError(msg)
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _chains(n: int, rng: np.random.Generator) -> tuple[_Arr, _Arr]:
    """Retry counts and final outcomes (codes in ``CALLBACK_OUTCOMES`` order) per request."""
    retries = np.minimum(rng.geometric(0.6, n) - 1, 7)
    return retries, rng.choice(_FINAL_OUTCOMES.size, n, p=_FINAL_OUTCOMES)


def _enum(codes: _Arr, dtype: pl.Enum) -> pl.Series:
    return pl.Series(dtype.categories, dtype=dtype)[codes]


def generate_attempts(
    *,
    seed: int = 0,
    start: datetime = _DEFAULT_START,
    days: int = 28,
    scale: float = 1.0,
    targets: Sequence[CallTarget] = DEFAULT_TARGETS,
    source: str = "mindful",
) -> pl.DataFrame:
    """Generate canonical ``callback_attempts`` (every attempt of every chain), by creation time.

    Args:
        seed: Seed of every random draw: the same arguments give an identical frame.
        start: Aware start of the window in which requests arrive (retries may run past its end).
        days: Length of the window in days.
        scale: Multiplier of every call target's request rate.
        targets: The call targets.
        source: Value of the ``source`` column.

    Returns:
        A frame with exactly the ``schema.CALLBACK_ATTEMPTS`` columns, dtypes and order.

    Example:
        >>> frame = generate_attempts(seed=2, days=2, scale=0.2)
        >>> frame["created_at"].is_sorted() and frame["retry_attempt"].max() <= 7
        True
    """
    rng = np.random.default_rng(seed)
    first_at, target = _requests(targets, _epoch_ms(start), days, scale, rng)
    n = first_at.size
    share = {f: np.array([getattr(t, f) for t in targets]) for f in CallTarget.__dataclass_fields__}
    kind = (rng.random(n) >= share["asap_share"][target]).astype(np.int64)  # 0 asap, 1 scheduled
    party = (rng.random(n) >= share["agent_first_share"][target]).astype(np.int64)
    digital = (rng.random(n) < share["digital_share"][target]).astype(np.int64)
    pool = max(20, 2 * n)
    key = _hex(rng, pool, 64)[(pool * rng.random(n) ** 3).astype(np.int64)]
    has_key = rng.random(n) >= 0.02
    retries, final_outcome = _chains(n, rng)
    a = _attempt_columns(n, kind, retries, final_outcome, rng)
    req, starts = a["req"], np.cumsum(retries + 1) - (retries + 1)
    before = np.cumsum(a["ended"]) - a["ended"]  # a retry is created when the previous attempt ends
    created = first_at[req] + before - before[starts][req]
    ids = _hex(rng, req.size, 17)
    gappy = np.flatnonzero((retries >= 2) & (rng.random(n) < 0.02))
    keep = np.ones(req.size, dtype=bool)
    keep[starts[gappy] + rng.integers(1, retries[gappy])] = False
    est, cb = a["estimated"], a["callback"]
    raw = pl.DataFrame(
        {
            "attempt_id": ids,
            "original_id": ids[starts][req],
            "retry_attempt": a["k"].astype(np.int32),
            "has_retry": ~a["final"],
            "call_target_id": np.array([t.call_target_id for t in targets])[target[req]],
            "call_target_name": np.array([t.call_target_name for t in targets])[target[req]],
            "created": created,
            "est": est,
            "cb": cb,
            "ended": created + a["ended"],
            "wait": a["wait"],
            "talk": a["talk"],
            "punctual": a["punctual"],
            "customer_key": np.where(has_key[req], key[req], ""),
        }
    ).with_columns(
        _enum(kind[req], CALLBACK_TYPES).alias("type"),
        _enum(party[req], CALLBACK_FIRST_PARTIES).alias("first_party_called"),
        _enum(digital[req], CALLBACK_SOURCE_TYPES).alias("source_type"),
        _enum(a["outcome"], CALLBACK_OUTCOMES).alias("outcome"),
    )

    def known(name: str) -> pl.Expr:
        return pl.when(pl.col(name) >= 0).then(pl.col(name))

    def instant(ms: pl.Expr) -> pl.Expr:
        return (ms * 1000).cast(UTC_TS)

    both = (pl.col("est") >= 0) & (pl.col("cb") >= 0)
    made = {
        "source": pl.lit(source, pl.String),
        "created_at": instant(pl.col("created")),
        "processed_at": instant(pl.col("created") + known("cb")),
        "estimated_for": instant(pl.col("created") + known("est")),
        "ended_at": instant(pl.col("ended")),
        "callback_ms": known("cb"),
        "estimated_callback_ms": known("est"),
        "customer_wait_ms": known("wait"),
        "talk_ms": known("talk"),
        "punctuality_ms": pl.when(both).then(pl.col("cb") - pl.col("est")),
        "was_punctual": pl.when(both).then(pl.col("punctual")),
        "customer_key": pl.when(pl.col("customer_key") != "").then(pl.col("customer_key")),
    }
    columns = [made.get(c, pl.col(c)).cast(t).alias(c) for c, t in CALLBACK_ATTEMPTS.items()]
    return raw.filter(keep).select(columns).sort("created_at", "attempt_id", maintain_order=True)
