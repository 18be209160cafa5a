"""Seeded synthetic contact-centre data: canonical ``contacts`` frames and dirty raw copies of them.

The model, per queue and 15-minute slot of the window (all draws vectorised with numpy):

- Arrivals: Poisson counts with a mean of ``daily_offered * scale * weekday factor * intraday
  curve``. The curve follows the local wall clock of ``time_zone`` (two business-day peaks, low at
  night; digital channels add an evening shoulder); weekday factors average 1 over Monday to
  Friday, weekends are lower. Arrival instants are uniform within the slot, in whole milliseconds.
- Waits: exponential with a load-dependent mean (``wait at peak * (0.15 + 0.85 * load²)`` times a
  lognormal staffing error per slot). Patience: exponential (a share of voice and chat callers
  has a very short fuse, so short abandons occur); email never abandons. Patience below the wait
  abandons with ``wait_ms`` = patience, otherwise the contact is answered after its wait.
- Flow-out: 5 % of inbound voice first segments leave after 5 to 90 s for another voice queue; that
  transfer is segment 2 of the same ``contact_id``, offered when segment 1 ended.
- Handling: lognormal talk (sigma 0.8 around the queue mean), hold on 15 % of answered voice and
  callback contacts, lognormal after-call work. ``ended_at`` is the end of the conversation
  (answer + talk + hold); after-call work follows it and is not inside it.
- ``as_of`` (default: the end of the window): later offers do not exist yet; contacts still
  waiting are ``open`` (``wait_ms`` = waited so far, no answer or end); answered contacts still in
  conversation keep ``answered_at`` but have no ``ended_at`` and zero handling.
- Outbound voice dials (8 % on top of inbound voice) connect 70 % of the time after 3 to 30 s.
- Chat and messaging rows carry messages (1 if not completed); 12 % of completed inbound
  contacts answer a 1 to 5 survey. ``updated_at`` is ``ended_at``, else ``answered_at``, else
  ``offered_at``. The frame depends on the arguments only, not on the number of cores.

Example:
    >>> frame = generate_contacts(seed=1, days=2, scale=0.05)
    >>> frame.columns == list(CONTACTS)
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from engine.schema import CHANNELS, CONTACTS, DIRECTIONS, OUTCOMES, UTC_TS

__all__ = ["DEFAULT_QUEUES", "QueueSpec", "generate_contacts", "generate_segments", "make_dirty"]

# make_dirty lives in engine.demo.contacts_dirty; re-exported here (bottom) for one import path.

_Arr = npt.NDArray[Any]
_Rng = np.random.Generator

_SLOT_MS: Final = 900_000
_CHUNK_ROWS: Final = 1 << 20
_DAY_MS: Final = 86_400_000
_DEFAULT_START: Final = datetime(2026, 10, 1, tzinfo=UTC)
_WEEKDAY_FACTOR: Final = np.array([1.08, 1.03, 1.0, 0.97, 0.92, 0.42, 0.28])  # Mon..Sun
_OUTBOUND_SHARE: Final = 0.08
_FLOW_OUT_SHARE: Final = 0.05
_HOLD_SHARE: Final = 0.15
_CSAT_SHARE: Final = 0.12
_CSAT_CUMULATIVE: Final = np.cumsum([0.05, 0.07, 0.13, 0.35])  # then 0.40 for a 5
_SHORT_PATIENCE_MS: Final = 4_000.0
_OUTCOME = {name: code for code, name in enumerate(OUTCOMES.categories)}


@dataclass(frozen=True)
class QueueSpec:
    """One queue of the synthetic contact centre.

    Example:
        >>> QueueSpec("q-x", "X", "voice", 500.0, 300.0, 30.0, sl_threshold_s=20).channel
        'voice'
    """

    queue_id: str
    queue_name: str
    channel: str  # one of schema.CHANNELS
    daily_offered: float  # mean offered per weekday at scale 1.0
    mean_talk_s: float
    mean_acw_s: float
    sl_threshold_s: int | None = None  # vendor-supplied threshold on the records, or None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS.categories:
            raise ValueError(f"queue {self.queue_id!r}: unknown channel {self.channel!r}")


DEFAULT_QUEUES: Final[tuple[QueueSpec, ...]] = (
    QueueSpec("voice-sales", "Sales", "voice", 1800.0, 300.0, 45.0, 20),
    QueueSpec("voice-support", "Support", "voice", 3200.0, 420.0, 60.0),
    QueueSpec("voice-billing", "Billing", "voice", 1400.0, 360.0, 50.0, 30),
    QueueSpec("chat-support", "Chat Support", "chat", 1600.0, 600.0, 30.0, 60),
    QueueSpec("email-support", "Email", "email", 700.0, 360.0, 60.0),
    QueueSpec("messaging-support", "Messaging", "messaging", 900.0, 900.0, 20.0),
    QueueSpec("callback", "Callback", "callback", 400.0, 330.0, 45.0),
)


@dataclass(frozen=True)
class _Behaviour:
    floor: float  # night-time arrival level relative to the peaks
    peaks: tuple[tuple[float, float, float], ...]  # (weight, local hour, spread in hours)
    wait_s: float  # mean wait at the queue's peak load
    patience_s: float  # mean patience (inf: never abandons)
    short_share: float  # share of callers with a very short fuse


_BUSINESS = ((1.0, 10.5, 1.5), (0.8, 14.5, 1.8))
_EVENING = ((0.8, 11.0, 2.0), (0.7, 15.0, 2.0), (0.5, 20.0, 1.5))
_BEHAVIOUR: Final = {
    "voice": _Behaviour(0.03, _BUSINESS, 25.0, 240.0, 0.03),
    "callback": _Behaviour(0.02, _BUSINESS, 40.0, 900.0, 0.0),
    "chat": _Behaviour(0.05, _EVENING, 45.0, 360.0, 0.03),
    "messaging": _Behaviour(0.08, ((0.7, 12.0, 3.0), (0.6, 19.0, 2.5)), 900.0, 7200.0, 0.0),
    "email": _Behaviour(0.08, ((1.0, 11.0, 3.0), (0.6, 16.0, 3.0)), 4 * 3600.0, math.inf, 0.0),
}


def _curve(behaviour: _Behaviour, hour: _Arr) -> _Arr:
    shape = np.full(hour.shape, behaviour.floor)
    for weight, centre, spread in behaviour.peaks:
        shape += weight * np.exp(-0.5 * ((hour - centre) / spread) ** 2)
    return shape


def _epoch_ms(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant!r}: pass a timezone-aware instant")
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _intensity(queues: Sequence[QueueSpec], start_ms: int, days: int, time_zone: str) -> _Arr:
    """Expected inbound arrivals per (slot, queue) at scale 1."""
    slot_us = (start_ms + np.arange(days * 96, dtype=np.int64) * _SLOT_MS) * 1000
    local = pl.Series(slot_us).cast(UTC_TS).dt.convert_time_zone(time_zone)
    hour = local.dt.hour().to_numpy() + (local.dt.minute().to_numpy() + 7.5) / 60
    weekday = _WEEKDAY_FACTOR[local.dt.weekday().to_numpy() - 1]
    reference = (np.arange(96) + 0.5) / 4
    lam = np.empty((hour.size, len(queues)))
    for j, queue in enumerate(queues):
        behaviour = _BEHAVIOUR[queue.channel]
        curve = _curve(behaviour, hour) / _curve(behaviour, reference).sum()
        lam[:, j] = queue.daily_offered * weekday * curve
    return lam


def _arrivals(lam: _Arr, rng: _Rng) -> tuple[_Arr, _Arr]:
    """Poisson arrivals per (slot, stream): offer times (ms from start) sorted, and streams."""
    streams = lam.shape[1]
    slot, stream = np.divmod(np.arange(lam.size, dtype=np.int64), streams)
    # One sort key per arrival, offer time * streams + stream: ties are identical rows.
    key = np.repeat(slot * _SLOT_MS * streams + stream, rng.poisson(lam).ravel())
    key += rng.integers(0, _SLOT_MS, key.size) * streams
    key.sort()
    return np.divmod(key, streams)


def _with_transfers(
    offered: _Arr, queue: _Arr, outbound: _Arr, is_voice: _Arr, rng: _Rng
) -> dict[str, _Arr]:
    """Add segment 2 of flowed-out voice contacts, merged into offer-time order."""
    n, voice = offered.size, np.flatnonzero(is_voice)
    first = {"offered": offered, "queue": queue, "outbound": outbound, "flow": np.full(n, -1)}
    first |= {"cid": np.arange(n), "seg": np.ones(n, dtype=np.int32)}
    if voice.size < 2:
        return first
    moved = np.flatnonzero(is_voice[queue] & ~outbound & (rng.random(n) < _FLOW_OUT_SHARE))
    first["flow"][moved] = rng.integers(5_000, 90_001, moved.size)
    pick = rng.integers(0, voice.size - 1, moved.size)  # another voice queue: skip its own rank
    pick += pick >= (np.cumsum(is_voice) - 1)[queue[moved]]
    second = {"offered": offered[moved] + first["flow"][moved], "queue": voice[pick], "cid": moved}
    second |= {"outbound": np.zeros(moved.size, dtype=bool), "flow": np.full(moved.size, -1)}
    second |= {"seg": np.full(moved.size, 2, dtype=np.int32)}
    order = np.argsort(second["offered"], kind="stable")
    at = np.searchsorted(offered, second["offered"][order], side="right")
    return {name: np.insert(first[name], at, second[name][order]) for name in first}


def _lognormal(rng: _Rng, mean: _Arr, sigma: float) -> _Arr:
    return mean * np.exp(sigma * rng.standard_normal(mean.size) - sigma**2 / 2)


def _outcomes(
    seg: dict[str, _Arr], mean_wait: _Arr, queues: Sequence[QueueSpec], as_of: int, rng: _Rng
) -> dict[str, _Arr]:
    """Wait, outcome, handling and survey columns (instants in ms from start) of every segment."""
    n, q, offered = seg["offered"].size, seg["queue"], seg["offered"]
    behaviour = [_BEHAVIOUR[x.channel] for x in queues]
    slot = np.minimum(offered // _SLOT_MS, len(mean_wait) - 1)  # a transfer may start later
    wait = rng.exponential(1.0, n) * mean_wait[slot, q]
    short = rng.random(n) < np.array([b.short_share for b in behaviour])[q]
    patience_mean = np.array([b.patience_s * 1000 for b in behaviour])[q]
    patience = rng.exponential(1.0, n) * np.where(short, _SHORT_PATIENCE_MS, patience_mean)
    outcome = np.where(patience < wait, _OUTCOME["abandoned"], _OUTCOME["answered"])
    wait_ms = np.floor(np.minimum(patience, wait)).astype(np.int64)
    dials = np.flatnonzero(seg["outbound"])  # ring 3 to 30 s; 70 % connect
    wait_ms[dials] = rng.integers(3_000, 30_001, dials.size)
    outcome[dials] = np.where(rng.random(dials.size) < 0.7, 0, _OUTCOME["abandoned"])  # 0: answered
    moved = np.flatnonzero(seg["flow"] >= 0)
    wait_ms[moved], outcome[moved] = seg["flow"][moved], _OUTCOME["flow_out"]
    left = offered + wait_ms
    is_open = left > as_of
    answered = (outcome == _OUTCOME["answered"]) & ~is_open
    talk = _lognormal(rng, np.array([x.mean_talk_s * 1000 for x in queues])[q], 0.8)
    acw = _lognormal(rng, np.array([x.mean_acw_s * 1000 for x in queues])[q], 0.5)
    hold = np.zeros(n)
    voiced = np.array([x.channel in ("voice", "callback") for x in queues])[q]
    held = np.flatnonzero(voiced & answered & (rng.random(n) < _HOLD_SHARE))
    hold[held] = _lognormal(rng, np.full(held.size, 45_000.0), 0.8)
    talk_ms, hold_ms = talk.astype(np.int64), hold.astype(np.int64)
    ended = np.where(answered, left + talk_ms + hold_ms, left)
    done = answered & (ended <= as_of)  # answered and the conversation is over
    has_end = done | (~answered & ~is_open)
    digital = np.array([x.channel in ("chat", "messaging") for x in queues])[q]
    messages = digital.astype(np.int64)
    chats = np.flatnonzero(digital & done)
    messages[chats] = 2 + rng.poisson(talk[chats] / 30_000)
    surveyed = np.flatnonzero(done & ~seg["outbound"] & (rng.random(n) < _CSAT_SHARE))
    csat = np.zeros(n, dtype=np.int64)
    csat[surveyed] = 1 + np.searchsorted(_CSAT_CUMULATIVE, rng.random(surveyed.size))
    return {
        "outcome": np.where(is_open, _OUTCOME["open"], outcome),
        "wait_ms": np.where(is_open, as_of - offered, wait_ms),
        "answered": left,
        "has_answer": answered,
        "ended": ended,
        "has_end": has_end,
        "updated": np.where(has_end, ended, np.where(answered, left, offered)),
        "talk_ms": np.where(done, talk_ms, 0),
        "hold_ms": np.where(done, hold_ms, 0),
        "acw_ms": np.where(done, acw.astype(np.int64), 0),
        "messages": messages,
        "csat_responses": (csat > 0).astype(np.int64),
        "csat_score": csat,
    }


def _frame(
    seg: dict[str, _Arr],
    cols: dict[str, _Arr],
    queues: Sequence[QueueSpec],
    source: str,
    start_ms: int,
) -> pl.DataFrame:
    """Assemble the canonical frame from the segment arrays (instants in ms from ``start_ms``)."""
    per_queue = pl.DataFrame(
        {
            "channel": pl.Series([x.channel for x in queues], dtype=CHANNELS),
            "queue_id": [x.queue_id for x in queues],
            "queue_name": [x.queue_name for x in queues],
            "sl_threshold_ms": pl.Series([x.sl_threshold_s for x in queues], dtype=pl.Int64()),
        }
    )
    raw = pl.DataFrame(
        {"cid": seg["cid"], "segment_no": seg["seg"], "offered": seg["offered"]}
        | {name: values for name, values in cols.items() if name != "outcome"}
        | {"direction": pl.Series(DIRECTIONS.categories, dtype=DIRECTIONS)[seg["outbound"] * 1]}
        | {"outcome": pl.Series(OUTCOMES.categories, dtype=OUTCOMES)[cols["outcome"]]}
    ).hstack(per_queue[seg["queue"]].get_columns())

    def instant(name: str) -> pl.Expr:
        return ((pl.col(name) + start_ms) * 1000).cast(UTC_TS)

    made = {
        "source": pl.lit(source, dtype=pl.String()),
        "contact_id": pl.concat_str(pl.lit("c"), "cid"),
        "offered_at": instant("offered"),
        "answered_at": pl.when("has_answer").then(instant("answered")),
        "ended_at": pl.when("has_end").then(instant("ended")),
        "updated_at": instant("updated"),
        "sl_threshold_ms": pl.col("sl_threshold_ms") * 1000,
    }
    columns = [made.get(name, pl.col(name)).alias(name) for name in CONTACTS]
    return raw.lazy().select(columns).collect(engine="streaming")


def generate_contacts(
    *,
    seed: int = 0,
    start: datetime = _DEFAULT_START,
    days: int = 28,
    queues: Sequence[QueueSpec] = DEFAULT_QUEUES,
    scale: float = 1.0,
    source: str = "synthetic",
    as_of: datetime | None = None,
    time_zone: str = "UTC",
) -> pl.DataFrame:
    """Generate a canonical ``contacts`` frame (one row per queue segment), sorted by offer time.

    Args:
        seed: Seed of every random draw: the same arguments give an identical frame.
        start: Aware start instant of the window (the end is ``start + days``).
        days: Length of the window in days.
        queues: The queues; ``daily_offered`` is the mean inbound per weekday at scale 1.
        scale: Multiplier of every queue's arrival rate.
        source: Value of the ``source`` column.
        as_of: Sync time: later offers do not exist and contacts still waiting are ``open``.
            Defaults to the end of the window.
        time_zone: IANA zone whose wall clock the intraday and weekday patterns follow.

    Returns:
        A frame with exactly the ``schema.CONTACTS`` columns, dtypes and order.

    Example:
        >>> frame = generate_contacts(seed=7, days=1, scale=0.1)
        >>> frame["offered_at"].is_sorted() and frame.schema == pl.Schema(CONTACTS)
        True
    """
    start_ms = _epoch_ms(start)
    as_of_ms = days * _DAY_MS if as_of is None else _epoch_ms(as_of) - start_ms
    rng = np.random.default_rng(seed)
    lam = _intensity(queues, start_ms, days, time_zone) * scale
    load = lam / np.maximum(lam.max(axis=0, keepdims=True), 1e-12)
    wait_at_peak = np.array([_BEHAVIOUR[q.channel].wait_s * 1000 for q in queues])
    mean_wait = wait_at_peak * (0.15 + 0.85 * load**2) * rng.lognormal(0.0, 0.3, lam.shape)
    is_voice = np.array([q.channel == "voice" for q in queues], dtype=bool)
    offered, stream = _arrivals(np.hstack([lam, lam[:, is_voice] * _OUTBOUND_SHARE]), rng)
    stream_queue = np.concatenate([np.arange(len(queues)), np.flatnonzero(is_voice)])
    seg = _with_transfers(offered, stream_queue[stream], stream >= len(queues), is_voice, rng)
    keep = int(np.searchsorted(seg["offered"], as_of_ms, side="right"))
    # Outcomes are row-wise: draw them in fixed-size chunks, each with its own seed, on all cores.
    chunks = range(0, max(keep, 1), _CHUNK_ROWS)
    seeds = np.random.SeedSequence(seed).spawn(len(chunks))

    def chunk(i: int) -> pl.DataFrame:
        part = {
            name: values[chunks[i] : min(chunks[i] + _CHUNK_ROWS, keep)]
            for name, values in seg.items()
        }
        cols = _outcomes(part, mean_wait, queues, as_of_ms, np.random.default_rng(seeds[i]))
        return _frame(part, cols, queues, source, start_ms)

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        frame = pl.concat(pool.map(chunk, range(len(chunks))), rechunk=False)
    return frame.with_columns(pl.col("offered_at").set_sorted())


def generate_segments(
    n: int,
    *,
    seed: int = 0,
    start: datetime = _DEFAULT_START,
    days: int = 28,
    queues: Sequence[QueueSpec] = DEFAULT_QUEUES,
    source: str = "synthetic",
    time_zone: str = "UTC",
) -> pl.DataFrame:
    """Generate about ``n`` segments over ``days`` by choosing the scale (for benchmarks).

    Example:
        >>> abs(generate_segments(20_000, days=7).height - 20_000) < 1_000
        True
    """
    lam = _intensity(queues, _epoch_ms(start), days, time_zone)
    voice = np.array([q.channel == "voice" for q in queues], dtype=bool)
    transfers = _FLOW_OUT_SHARE if voice.sum() >= 2 else 0.0
    expected = lam.sum() + lam[:, voice].sum() * (_OUTBOUND_SHARE + transfers)
    if expected <= 0:
        raise ValueError("the queues offer nothing: give at least one a positive daily_offered")
    scale = n / expected
    return generate_contacts(
        seed=seed,
        start=start,
        days=days,
        queues=queues,
        scale=scale,
        source=source,
        time_zone=time_zone,
    )


from engine.demo.contacts_dirty import make_dirty  # noqa: E402 (re-export; it imports nothing from here)
