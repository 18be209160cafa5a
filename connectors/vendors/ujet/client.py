"""UJET Manager API (seed 002): the ``calls`` and ``chats`` streams, settings, and the mapping.

Both streams tail ``GET /calls`` and ``GET /chats`` by ``updated_at[from]``, sorted by
``updated_at`` ascending, ``per`` at most 100 (:class:`~connectors.paging.CursorTailPaginator`),
re-reading ``lookback_minutes`` behind the committed cursor. Auth is HTTP Basic; the tenant's
limit is 1 request/s unless configured otherwise.

Both streams land decoded (``land_decoded``: each page's records are also stored as
:data:`RECORD_DTYPE` columns), so a rebuild does not parse the JSON again.
:func:`normalise` turns landed records into canonical segments in one vectorised plan (no row
loop): read the landed ``record`` (or decode the ``payload`` JSON of a store landed before with
the same dtype), explode ``queue_durations`` with its index (one segment per entry: a
transferred contact is offered to each queue), and take each answered segment's handle entry
and agent participant by answered rank (the k-th answered entry owns the k-th
``handle_durations`` entry and the k-th agent participant: never a cross join).

============================  ===============================================================
canonical                     UJET (``q`` = ``queue_durations[i]``)
============================  ===============================================================
contact_id, segment_no        ``call-<id>`` / ``chat-<id>``, ``i + 1``
direction                     ``outbound`` iff ``call_type == "Voice Outbound"`` (chats inbound)
queue_id, queue_name          ``q.menu_path_id``; the name of the record's menu object whose
                              ``materialized_path`` ends in that id (``menu_path``,
                              ``selected_menu``, ``transfers[].from_menu``/``to_menu``)
outcome                       ``q.event``: answered, abandoned; transferred, deflected,
                              voicemail, scheduled, expired -> flow_out; null -> open, except on
                              the last entry of a finished record: then from ``status`` and
                              ``fail_reason`` (abandon reasons -> abandoned, deflected /
                              voicemail / scheduled / failed / expired -> flow_out); anything
                              else is quarantined as ``unknown_outcome``
offered_at, answered_at       ``q.started_at``; ``q.ended_at`` when answered
ended_at                      answered: the handle entry's ``ended_at``; else ``q.ended_at``
wait_ms, talk_ms, acw_ms      ``q.queue_duration``; handle ``call_duration``/``chat_duration``,
                              ``acw_duration`` (seconds x 1000; 0 unless answered)
hold_ms                       the agent participant's ``hold_duration`` (0 unless answered)
sl_threshold_ms               ``q.service_level_target_time`` x 1000 (null stays null)
messages, csat_*              on the carrier segment (last answered, else last): chats'
                              ``message_count``; one response scored ``rating`` (1-5; 0 or null:
                              none)
updated_at                    the record's ``updated_at`` on every segment
============================  ===============================================================

Records without queue entries (IVR menu abandons, outbound dials) yield no segment. PII is
dropped before landing (:data:`PII_DROP`); the caller's phone number (``end_user.identifier``
when it is one) is kept only as a keyed hash in ``caller_phone_hmac``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any, Literal

import httpx
import polars as pl
from pydantic import Field, SecretStr

from connectors.errors import ConfigError
from connectors.http import basic_auth, make_client
from connectors.source import Normalised, Source, SourceSettings, Stream
from connectors.vendors.ujet.mapping import RECORD_DTYPE, SOURCE, segments_and_quarantine

__all__ = [
    "PII_DROP",
    "PII_HASH",
    "RECORD_DTYPE",
    "UJET",
    "UjetSettings",
    "normalise",
    "prepare",
]

_PERSON = ("name", "first_name", "last_name", "agent_number", "avatar_url")
#: PII paths (seed 002 "may be considered PII", plus media URLs and dialled numbers).
PII_DROP: tuple[str, ...] = (
    "end_user",
    *(f"agent_info.{k}" for k in _PERSON),
    *(f"transfers.{side}.{k}" for side in ("from_agent", "to_agent") for k in _PERSON),
    "participants.user_id",
    "participants.end_user_id",
    "photos",
    "videos",
    "recording_url",
    "outbound_number",
)
#: Replaced by an HMAC-SHA256 of the digits (SPEC §8).
PII_HASH: tuple[str, ...] = ("caller_phone_hmac",)
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{5,}")


class UjetSettings(SourceSettings):
    """``[sources.ujet]``: the UJET tenant (HTTP Basic credentials, 1 request/s by default).

    Example:
        >>> s = UjetSettings(base_url="http://127.0.0.1:8080/manager/api/v1", per_page=50)
        >>> s.per_page, s.rate_limit_per_s
        (50, 1.0)
    """

    username: str = ""
    password: SecretStr | None = None
    credential_fields = ("username", "password")
    per_page: int = Field(default=100, ge=1, le=100)

    def required_when_enabled(self) -> Mapping[str, object]:
        """Basic auth credentials and the PII hashing key, besides the base URL."""
        return {
            "base_url": self.base_url,
            "username": self.username,
            "password": self.password,
            "pii_hash_secret": self.pii_hash_secret,
        }


def prepare(record: Mapping[str, Any]) -> dict[str, Any]:
    """Copy the caller's phone number (if ``end_user.identifier`` is one) to ``caller_phone_hmac``.

    The scrubber then replaces it by its keyed hash and drops ``end_user``.

    Example:
        >>> prepare({"end_user": {"identifier": "+1 555 0100"}})["caller_phone_hmac"]
        '+1 555 0100'
        >>> prepare({"end_user": {"identifier": "a@b.example"}})["caller_phone_hmac"] is None
        True
    """
    user = record.get("end_user")
    ident = user.get("identifier") if isinstance(user, dict) else None
    phone = ident if isinstance(ident, str) and _PHONE.fullmatch(ident.strip()) else None
    return {**record, "caller_phone_hmac": phone}


def normalise(landed: pl.LazyFrame, *, stream: Literal["calls", "chats"]) -> Normalised:
    """Landed UJET records of one stream -> canonical segments (not yet validated, each with its
    record's ``record_id``) and the quarantine of what the mapping alone can see.

    One vectorised plan (:func:`connectors.vendors.ujet.mapping.segments_and_quarantine`); the
    canonical rules are applied once, at the pipeline edge, which quarantines a record with any
    bad segment whole, with its landed (PII-free) payload as ``raw``.

    Example:
        >>> from connectors.landing import LANDING_SCHEMA
        >>> out = normalise(pl.LazyFrame(schema=LANDING_SCHEMA), stream="calls")
        >>> out.rows.collect().height, out.quarantine.collect().height
        (0, 0)
    """
    return segments_and_quarantine(landed, endpoint=stream)


def _client(settings: UjetSettings, transport: httpx.BaseTransport | None) -> httpx.Client:
    if not settings.base_url:
        raise ConfigError("sources.ujet.base_url: not set")
    password = settings.password or SecretStr("")
    return make_client(
        settings.base_url,
        setting="sources.ujet.base_url",
        auth=basic_auth(settings.username, password),
        timeouts=settings.timeouts.to_timeouts(),
        transport=transport,
    )


def _stream(name: Literal["calls", "chats"]) -> Stream:
    return Stream(
        name=name,
        path=name,
        primary_key="id",
        normalise=partial(normalise, stream=name),
        paging="cursor_tail",
        cursor_field="updated_at",
        cursor_param="updated_at[from]",
        params={"sort_column": "updated_at", "sort_direction": "ASC"},
        pii_drop=PII_DROP,
        pii_hash=PII_HASH,
        record_dtype=RECORD_DTYPE,
        land_decoded=True,
        prepare=prepare,
        record_ref=f"{name[:-1]}-{{id}}",
    )


#: The UJET source: calls, then chats.
UJET = Source(
    name=SOURCE,
    settings_model=UjetSettings,
    client=_client,
    streams=(_stream("calls"), _stream("chats")),
)
