"""UJET call and chat JSON records, field for field as seed 002 shows them.

The canonical side and the mapping contract live in :mod:`connectors.emulator.ujet.record`; this
module only draws the shapes: key names, order and types follow the seed's models (integer
seconds for durations, ISO 8601 UTC timestamps with milliseconds, integer ids). Decorations that
carry no canonical meaning (call and chat types, agents, end users, PII, ticket ids, flow-out kind)
are drawn from a generator seeded by the record id, so re-rendering a record after a change keeps
them stable.

Example:
    >>> iso(datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC))
    '2024-05-01T09:30:00.123Z'
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["ADAPTER_FAIL_MESSAGES", "FLOW_OUT_EVENTS", "iso", "record"]

#: ``queue_durations[].event`` values that mean flow_out (``answered``/``abandoned`` map to
#: themselves; ``null`` means still open).
FLOW_OUT_EVENTS = ("transferred", "deflected", "voicemail", "scheduled", "expired")

_FIRST = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Riley", "Casey", "Jamie", "Avery", "Quinn")
_LAST = ("Rivera", "Chen", "Patel", "Okafor", "Novak", "Silva", "Larsen", "Kim", "Haddad", "Moreau")
_ROOT = {"calls": 10, "chats": 20}  # parent menu of every queue: materialized_path "root/id"
_STATES: dict[tuple[str, str], tuple[str, str | None, str | None, int | None]] = {
    # (endpoint, outcome or flow-out kind) -> status, sub_status, fail_reason, adapter_fail_code
    ("calls", "open"): ("queued", None, "nothing", None),
    ("calls", "in_progress"): ("connected", None, "nothing", None),
    ("calls", "answered"): ("finished", "Finished: Disconnected by end user", "nothing", None),
    ("calls", "abandoned"): ("failed", "Failed: Abandoned by end user", "eu_abandoned", 20003),
    ("calls", "deflected"): ("deflected", "Deflected: Over capacity", "nothing", None),
    ("calls", "voicemail"): ("voicemail_received", "Voicemail: Over capacity", "nothing", None),
    ("calls", "scheduled"): ("scheduled", "Scheduled: Disconnected by unknown", "nothing", None),
    ("chats", "open"): ("queued", None, None, None),
    ("chats", "in_progress"): ("assigned", None, None, None),
    ("chats", "answered"): ("finished", "Disconnected by end user", None, None),
    ("chats", "abandoned"): ("canceled", "Canceled by end user", None, None),
    ("chats", "expired"): ("failed", "Expired in queue", "expired", None),
}
ADAPTER_FAIL_MESSAGES = {
    20003: "This call was abandoned by the customer.",
    20004: "This call was abandoned by the customer during menu selection.",
}
Record = dict[str, Any]


def iso(ts: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC (fixed width, so strings sort like instants)."""
    if ts is None:
        return None
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"


def _secs(ms: int) -> int:
    return ms // 1000


def _person(pid: int) -> tuple[str, str]:
    return _FIRST[pid % 10], _LAST[pid // 10 % 10]


def _agent(agent_id: int | None) -> Record | None:
    if agent_id is None:
        return None
    first, last = _person(agent_id)
    avatar = f"https://cdn.ujet.example/avatars/{agent_id}.png"
    return {
        "id": agent_id,
        "name": f"{first} {last}",
        "last_name": last,
        "first_name": first,
        "agent_number": f"A{agent_id}",
        "avatar_url": avatar,
    }


def _end_user(eu_id: int, phone: bool) -> Record:
    first, last = _person(eu_id)
    identifier = f"+1555{eu_id % 10**7:07d}" if phone else f"{first}.{last}{eu_id}@example.com"
    return {"id": eu_id, "identifier": identifier.lower(), "out_contact_id": f"crm-{eu_id}"}


def _menu_path(segment: Record, endpoint: str) -> Record:
    path = f"{_ROOT[endpoint]}/{segment['queue_id']}"
    return {"items_count": 2, "name": segment["queue_name"], "materialized_path": path}


def _selected_menu(segment: Record, endpoint: str) -> Record:
    menu_id, menu_type = int(segment["queue_id"]), "ivr_menu" if endpoint == "calls" else "web_menu"
    return {
        "id": menu_id,
        "name": segment["queue_name"],
        "parent_id": _ROOT[endpoint],
        "position": menu_id % 7,
        "deleted": False,
        "hidden": "false",
        "menu_type": menu_type,
        "output_msg": "Thanks for waiting, an agent will be with you shortly.",
    }


def _media(rng: random.Random, rid: int) -> tuple[list[Record], list[Record]]:
    url = "https://media.ujet.example"
    photos = [
        {"id": rid * 10 + k, "photo_type": "photo", "url": f"{url}/photos/{rid}-{k}.jpg"}
        for k in range(rng.choice((0, 0, 0, 1, 2)))
    ]
    videos = [{"id": rid * 10 + 5, "url": f"{url}/videos/{rid}.mp4"}] if rng.random() < 0.1 else []
    return photos, videos


def _event(segment: Record, last: bool, flow_kind: str) -> str | None:
    outcome = segment["outcome"]
    if outcome == "flow_out":
        return flow_kind if last else "transferred"
    return None if outcome == "open" else str(outcome)


def _sl_event(segment: Record) -> str | None:
    target = segment["sl_threshold_ms"]
    if segment["outcome"] == "open" or target is None:
        return None
    if segment["outcome"] != "answered":
        return "excluded"
    return "in_sla" if segment["wait_ms"] <= target else "not_in_sla"


def _segments(endpoint: str, rid: int, segs: Sequence[Record], flow_kind: str, seed: int) -> Record:
    """queue_durations, handle_durations, agent participants and transfers of one record."""
    unit = endpoint[:-1]
    agents = {  # one of 60 agents, stable per (seed, record, segment)
        s["segment_no"]: 1000 + (seed * 7919 + rid * 104_729 + s["segment_no"] * 15_485_863) % 60
        for s in segs
        if s["outcome"] == "answered"
    }
    queue, handle, people, transfers = [], [], [], []
    for i, s in enumerate(segs):
        answered, agent, menu = (
            s["outcome"] == "answered",
            agents.get(s["segment_no"]),
            int(s["queue_id"]),
        )
        target = s["sl_threshold_ms"]
        queue.append(
            {
                "agent_id": agent,
                "queue_duration": _secs(s["wait_ms"]),
                "menu_path_id": menu,
                "lang": "en",
                "transfer": i > 0,
                "started_at": iso(s["offered_at"]),
                "ended_at": iso(s["answered_at"] if answered else s["ended_at"]),
                "service_level_abandon_time_threshold": 10,
                "service_level_event": _sl_event(s),
                "service_level_target_percent": 80 if unit == "call" else 90,
                "service_level_target_time": None if target is None else _secs(target),
                "event": _event(s, i == len(segs) - 1, flow_kind),
            }
        )
        if answered:
            handle.append(
                {
                    "agent_id": agent,
                    "acw_duration": _secs(s["acw_ms"]),
                    f"{unit}_duration": _secs(s["talk_ms"]),
                    "menu_path_id": menu,
                    "wait_duration": _secs(s["wait_ms"]),
                    "lang": "en",
                    "transfer": i > 0,
                    "started_at": iso(s["answered_at"]),
                    "ended_at": iso(s["ended_at"]),
                    "event": f"{unit}_finished" if s["ended_at"] else None,
                }
            )
            people.append(
                _participant(
                    endpoint,
                    rid,
                    pid=rid * 100 + i + 1,
                    kind="agent",
                    user=agents[s["segment_no"]],
                    s=s,
                )
            )
        if i:
            prev = segs[i - 1]
            transfer = {
                "id": rid * 100 + 50 + i,
                "status": "transferring",
                "fail_reason": "nothing",
                "created_at": iso(s["offered_at"]),
            }
            if unit == "call":
                transfer |= {
                    "call_duration": _secs(prev["talk_ms"]),
                    "wait_duration": _secs(s["wait_ms"]),
                    "assigned_at": iso(s["answered_at"]),
                    "connected_at": iso(s["answered_at"]),
                    "updated_at": iso(s["updated_at"]),
                    "deflection": 0,
                }
            transfers.append(
                transfer
                | {
                    "from_menu": _menu_path(prev, endpoint),
                    "to_menu": _menu_path(s, endpoint),
                    "from_agent": _agent(agents.get(prev["segment_no"])),
                    "to_agent": _agent(agent),
                }
            )
    return {
        "queue_durations": queue,
        "handle_durations": handle,
        "transfers": transfers,
        "agents": people,
        "last_agent": _agent(agents[max(agents)]) if agents else None,
    }


def _participant(endpoint: str, rid: int, *, pid: int, kind: str, user: int, s: Record) -> Record:
    """A participant; ``s`` gives its talk, hold and times (an agent's segment, or the totals)."""
    ended = s["ended_at"]
    out: Record = {
        "id": pid,
        "type": kind,
        "status": "finished" if ended else "connected",
        f"{endpoint[:-1]}_id": rid,
        "user_id": user if kind == "agent" else None,
        "end_user_id": user if kind == "end_user" else None,
    }
    if endpoint == "chats":
        out["entry_type"] = "queue_or_transfer"
    out |= {
        "call_duration": _secs(s["talk_ms"]),
        "hold_duration": _secs(s["hold_ms"]),
        "connected_at": iso(s["answered_at"]),
        "ended_at": iso(ended),
        "fail_reason": "nothing",
    }
    if endpoint == "calls":
        out |= {"adapter_fail_code": None, "adapter_fail_message": None}
    return out


def _state(endpoint: str, last: Record, flow_kind: str) -> Record:
    """status, sub_status, fail_reason and adapter codes, from the last segment's outcome."""
    outcome, ended = last["outcome"], last["ended_at"]
    key = flow_kind if outcome == "flow_out" else outcome
    key = "in_progress" if outcome == "answered" and ended is None else key
    status, sub_status, fail_reason, code = _STATES[endpoint, key]
    scheduled = ended + timedelta(hours=1) if key == "scheduled" and ended is not None else None
    return {
        "status": status,
        "sub_status": sub_status,
        "fail_reason": fail_reason,
        "adapter_fail_code": code,
        "adapter_fail_message": ADAPTER_FAIL_MESSAGES.get(code or 0),
        "scheduled_at": scheduled,
    }


def record(endpoint: str, rid: int, segs: Sequence[Record], seed: int) -> Record:
    """The UJET record (``calls`` or ``chats``) of one contact's normalised segments."""
    rng = random.Random(f"{seed}:{endpoint}:{rid}")
    first, last = segs[0], segs[-1]
    flow_kind = (
        rng.choice(("deflected", "voicemail", "scheduled")) if endpoint == "calls" else "expired"
    )
    parts = _segments(endpoint, rid, segs, flow_kind, seed)
    state = _state(endpoint, last, flow_kind)
    eu_id = 700_000 + rng.randrange(2_000)
    answered = [s for s in segs if s["outcome"] == "answered"]
    assigned = answered[0]["answered_at"] if answered else None
    totals = {k: sum(s[k] for s in segs) for k in ("wait_ms", "talk_ms", "hold_ms")}
    carrier = next((s for s in segs if s["csat_responses"] or s["messages"]), last)
    rating = carrier["csat_score"] if carrier["csat_responses"] else None
    photos, videos = _media(rng, rid)
    times = {**totals, "answered_at": assigned, "ended_at": last["ended_at"]}
    end_user_part = _participant(endpoint, rid, pid=rid * 100, kind="end_user", user=eu_id, s=times)
    ticket = rng.randrange(10**6)
    shared: Record = {
        "verified": rng.random() < 0.7,
        "rating": rating,
        "has_feedback": rating is not None,
        "out_ticket_id": f"ZD-{ticket}",
        "out_ticket_url": f"https://support.example.com/tickets/{ticket}",
    }
    menus: Record = {
        "selected_menu": _selected_menu(first, endpoint),
        "menu_path": _menu_path(last, endpoint),
        "agent_info": parts["last_agent"],
        "photos": photos,
        "videos": videos,
        "transfers": parts["transfers"],
        "handle_durations": parts["handle_durations"],
        "queue_durations": parts["queue_durations"],
        "participants": [end_user_part, *parts["agents"]],
    }
    if endpoint == "chats":
        chat_type = rng.choices(
            ("Messaging Inbound (Web Chat)", "Messaging Inbound (App Chat)", "Messaging (SMS)"),
            (6, 3, 1),
        )[0]
        messages = carrier["messages"]
        avg = rng.randrange(5, 60) if messages else 0
        return {
            "id": rid,
            "lang": "en",
            "chat_type": chat_type,
            "status": state["status"],
            "sub_status": state["sub_status"],
            "created_at": iso(first["offered_at"] - timedelta(seconds=rng.randrange(1, 6))),
            "assigned_at": iso(assigned),
            "ends_at": iso(last["ended_at"]),
            "updated_at": iso(last["updated_at"]),
            "first_msg_sent_at": iso(assigned) if messages else None,
            "last_msg_sent_at": iso(last["ended_at"] or assigned) if messages else None,
            "wait_duration": _secs(totals["wait_ms"]),
            "queue_duration": _secs(totals["wait_ms"]),
            "chat_duration": _secs(totals["talk_ms"]),
            **shared,
            "finish_reason": "finish_reason_none",
            "fail_reason": state["fail_reason"],
            "message_count": messages,
            "average_response_time": avg,
            "longest_response_time": avg * 2 + rng.randrange(10),
            **menus,
            "end_user": _end_user(eu_id, phone=chat_type == "Messaging (SMS)"),
            "offer_type": "cascade",
            "offer_events": [
                {"casting_time": iso(s["offered_at"] + timedelta(seconds=1)), "group": "Group 1"}
                for s in answered
            ],
        }
    outbound = first["direction"] == "outbound"
    call_type = (
        "Voice Outbound"
        if outbound
        else rng.choices(("Voice Inbound (IVR)", "Voice Inbound (App)"), (4, 1))[0]
    )
    return {
        "id": rid,
        "parent_id": None,
        "lang": "en",
        "call_type": call_type,
        "status": state["status"],
        "sub_status": state["sub_status"],
        "created_at": iso(
            first["offered_at"] - timedelta(milliseconds=rng.randrange(5_000, 45_000))
        ),
        "queued_at": iso(first["offered_at"]),
        "assigned_at": iso(assigned),
        "connected_at": iso(assigned),
        "ends_at": iso(last["ended_at"]),
        "scheduled_at": iso(state["scheduled_at"]),
        "updated_at": iso(last["updated_at"]),
        "wait_duration": _secs(totals["wait_ms"]),
        "queue_duration": _secs(totals["wait_ms"]),
        "call_duration": _secs(totals["talk_ms"]),
        "hold_duration": _secs(totals["hold_ms"]),
        **shared,
        "voip_provider": "voip_provider_twilio",
        "recording_url": f"https://media.ujet.example/recordings/{rid}.mp3?sig={rng.getrandbits(64):016x}"
        if answered
        else None,
        "recording_permission": "recording_permission_granted" if answered else "not_asked",
        "voicemail_reason": "over_capacity"
        if state["status"] == "voicemail_received"
        else "not_voicemail",
        "deflection": "over_capacity" if state["status"] == "deflected" else "no_deflection",
        "disconnected_by": "disconnected_by_end_user"
        if last["ended_at"]
        else "disconnected_by_unknown",
        "finish_reason": "no_reason",
        "fail_details": None,
        "fail_reason": state["fail_reason"],
        "adapter_fail_code": state["adapter_fail_code"],
        "adapter_fail_message": state["adapter_fail_message"],
        "support_number": "+18005550100",
        **menus,
        "end_user": _end_user(eu_id, phone=call_type != "Voice Inbound (App)"),
        "offer_type": None,
        "offer_events": [],
        "answer_type": "manual",
        "outbound_number": _end_user(eu_id, phone=True)["identifier"] if outbound else None,
        "wait_time_sms": [],
        "in_call_sms": [],
    }
