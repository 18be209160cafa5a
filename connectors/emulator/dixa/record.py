"""Canonical contact segments -> Dixa analytics records with typed fields (seed 004).

This is the mapping the ``dixa`` connector inverts. A Dixa conversation is one canonical contact;
the ``conversations`` record id has **one record per queue offer** (canonical segment), so a
transferred conversation has one record per queue it was offered to. Its
``primaryTimestampField`` is ``offered_at``; a field whose value is null is left out of
``fields``. Durations are ``DoubleField`` seconds with millisecond precision (``ms / 1000``).

==================  ===========================================================================
canonical           ``conversations`` field (``_type``)
==================  ===========================================================================
source              the constant ``"dixa"``
contact_id          ``csid`` (``LongField``), as a decimal string
segment_no          ``offer_number`` (``LongField``)
channel             ``initial_channel`` (``StringField``): ``PSTN_PHONE`` voice, ``CALLBACK``
                    callback, ``WIDGET_CHAT`` chat, ``EMAIL`` / ``CONTACT_FORM`` email,
                    ``WHATSAPP`` / ``FACEBOOK_MESSENGER`` / ``SMS`` messaging
direction           ``initial_direction`` (``StringField``): ``INBOUND`` / ``OUTBOUND``
queue_id            ``queue_id`` value (``StringField``)
queue_name          ``queue_id`` label
offered_at          ``offered_at`` (``TimestampField``; also the primary timestamp)
answered_at         ``answered_at`` (``TimestampField``; absent when null)
ended_at            ``ended_at`` (``TimestampField``; absent when null)
outcome             ``queue_outcome`` (``StringField``): ``ANSWERED``, ``ABANDONED``,
                    ``WAITING`` (open), ``TRANSFERRED`` / ``VOICEMAIL`` /
                    ``CALLBACK_REQUESTED`` / ``TIMEOUT`` (flow_out)
wait_ms ...         ``queue_time``, ``talk_time``, ``hold_time``, ``wrap_up_time``
                    (``DoubleField`` seconds) for wait, talk, hold, acw
sl_threshold_ms     ``sla_threshold`` (``DoubleField`` seconds; absent when null)
messages            ``message_count`` (``LongField``)
csat_responses      ``rating_count`` (``LongField``)
csat_score          ``rating_score`` (``LongField``: the sum of the ratings)
updated_at          ``updated_at`` (``TimestampField``)
==================  ===========================================================================

Unmapped decorations: ``contact_point`` (the company's own endpoint the customer contacted, as in
the seed's sample: not PII), ``agent_id`` (label: the agent's name), ``transferred``
(``BooleanField``), ``tag_ids`` (``ListField``), and the PII ``requester_id``,
``requester_name``, ``requester_email`` and ``requester_phone`` (voice, callback, WhatsApp and
SMS). With ``unknown_type`` every record also gets ``sentiment`` of ``_type`` ``SentimentField``
whose value is an object.

Normal form (what :func:`normalise` serves; input already in it round-trips exactly): ``source``
``dixa``; contact ids that are not positive decimal integers get fresh csids; ``segment_no``
renumbered 1..n in input order; timestamps truncated to milliseconds; null direction inbound;
``queue_name`` the first non-null name the queue id was seen with (else the queue id); null
``wait_ms`` derived as the validator does (answer or end minus offer, else 0); other null counts
and durations 0; null ``updated_at`` the latest of offer, answer and end.

Example:
    >>> from datetime import datetime, UTC
    >>> iso(datetime(2023, 4, 21, 10, 23, 14, 293999, tzinfo=UTC))
    '2023-04-21T10:23:14.293Z'
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "CHANNEL_VALUES",
    "SOURCE",
    "Contact",
    "iso",
    "normalise",
    "typed",
]

SOURCE = "dixa"
Record = dict[str, Any]
#: canonical channel -> Dixa ``initial_channel`` values (the first is the usual one).
CHANNEL_VALUES: Mapping[str, tuple[str, ...]] = {
    "voice": ("PSTN_PHONE",),
    "callback": ("CALLBACK",),
    "chat": ("WIDGET_CHAT",),
    "email": ("EMAIL", "EMAIL", "CONTACT_FORM"),
    "messaging": ("WHATSAPP", "FACEBOOK_MESSENGER", "SMS"),
}
_LABELS = {
    "PSTN_PHONE": "Phone",
    "CALLBACK": "Callback",
    "WIDGET_CHAT": "Chat",
    "EMAIL": "Email",
    "CONTACT_FORM": "Contact Form",
    "WHATSAPP": "WhatsApp",
    "FACEBOOK_MESSENGER": "Facebook Messenger",
    "SMS": "SMS",
    "INBOUND": "Inbound",
    "OUTBOUND": "Outbound",
    "ANSWERED": "Answered",
    "ABANDONED": "Abandoned",
    "WAITING": "Waiting",
    "TRANSFERRED": "Transferred",
    "VOICEMAIL": "Voicemail",
    "CALLBACK_REQUESTED": "Callback requested",
    "TIMEOUT": "Timed out",
}
_ENDPOINTS = {
    "PSTN_PHONE": "+4570200300",
    "CALLBACK": "+4570200300",
    "WIDGET_CHAT": "widget-main",
    "EMAIL": "support@company.example",
    "CONTACT_FORM": "support@company.example",
    "WHATSAPP": "+4570200301",
    "FACEBOOK_MESSENGER": "Company Page",
    "SMS": "+4570200302",
}
_PHONE_CHANNELS = ("PSTN_PHONE", "CALLBACK", "WHATSAPP", "SMS")
_FIRST = ("Freja", "Mads", "Ida", "Lucas", "Emma", "Noah", "Alma", "Oscar", "Clara", "Karl")
_LAST = ("Hansen", "Nielsen", "Jensen", "Larsen", "Berg", "Holm", "Dahl", "Lund", "Krog", "Vinther")
_TAGS = ("vip", "billing", "complaint", "follow-up", "refund", "new-customer")
_NS = uuid.UUID("6f1b0a52-8c3e-4f7e-9a63-3c1d2e0b9d11")
_ZERO = ("talk_ms", "hold_ms", "acw_ms", "messages", "csat_responses", "csat_score")


def iso(ts: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC, as Dixa's timestamps (``None`` stays ``None``)."""
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


def typed(kind: str, value: Any, label: str | None = None) -> Record | None:
    """One typed field value (``None`` when ``value`` is null: the field is left out).

    Example:
        >>> typed("StringField", "INBOUND", "Inbound")
        {'value': 'INBOUND', 'label': 'Inbound', '_type': 'StringField'}
    """
    if value is None:
        return None
    if kind == "StringField":
        return {"value": value, "label": value if label is None else label, "_type": kind}
    return {"value": value, "_type": kind}


def _seconds(ms: int | None) -> Record | None:
    return typed("DoubleField", None if ms is None else ms / 1000)


def _enum(value: str) -> Record | None:
    return typed("StringField", value, _LABELS.get(value, value.title()))


def _agent(csid: int, offer: int) -> tuple[str, str]:
    k = (csid * 7919 + offer * 104_729) % 40
    return str(uuid.uuid5(_NS, f"agent-{k}")), f"{_FIRST[k % 10]} {_LAST[k // 10 % 10]}"


@dataclass(frozen=True)
class Contact:
    """One Dixa conversation: its csid and its normalised canonical segments."""

    csid: int
    segments: tuple[Record, ...]

    @property
    def contact_id(self) -> str:
        """The canonical contact id (the csid as a decimal string)."""
        return str(self.csid)

    def decorations(self, seed: int) -> Record:
        """Values with no canonical meaning, stable per (seed, csid)."""
        rng = random.Random(f"{seed}:dixa:{self.csid}")
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        return {
            "requester_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "requester_name": f"{first} {last}",
            "requester_email": f"{first}.{last}{rng.randrange(1000)}@example.com".lower(),
            "requester_phone": f"+4520{rng.randrange(10**6):06d}",
            "channel_pick": rng.randrange(6),
            "flow_out": rng.choice(("TRANSFERRED", "VOICEMAIL", "CALLBACK_REQUESTED", "TIMEOUT")),
            "tags": sorted(rng.sample(_TAGS, rng.choice((0, 0, 1, 2)))),
            "sentiment": round(rng.uniform(-1, 1), 3),
        }

    def channel(self, segment: Record, deco: Record) -> str:
        """The Dixa ``initial_channel`` of a segment."""
        values = CHANNEL_VALUES[segment["channel"]]
        return values[int(deco["channel_pick"]) % len(values)]

    def outcome(self, segment: Record, deco: Record) -> str:
        """The Dixa ``queue_outcome`` of a segment."""
        outcome = segment["outcome"]
        if outcome != "flow_out":
            plain = {"answered": "ANSWERED", "abandoned": "ABANDONED", "open": "WAITING"}
            return plain[str(outcome)]
        if segment["segment_no"] < len(self.segments):
            return "TRANSFERRED"
        kind = str(deco["flow_out"])
        phone = segment["channel"] in ("voice", "callback")
        return kind if phone or kind in ("TRANSFERRED", "TIMEOUT") else "TIMEOUT"

    def conversations(self, seed: int, *, unknown_type: bool = False) -> list[Record]:
        """The ``conversations`` records (one per queue offer)."""
        deco, out = self.decorations(seed), []
        for s in self.segments:
            channel = self.channel(s, deco)
            answered = s["outcome"] == "answered"
            agent = _agent(self.csid, s["segment_no"]) if answered else (None, None)
            pairs: list[tuple[str, Record | None]] = [
                ("csid", typed("LongField", self.csid)),
                ("offer_number", typed("LongField", s["segment_no"])),
                ("initial_direction", _enum(s["direction"].upper())),
                ("initial_channel", _enum(channel)),
                ("contact_point", typed("StringField", _ENDPOINTS[channel])),
                ("queue_id", typed("StringField", s["queue_id"], s["queue_name"])),
                ("agent_id", typed("StringField", agent[0], agent[1])),
                ("requester_id", typed("StringField", deco["requester_id"])),
                ("requester_name", typed("StringField", deco["requester_name"])),
                ("requester_email", typed("StringField", deco["requester_email"])),
                (
                    "requester_phone",
                    typed("StringField", deco["requester_phone"])
                    if channel in _PHONE_CHANNELS
                    else None,
                ),
                ("offered_at", typed("TimestampField", iso(s["offered_at"]))),
                ("answered_at", typed("TimestampField", iso(s["answered_at"]))),
                ("ended_at", typed("TimestampField", iso(s["ended_at"]))),
                ("queue_outcome", _enum(self.outcome(s, deco))),
                ("queue_time", _seconds(s["wait_ms"])),
                ("talk_time", _seconds(s["talk_ms"])),
                ("hold_time", _seconds(s["hold_ms"])),
                ("wrap_up_time", _seconds(s["acw_ms"])),
                ("sla_threshold", _seconds(s["sl_threshold_ms"])),
                ("message_count", typed("LongField", s["messages"])),
                ("rating_count", typed("LongField", s["csat_responses"])),
                ("rating_score", typed("LongField", s["csat_score"])),
                ("transferred", typed("BooleanField", s["segment_no"] > 1)),
                ("tag_ids", typed("ListField", deco["tags"])),
                ("updated_at", typed("TimestampField", iso(s["updated_at"]))),
            ]
            if unknown_type:
                mood = {"score": deco["sentiment"], "label": "positive", "model": {"v": 2}}
                pairs.append(("sentiment", typed("SentimentField", mood)))
            out.append(_record("offered_at", s["offered_at"], pairs))
        return out

    def closed(self, seed: int) -> list[Record]:
        """The ``closed_conversations`` record, if the conversation is closed."""
        last = self.segments[-1]
        if last["outcome"] == "open" or last["ended_at"] is None:
            return []
        deco, first = self.decorations(seed), self.segments[0]
        answered = [s for s in self.segments if s["outcome"] == "answered"]
        agent = _agent(self.csid, answered[-1]["segment_no"]) if answered else (None, None)
        by = {"answered": "AGENT", "abandoned": "ENDUSER"}.get(last["outcome"], "UNKNOWN")
        channel = self.channel(first, deco)
        pairs = [
            ("csid", typed("LongField", self.csid)),
            ("initial_direction", _enum(first["direction"].upper())),
            ("initial_channel", _enum(channel)),
            ("contact_point", typed("StringField", _ENDPOINTS[channel])),
            ("closed_at", typed("TimestampField", iso(last["ended_at"]))),
            ("conversation_id", typed("LongField", self.csid)),
            ("agent_id", typed("StringField", agent[0], agent[1])),
            ("queue_id", typed("StringField", last["queue_id"], last["queue_name"])),
            ("closed_by", typed("StringField", by, by.title())),
        ]
        return [_record("closed_at", last["ended_at"], pairs)]

    def ratings(self, seed: int) -> list[Record]:
        """The ``ratings`` records: one per segment with survey responses."""
        out = []
        for s in self.segments:
            n = s["csat_responses"]
            if n <= 0:
                continue
            at = s["ended_at"] or s["updated_at"]
            agent = _agent(self.csid, s["segment_no"]) if s["outcome"] == "answered" else None
            pairs = [
                ("conversation_id", typed("LongField", self.csid)),
                ("agent_id", typed("StringField", *agent) if agent else None),
                ("queue_id", typed("StringField", s["queue_id"], s["queue_name"])),
                ("rating_type", typed("StringField", "CSAT", "CSAT")),
                ("rating_score", typed("LongField", (2 * s["csat_score"] + n) // (2 * n))),
                ("rated_at", typed("TimestampField", iso(at))),
            ]
            out.append(_record("rated_at", at, pairs))
        return out


def _record(primary: str, at: datetime, pairs: Iterable[tuple[str, Record | None]]) -> Record:
    return {
        "primaryTimestampField": {"name": primary, "timestamp": iso(at)},
        "fields": [{"name": name, "field": f} for name, f in pairs if f is not None],
    }


def _derived_wait(s: Record) -> int:
    until = s["answered_at"] if s["outcome"] == "answered" else s["ended_at"]
    return 0 if until is None else (until - s["offered_at"]) // timedelta(milliseconds=1)


def normalise(rows: Iterable[Mapping[str, Any]], *, csid: int, names: Mapping[str, str]) -> Contact:
    """Normalise one contact's canonical rows (see the module docstring) into a :class:`Contact`.

    Args:
        rows: the contact's segments as canonical dicts (``offered_at`` and ``outcome`` set).
        csid: the conversation id it is served under.
        names: queue id -> the name the emulator serves for it.
    """
    segments: list[Record] = []
    for n, row in enumerate(sorted(rows, key=lambda r: r["segment_no"]), start=1):
        seg = {
            **row,
            "source": SOURCE,
            "contact_id": str(csid),
            "segment_no": n,
            "direction": row["direction"] or "inbound",
            "queue_name": names.get(row["queue_id"]) or row["queue_id"],
            **{k: _ms(row[k]) for k in ("offered_at", "answered_at", "ended_at", "updated_at")},
            **{k: row[k] or 0 for k in _ZERO},
        }
        if seg["wait_ms"] is None:
            seg["wait_ms"] = _derived_wait(seg)
        if seg["updated_at"] is None:
            seg["updated_at"] = max(
                t for t in (seg["offered_at"], seg["answered_at"], seg["ended_at"]) if t
            )
        segments.append(seg)
    return Contact(csid, tuple(segments))
