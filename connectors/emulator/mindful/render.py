"""Canonical callback attempts -> Mindful historical records (seed 001), field for field.

This is the mapping the ``mindful`` connector inverts. One record per attempt; key names, key
order and JSON types are those of the seed's example (durations in whole seconds as integers,
RFC 3339 UTC timestamps with milliseconds and ``Z``).

Mindful field <- canonical column (``r`` = the attempt):

===========================  ==================================================================
``id``, ``originalId``       ``attempt_id``, ``original_id``
``retryAttempt``             ``retry_attempt``;  ``hasRetry``: ``has_retry``
``callTargetId`` / ``Name``  ``call_target_id`` / ``call_target_name``
``type``                     ``type`` (``asap``/``scheduled``); ``unknown`` on non-callbacks
``firstPartyCalled``         ``agent`` -> ``"agent"``; ``customer`` -> ``"customer"`` or
                             ``"customer_first"`` (both spellings occur, stable per id)
``source``                   ``digital`` -> ``"CBWidget:<32 hex>"`` (one widget per call
                             target); ``voice`` -> the call target's own number, as
                             ``"+1855…"`` or ``"Phone:+1855…"`` (stable per id); null -> null
``outcome``                  successful ``Success``, unavailable ``Unavailable``, failure
                             ``Failure``, canceled ``Canceled``, abandoned ``Abandoned``,
                             other ``Not Completed``; non-callbacks ``Chose Hold``
``createdAt`` …              ``created_at``, ``processedAt`` ``processed_at``,
                             ``estimatedFor`` ``estimated_for``, ``endedAt`` ``ended_at``
``actualCallbackTime``       ``callback_ms / 1000``;  ``estimatedCallbackTime``:
                             ``estimated_callback_ms / 1000``
``customerWaitDuration``     ``customer_wait_ms / 1000``; ``talkDuration``: ``talk_ms / 1000``
``punctuality``              ``punctuality_ms / 1000`` (signed); ``wasPunctual``: ``was_punctual``
``phoneNumber``              a fake E.164 number standing for ``customer_key`` (one number per
                             key, distinct keys distinct numbers); null -> null
===========================  ==================================================================

Decorations with no canonical meaning (agent/customer leg flags and delays, ``ani``,
``metadata``, ``registrationDuration``, ``segmentName``, ``estimatePercentAccuracy``…) are drawn
from a generator seeded by the record id, so a re-rendered record keeps them. ``ani`` (the
caller's number) and ``metadata`` (what the caller typed: here a name and an account number)
are PII, like ``phoneNumber``.

Normal form (:func:`normal_form`; what the emulator serves, so such rows round-trip exactly):
timestamps truncated to milliseconds, durations rounded half up to whole seconds, ``source``
``"mindful"``. ``customer_key`` comes back as the keyed hash of the number's digits.

Example:
    >>> iso(datetime(2023, 6, 8, 12, 12, 53, 999_999, tzinfo=UTC))
    '2023-06-08T12:12:53.999Z'
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import polars as pl

from engine.schema import CALLBACK_ATTEMPTS

__all__ = [
    "DURATIONS",
    "OUTCOME_SPELLING",
    "SOURCE",
    "PhoneBook",
    "hold_record",
    "iso",
    "normal_form",
    "record",
]

SOURCE: Final = "mindful"
Record = dict[str, Any]
#: Canonical duration column -> Mindful field (whole seconds).
DURATIONS: Final = {
    "callback_ms": "actualCallbackTime",
    "estimated_callback_ms": "estimatedCallbackTime",
    "customer_wait_ms": "customerWaitDuration",
    "talk_ms": "talkDuration",
    "punctuality_ms": "punctuality",
}
OUTCOME_SPELLING: Final = {
    "successful": "Success",
    "unavailable": "Unavailable",
    "failure": "Failure",
    "canceled": "Canceled",
    "abandoned": "Abandoned",
    "other": "Not Completed",
}
_REQUIRED: Final = ("attempt_id", "original_id", "retry_attempt", "type", "created_at", "outcome")
_SEGMENTS: Final = ("Main", "After Hours", "Priority")


def iso(ts: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC (fixed width, so strings sort like instants)."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _ms(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts}: canonical times are UTC-aware")
    ts = ts.astimezone(UTC)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def _whole_s(ms: int | None) -> int | None:
    return None if ms is None else 1000 * ((ms + 500) // 1000)


def normal_form(attempts: pl.DataFrame) -> list[Record]:
    """Canonical attempts (absent optional columns null) as normal-form dicts (module docstring).

    Raises:
        ValueError: a required value is null, a type is not a callback type, or an id repeats.
    """
    missing = [c for c in _REQUIRED if c not in attempts.columns]
    if missing:
        raise ValueError(f"attempts frame lacks required columns {missing}")
    frame = attempts.with_columns(
        pl.lit(None).cast(t).alias(c) for c, t in CALLBACK_ATTEMPTS.items() if c not in attempts
    ).select(pl.col(c).cast(t) for c, t in CALLBACK_ATTEMPTS.items())
    if any(frame[c].null_count() for c in _REQUIRED):
        raise ValueError(f"attempts: {', '.join(_REQUIRED)} must not be null")
    if frame["attempt_id"].is_duplicated().any():
        raise ValueError("attempts: attempt_id must be unique")
    rows = frame.to_dicts()
    for row in rows:
        row["source"] = SOURCE
        for name in ("created_at", "processed_at", "estimated_for", "ended_at"):
            row[name] = _ms(row[name])
        for name in DURATIONS:
            row[name] = _whole_s(row[name])
    return rows


class PhoneBook:
    """One fake caller number per ``customer_key``: distinct keys, distinct numbers, stable.

    Example:
        >>> book = PhoneBook(seed=1)
        >>> book.number("k1") == book.number("k1") != book.number("k2")
        True
    """

    def __init__(self, *, seed: int) -> None:
        self._seed = seed
        self._numbers: dict[str, str] = {}
        self._taken: set[str] = set()

    def number(self, key: str | None) -> str | None:
        """The number of ``key`` (``None`` for ``None``)."""
        if key is None:
            return None
        if key not in self._numbers:
            h = int.from_bytes(hashlib.sha256(f"{self._seed}:{key}".encode()).digest()[:8], "big")
            while True:
                number = f"+1{200 + h % 800}{200 + h // 800 % 800}{h // 640_000 % 10_000:04d}"
                if number not in self._taken:
                    break
                h += 7919
            self._numbers[key] = number
            self._taken.add(number)
        return self._numbers[key]


def _seconds(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def _gap(later: datetime | None, earlier: datetime | None) -> int:
    return (
        0 if later is None or earlier is None else max(0, (later - earlier) // timedelta(seconds=1))
    )


def _target_number(target: str | None) -> str:
    digits = int(hashlib.sha256(f"did:{target}".encode()).hexdigest()[:8], 16) % 10_000
    return f"+1855555{digits:04d}"


def _source(row: Mapping[str, Any], rng: random.Random) -> str | None:
    target = row["call_target_id"]
    if row["source_type"] == "digital":
        return (
            "CBWidget:"
            + hashlib.md5(f"widget:{target}".encode(), usedforsecurity=False).hexdigest()
        )
    if row["source_type"] == "voice":
        return ("Phone:" if rng.random() < 0.5 else "") + _target_number(target)
    return None


def _pii(rng: random.Random, phone: str | None, voice: bool) -> tuple[str | None, Record]:
    """``ani`` and ``metadata``: the caller's line (mostly the callback number) and typed data."""
    ani = phone if voice and rng.random() < 0.8 else None
    if voice and ani is None:
        ani = f"+1{rng.randrange(201, 990)}{rng.randrange(200, 1000)}{rng.randrange(10_000):04d}"
    metadata: Record = {}
    if rng.random() < 0.3:
        metadata = {
            "customerName": rng.choice(
                ("Ada Byron", "Alan Kay", "Grace Hopper", "Edsger Dijkstra")
            ),
            "accountNumber": f"{rng.randrange(10**9):09d}",
        }
    return ani, metadata


def record(row: Mapping[str, Any], phone: str | None, seed: int) -> Record:
    """The Mindful record of one normal-form attempt, keys in the seed's order."""
    rng = random.Random(f"{seed}:mindful:{row['attempt_id']}")
    outcome, voice = row["outcome"], row["source_type"] == "voice"
    successful, agent_first = outcome == "successful", row["first_party_called"] == "agent"
    created, processed, ended = row["created_at"], row["processed_at"], row["ended_at"]
    est, cb = row["estimated_callback_ms"], row["callback_ms"]
    party = row["first_party_called"]
    if party == "customer" and rng.random() < 0.5:
        party = "customer_first"
    ani, metadata = _pii(rng, phone, voice)
    unreachable = outcome in ("unavailable", "failure")
    accuracy = None if not est or cb is None else round(max(0.0, 1 - abs(cb - est) / est), 5)
    return {
        "activeDuration": _gap(ended, processed),
        "actualCallbackTime": _seconds(cb),
        "agentBusy": unreachable and agent_first and rng.random() < 0.3,
        "agentDelay": rng.randrange(0, 15) if successful else 0,
        "agentHangup": successful and rng.random() < 0.4,
        "agentLegError": outcome == "failure" and agent_first,
        "agentLegRejected": False,
        "agentLegTimeout": False,
        "agentWaitDuration": rng.randrange(0, 30) if processed else 0,
        "ani": ani,
        "callTargetId": row["call_target_id"],
        "callTargetName": row["call_target_name"],
        "choseToHold": False,
        "createdAt": iso(created),
        "customerBusy": unreachable and not agent_first and rng.random() < 0.3,
        "customerDelay": rng.randrange(1, 8) if successful else 0,
        "customerHangup": outcome == "abandoned" or (successful and rng.random() < 0.5),
        "customerLegError": outcome == "failure" and not agent_first,
        "customerLegRejected": False,
        "customerLegTimeout": outcome == "unavailable" and rng.random() < 0.5,
        "customerRescheduled": False,
        "customerWaitDuration": _seconds(row["customer_wait_ms"]),
        "disconnectRescue": False,
        "duplicateCallback": False,
        "earlyHangup": False,
        "endedAt": iso(ended),
        "endOfBusinessDay": False,
        "estimatedCallbackTime": _seconds(est),
        "estimatedFor": iso(row["estimated_for"]),
        "estimatePercentAccuracy": accuracy,
        "firstPartyCalled": party,
        "hasRetry": row["has_retry"],
        "id": row["attempt_id"],
        "leaveVoicemail": outcome == "unavailable" and agent_first and rng.random() < 0.2,
        "maxEcbtExceeded": False,
        "maxScheduledCallsExceeded": False,
        "maxTollRateExceeded": False,
        "metadata": metadata,
        "nextDayCallbackOffered": False,
        "nextDayCallbackScheduled": False,
        "originalId": row["original_id"],
        "outcome": OUTCOME_SPELLING[outcome],
        "outsideHours": False,
        "phoneNumber": phone,
        "priorityQueueTimedOut": False,
        "processedAt": iso(processed),
        "punctuality": _seconds(row["punctuality_ms"]),
        "registrationDuration": rng.randrange(15, 60) if voice else None,
        "retryAttempt": row["retry_attempt"],
        "segmentName": rng.choice((None, *_SEGMENTS)),
        "source": _source(row, rng),
        "systemHangup": not successful,
        "talkDuration": _seconds(row["talk_ms"]),
        "type": row["type"],
        "waitlistDelay": _gap(processed, created) if row["type"] == "asap" else 0,
        "wasPunctual": row["was_punctual"],
    }


def hold_record(record_id: str, at: datetime, target: tuple[str, str | None], seed: int) -> Record:
    """A non-callback record: an inbound caller offered a callback who chose to hold.

    Example:
        >>> at = datetime(2023, 6, 8, 12, tzinfo=UTC)
        >>> r = hold_record("h1", at, ("5298", "Calls test"), 0)
        >>> r["type"], r["outcome"], r["choseToHold"], r["phoneNumber"]
        ('unknown', 'Chose Hold', True, None)
    """
    rng = random.Random(f"{seed}:hold:{record_id}")
    base = {"call_target_id": target[0], "call_target_name": target[1], "source_type": "voice"}
    row = dict.fromkeys(CALLBACK_ATTEMPTS) | base
    row |= {"attempt_id": record_id, "original_id": record_id, "retry_attempt": 0}
    row |= {"created_at": _ms(at), "ended_at": _ms(at + timedelta(seconds=rng.randrange(20, 900)))}
    row |= {"type": "unknown", "outcome": "other", "has_retry": False}
    out = record(row, None, seed)
    ani = f"+1{rng.randrange(201, 990)}{rng.randrange(200, 1000)}{rng.randrange(10_000):04d}"
    return out | {
        "ani": ani,
        "choseToHold": True,
        "estimatedCallbackTime": rng.randrange(120, 1800),
        "outcome": "Chose Hold",
        "registrationDuration": rng.randrange(5, 20),
        "source": _target_number(target[0]),
        "systemHangup": False,
    }
