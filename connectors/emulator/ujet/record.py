"""Canonical contact segments -> UJET Manager API call and chat records (seed 002).

This is the mapping the ``ujet`` connector inverts. One UJET record per contact; one
``queue_durations[]`` entry per canonical segment, in ``segment_no`` order.

Canonical column <- UJET field, for ``queue_durations[i]`` of a record (``q`` below):

==================  ===========================================================================
source              the constant ``"ujet"``
contact_id          ``"call-{id}"`` for ``GET /calls``, ``"chat-{id}"`` for ``GET /chats``
segment_no          ``i + 1`` (array order is segment order)
channel             ``/calls`` -> ``voice``, ``/chats`` -> ``chat``
direction           calls: ``outbound`` iff ``call_type == "Voice Outbound"``; chats: ``inbound``
queue_id            ``str(q.menu_path_id)``
queue_name          ``name`` of the menu-path object of the same record whose
                    ``materialized_path`` ends in ``/{menu_path_id}``: the record's ``menu_path``
                    (last queue) or a ``transfers[].from_menu`` / ``to_menu``; ``selected_menu``
                    (``id``, ``name``) is the first queue
offered_at          ``q.started_at``
outcome             ``q.event``: ``answered`` -> answered, ``abandoned`` -> abandoned,
                    ``transferred`` / ``deflected`` / ``voicemail`` / ``scheduled`` / ``expired``
                    -> flow_out, ``null`` -> open
answered_at         ``q.ended_at`` when answered, else null
ended_at            answered: ``ended_at`` of the segment's handle entry; else ``q.ended_at``
                    (null while open)
wait_ms             ``1000 * q.queue_duration`` (``wait_duration`` is deprecated: not used)
talk_ms             answered: ``1000 * handle.call_duration`` (chats: ``chat_duration``); else 0
acw_ms              answered: ``1000 * handle.acw_duration``; else 0
hold_ms             answered: ``1000 * hold_duration`` of the segment's agent participant; else 0
sl_threshold_ms     ``1000 * q.service_level_target_time`` (null stays null)
messages            chats: the record's ``message_count`` on the carrier segment, 0 on the
                    others; calls: 0
csat_responses      1 on the carrier segment when the record's ``rating`` is not null, else 0
csat_score          ``rating`` on the carrier segment, else 0
updated_at          the record's ``updated_at``, on every segment
==================  ===========================================================================

* The *carrier* segment is the last segment with outcome answered, else the last segment.
* *Handle entry*: ``handle_durations[]`` has one entry per answered segment, in segment order (the
  k-th answered ``q`` <-> the k-th entry); it also has ``started_at == q.ended_at`` and the same
  ``menu_path_id``. *Agent participant*: ``participants[]`` entries with ``type == "agent"``, one
  per answered segment in the same order, with ``connected_at == q.ended_at``.
* Records with no ``queue_durations`` (IVR menu abandons, outbound dials) yield no segments.
* All durations are whole seconds (integers, as in the seed); timestamps are ISO 8601 UTC with
  milliseconds and ``Z``.

Normalisation (what the emulator actually serves; :func:`normalise` output equals its input when
the input already has this form, so such a frame round-trips exactly): timestamps truncated to
milliseconds; durations rounded half up to whole seconds; ``segment_no`` renumbered 1..n; outcome
open -> ``ended_at`` null; not answered -> ``answered_at`` null and talk/hold/acw 0; messages
(chats only, summed) and csat (one response, rating = mean score rounded half up, clamped to 1..5)
moved to the carrier segment; ``updated_at`` = the contact's latest (if all are null, its latest
offered/answered/ended time), equal on all its segments; contact ids not of the form ``call-<n>``
(voice) / ``chat-<n>`` (chat) and queue ids not of the form ``<n>`` (no leading zero) get fresh
numbers; a queue id keeps the first non-null name it was seen with. A reference decoder that
inverts all this is ``decode`` in ``tests/connectors/test_emulator_ujet.py``.

Fields marked "may be considered PII" by the seed carry realistic fake values: ``end_user``
(``id``, ``identifier``: a phone number for IVR calls and SMS chats, an e-mail otherwise,
``out_contact_id``), agent names in ``agent_info`` / ``transfers[]``, participants' ``user_id`` /
``end_user_id``, ``photos[]`` / ``videos[]`` URLs, plus ``recording_url`` and ``outbound_number``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from connectors.emulator.ujet import render as ujet_render
from engine.schema import CONTACTS, CONTACTS_REQUIRED

__all__ = [
    "ENDPOINTS",
    "SOURCE",
    "Contact",
    "IdAllocator",
    "contact_id",
    "extra_calls",
    "normalise",
]

SOURCE = "ujet"
ENDPOINTS: Mapping[str, str] = {"voice": "calls", "chat": "chats"}
_CONTACT_ID = re.compile(r"(call|chat)-([1-9][0-9]{0,17})")
_NUMBER = re.compile(r"[1-9][0-9]{0,17}")
_ZERO = ("wait_ms", "talk_ms", "hold_ms", "acw_ms", "messages", "csat_responses", "csat_score")
_ID_BASE: Mapping[str, int] = {"calls": 100_000, "chats": 500_000, "menus": 3_000}


@dataclass(frozen=True)
class Contact:
    """One UJET record's worth of normalised canonical segments."""

    endpoint: str
    ujet_id: int
    segments: tuple[dict[str, Any], ...]

    @property
    def contact_id(self) -> str:
        """The canonical contact id (``call-<id>`` / ``chat-<id>``)."""
        return contact_id(self.endpoint, self.ujet_id)

    def render(self, seed: int) -> dict[str, Any]:
        """The UJET JSON record of this contact."""
        return ujet_render.record(self.endpoint, self.ujet_id, self.segments, seed)


def contact_id(endpoint: str, ujet_id: int) -> str:
    """The canonical contact id of a UJET record: ``call-<id>`` or ``chat-<id>``."""
    return f"{endpoint[:-1]}-{ujet_id}"


class IdAllocator:
    """Hands out UJET record ids and menu ids, keeping conforming canonical ids unchanged."""

    def __init__(self) -> None:
        self.used: dict[str, set[int]] = {"calls": set(), "chats": set(), "menus": set()}
        self._top = dict(_ID_BASE)  # the highest id handed out or claimed, per space
        self.menus: dict[str, int] = {}
        self.menu_names: dict[int, str | None] = {}

    def next_id(self, space: str) -> int:
        """A fresh id in ``calls``, ``chats`` or ``menus``."""
        new = self._top[space] + 1
        self._claim(space, new)
        return new

    def _claim(self, space: str, number: int) -> None:
        self.used[space].add(number)
        self._top[space] = max(self._top[space], number)

    def claim_contacts(self, channels: Mapping[str, str]) -> dict[str, tuple[str, int]]:
        """Map canonical contact ids (-> channel) to (endpoint, UJET id), deterministically."""
        out: dict[str, tuple[str, int]] = {}
        for cid, channel in sorted(channels.items()):
            endpoint, match = ENDPOINTS[channel], _CONTACT_ID.fullmatch(cid)
            if match and match[1] == endpoint[:-1] and int(match[2]) not in self.used[endpoint]:
                out[cid] = (endpoint, int(match[2]))
                self._claim(endpoint, int(match[2]))
        for cid in sorted(set(channels) - set(out)):
            endpoint = ENDPOINTS[channels[cid]]
            out[cid] = (endpoint, self.next_id(endpoint))
        return out

    def claim_menus(self, queues: Iterable[tuple[str, str | None]]) -> None:
        """Register (queue id, name) pairs: numeric ids are kept, others numbered after them."""
        pairs = list(queues)
        ids = sorted(
            {q for q, _ in pairs} - set(self.menus), key=lambda q: (not _NUMBER.fullmatch(q), q)
        )
        for queue_id in ids:
            taken = not _NUMBER.fullmatch(queue_id) or int(queue_id) in self.used["menus"]
            menu = self.menus[queue_id] = self.next_id("menus") if taken else int(queue_id)
            self._claim("menus", menu)
            self.menus.setdefault(str(menu), menu)  # served ids map to themselves
        for queue_id, name in pairs:
            menu = self.menus[queue_id]
            if self.menu_names.get(menu) is None:
                self.menu_names[menu] = name


def conform(contacts: pl.DataFrame) -> pl.DataFrame:
    """Cast to the canonical schema (absent optional columns default) and check what UJET needs."""
    missing = [c for c in CONTACTS_REQUIRED if c not in contacts.columns]
    if missing:
        raise ValueError(f"contacts frame lacks required columns {missing}")
    defaults: dict[str, object] = {c: 0 for c, t in CONTACTS.items() if t == pl.Int64()}
    defaults["direction"] = "inbound"
    defaults["sl_threshold_ms"] = None
    frame = contacts.with_columns(
        pl.lit(defaults.get(c)).cast(t).alias(c) for c, t in CONTACTS.items() if c not in contacts
    ).select(pl.col(c).cast(t) for c, t in CONTACTS.items())
    keys = ("contact_id", "segment_no", "channel", "queue_id", "offered_at", "outcome")
    if any(frame[c].null_count() for c in keys):
        raise ValueError(f"contacts: {', '.join(keys)} must not be null")
    if not frame["channel"].cast(pl.String).is_in(list(ENDPOINTS)).all():
        raise ValueError("UJET serves the voice and chat channels only")
    if frame.select(pl.struct("contact_id", "segment_no").is_duplicated().any()).item():
        raise ValueError("contacts: (contact_id, segment_no) must be unique")
    return frame


def _ms(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts}: canonical times are UTC-aware")
    ts = ts.astimezone(UTC)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def _whole_s(ms: int | None) -> int:
    return 0 if ms is None else 1000 * ((ms + 500) // 1000)


def normalise(
    rows: Iterable[Mapping[str, Any]], *, endpoint: str, ujet_id: int, ids: IdAllocator
) -> Contact:
    """Normalise one contact's canonical rows (see the module docstring) into a :class:`Contact`.

    Args:
        rows: the contact's segments as canonical dicts (queue ids already claimed in ``ids``).
        endpoint: ``calls`` or ``chats``.
        ujet_id: the record id.
        ids: the allocator holding the queue id -> menu id map and the menu names.
    """
    ordered = sorted(rows, key=lambda r: r["segment_no"])
    segments: list[dict[str, Any]] = []
    for n, row in enumerate(ordered, start=1):
        answered, menu = row["outcome"] == "answered", ids.menus[row["queue_id"]]
        sl = row["sl_threshold_ms"]
        segments.append(
            {
                **row,
                "source": SOURCE,
                "contact_id": contact_id(endpoint, ujet_id),
                "segment_no": n,
                "direction": row["direction"] or "inbound",
                "queue_id": str(menu),
                "queue_name": ids.menu_names[menu],
                "offered_at": _ms(row["offered_at"]),
                "answered_at": _ms(row["answered_at"]) if answered else None,
                "ended_at": None if row["outcome"] == "open" else _ms(row["ended_at"]),
                "wait_ms": _whole_s(row["wait_ms"]),
                "sl_threshold_ms": None if sl is None else _whole_s(sl),
                **{
                    k: _whole_s(row[k]) if answered else 0 for k in ("talk_ms", "hold_ms", "acw_ms")
                },
                "messages": 0,
                "csat_responses": 0,
                "csat_score": 0,
            }
        )
    answered_segments = [s for s in segments if s["outcome"] == "answered"]
    carrier = answered_segments[-1] if answered_segments else segments[-1]
    if endpoint == "chats":
        carrier["messages"] = sum(max(0, r["messages"] or 0) for r in ordered)
    responses = sum(r["csat_responses"] or 0 for r in ordered)
    if responses > 0:
        score = sum(r["csat_score"] or 0 for r in ordered)
        rating = min(5, max(1, (2 * score + responses) // (2 * responses)))
        carrier["csat_responses"], carrier["csat_score"] = 1, rating
    stamps: list[datetime] = [r["updated_at"] for r in ordered if r["updated_at"] is not None]
    stamps = stamps or [s[k] for s in segments for k in ("offered_at", "answered_at", "ended_at")]
    updated = _ms(max(t for t in stamps if t is not None))
    for segment in segments:
        segment["updated_at"] = updated
    return Contact(endpoint, ujet_id, tuple(segments))


def extra_calls(
    ids: IdAllocator,
    *,
    menu_abandons: int,
    outbound: int,
    start: datetime,
    end: datetime,
    seed: int,
) -> list[dict[str, Any]]:
    """Call records never offered to a queue: IVR menu abandons and outbound dials.

    Their times are spread uniformly over ``[start, end]``; they have no ``queue_durations`` (so
    they yield no canonical segment) and ids after every id already handed out.
    """
    rng = random.Random(f"{seed}:extras")
    span_ms = max(0, int((end - start).total_seconds() * 1000))
    out = []
    for kind in ["menu_abandon"] * menu_abandons + ["outbound"] * outbound:
        at = _ms(start + timedelta(milliseconds=rng.randrange(span_ms + 1)))
        assert at is not None
        ended = at + timedelta(seconds=rng.randrange(8, 90))
        seg: dict[str, Any] = dict.fromkeys(_ZERO, 0) | {
            "segment_no": 1,
            "queue_id": "1",
            "queue_name": None,
            "offered_at": at,
            "direction": "inbound",
            "outcome": "abandoned",
            "answered_at": None,
            "ended_at": ended,
            "sl_threshold_ms": None,
            "updated_at": ended,
        }
        if kind == "outbound":
            answered, talk = at + timedelta(seconds=rng.randrange(5, 25)), rng.randrange(30, 600)
            acw = rng.randrange(0, 120)
            seg |= {
                "direction": "outbound",
                "outcome": "answered",
                "answered_at": answered,
                "ended_at": answered + timedelta(seconds=talk),
                "talk_ms": 1000 * talk,
                "acw_ms": 1000 * acw,
                "updated_at": answered + timedelta(seconds=talk + acw),
            }
        rid = ids.next_id("calls")
        call = ujet_render.record("calls", rid, [seg], seed) | {
            "created_at": ujet_render.iso(at),
            "queued_at": None,
            "queue_duration": 0,
            "wait_duration": 0,
            "selected_menu": None,
            "menu_path": None,
            "queue_durations": [],
        }
        if kind == "outbound":
            call["handle_durations"] = [
                entry | {"menu_path_id": None, "wait_duration": 0}
                for entry in call["handle_durations"]
            ]
        else:
            call |= {
                "call_type": "Voice Inbound (IVR)",
                "status": "failed",
                "sub_status": "Failed: Abandoned in menu",
                "fail_reason": "eu_in_menu_abandoned",
                "adapter_fail_code": 20004,
                "adapter_fail_message": ujet_render.ADAPTER_FAIL_MESSAGES[20004],
            }
        out.append(call)
    return out
