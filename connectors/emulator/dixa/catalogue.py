"""The Dixa emulator's metrics and records catalogues (seed 004), as served.

``ratings`` and ``closed_conversations`` are the seed's entries (descriptions, filters and
``fieldsMetadata`` as the seed shows them; ``closed_conversations`` also lists the fields of the
seed's records sample). ``conversations`` is the emulator's conversation-offer record, the one the
``dixa`` connector reads by default (see :mod:`connectors.emulator.dixa.record`).

Example:
    >>> [r["id"] for r in RECORDS]
    ['ratings', 'closed_conversations', 'conversations']
    >>> record_fields("conversations")[:2]
    ['csid', 'offer_number']
"""

from __future__ import annotations

from typing import Any

__all__ = ["FILTER_ATTRIBUTES", "METRICS", "RECORDS", "record", "record_fields"]

FILTER_ATTRIBUTES = ("agent_id", "queue_id", "channel", "initial_direction", "tag_id")


def _filters(*names: str) -> list[dict[str, str]]:
    return [{"filterAttribute": n, "description": f"Used to filter by the {n}"} for n in names]


def _meta(*rows: tuple[str, str, bool]) -> list[dict[str, Any]]:
    return [{"field": f, "description": d, "nullable": n} for f, d, n in rows]


_ALL = (*FILTER_ATTRIBUTES, "contact_point")
_CONVERSATIONS = _meta(
    ("csid", "Conversation ID", False),
    ("offer_number", "Number of the queue offer within the conversation (1 = first)", False),
    ("initial_direction", "Direction of the conversation (Inbound or Outbound)", False),
    ("initial_channel", "Channel the conversation started on", False),
    ("contact_point", "The contact point (phone number, address, widget) contacted", False),
    ("queue_id", "The queue the conversation was offered to", False),
    ("agent_id", "The agent who accepted the offer", True),
    ("requester_id", "The end user (may be considered PII)", False),
    ("requester_name", "Name of the end user (may be considered PII)", True),
    ("requester_email", "E-mail of the end user (may be considered PII)", True),
    ("requester_phone", "Phone number of the end user (may be considered PII)", True),
    ("offered_at", "Timestamp of when the conversation entered the queue", False),
    ("answered_at", "Timestamp of when an agent accepted the offer", True),
    ("ended_at", "Timestamp of when the offer ended (handled, abandoned, moved on)", True),
    ("queue_outcome", "How the offer ended (Answered, Abandoned, Transferred, ...)", False),
    ("queue_time", "Seconds in queue until answer, abandon or moving on", False),
    ("talk_time", "Seconds of conversation", False),
    ("hold_time", "Seconds on hold", False),
    ("wrap_up_time", "Seconds of wrap-up after the conversation", False),
    ("sla_threshold", "Service level threshold of the queue, in seconds", True),
    ("message_count", "Messages exchanged", False),
    ("rating_count", "Survey responses", False),
    ("rating_score", "Sum of the survey ratings", False),
    ("transferred", "Whether the offer follows a transfer", False),
    ("tag_ids", "Tags of the conversation", False),
    ("updated_at", "Timestamp of the last change", False),
)

RECORDS: list[dict[str, Any]] = [
    {
        "id": "ratings",
        "description": "Conversation Ratings",
        "filters": _filters(*_ALL),
        "relatedMetricIds": ["csat"],
        "fieldsMetadata": _meta(
            ("conversation_id", "Conversation ID", False),
            ("agent_id", "The agent assigned to the conversation", True),
            (
                "queue_id",
                "The queue which the conversation was part of when the conversation was offered",
                True,
            ),
        ),
    },
    {
        "id": "closed_conversations",
        "description": "Closed conversation data",
        "filters": _filters("queue_id", "channel", "initial_direction", "tag_id", "contact_point"),
        "relatedMetricIds": ["closed_conversations"],
        "fieldsMetadata": _meta(
            ("closed_at", "Timestamp of when the conversation was closed", False),
            ("conversation_id", "Conversation ID", False),
            ("agent_id", "The agent closing the conversation", True),
            (
                "queue_id",
                "The queue which the conversation was part of when the conversation was closed",
                True,
            ),
            ("closed_by", "User closing the conversation (Agent, Enduser or Unknown)", False),
            ("csid", "Conversation ID", False),
            ("initial_direction", "Direction of the conversation", False),
            ("initial_channel", "Channel the conversation started on", False),
            ("contact_point", "The contact point contacted", False),
        ),
    },
    {
        "id": "conversations",
        "description": "Conversation queue offers (one record per offer to a queue)",
        "filters": _filters(*_ALL),
        "relatedMetricIds": ["offered_conversations"],
        "fieldsMetadata": _CONVERSATIONS,
    },
]

METRICS: list[dict[str, Any]] = [
    {
        "id": "csat",
        "description": (
            "(Number of satisfied customers (4 and 5)/ Number of survey responses) x 100 = % of "
            "satisfied customers"
        ),
        "filters": _filters(*_ALL),
        "aggregations": [{"measure": "Percentage", "description": "Calculated Percentage"}],
        "relatedRecordIds": ["ratings"],
    },
    {
        "id": "closed_conversations",
        "description": "Closed conversation data",
        "filters": _filters("queue_id", "channel", "initial_direction", "tag_id", "contact_point"),
        "aggregations": [{"measure": "Count", "description": "Conversation closed count"}],
        "relatedRecordIds": ["closed_conversations"],
    },
    {
        "id": "offered_conversations",
        "description": "Conversations offered to a queue",
        "filters": _filters(*_ALL),
        "aggregations": [{"measure": "Count", "description": "Queue offer count"}],
        "relatedRecordIds": ["conversations"],
    },
]


def record(record_id: str) -> dict[str, Any] | None:
    """The catalogue entry of a record id, or ``None``."""
    return next((r for r in RECORDS if r["id"] == record_id), None)


def record_fields(record_id: str) -> list[str]:
    """The field names a record id lists in its ``fieldsMetadata``."""
    entry = record(record_id)
    return [] if entry is None else [m["field"] for m in entry["fieldsMetadata"]]
