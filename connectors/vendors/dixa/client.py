"""Dixa analytics API (seed 004): one stream per configured record id, settings, catalogue check.

Every sync first reads the records catalogue (``GET /v1/analytics/records``, paged by page key)
and fails fast with a one-line :class:`~connectors.errors.ConfigError` naming
``sources.dixa.record_ids`` when a configured record id is not in it (mapped fields the
catalogue does not list only log a warning: its ``fieldsMetadata`` may be partial, as the seed's
sample shows). Then each record id is one stream, synced window by window:

* ``POST /v1/analytics/records`` with ``{"id", "periodFilter": {"_type": "Interval", "start",
  "end"}, "timezone", "filters"?}``, windows of ``window_hours`` aligned on the Unix epoch from
  ``cursor - lookback`` up to the run's start
  (:class:`~connectors.paging.TimeWindowPaginator`);
* inside a window, the opaque ``pageKey`` (``pageLimit`` = ``per_page``, at most 300) from
  ``meta.next`` or the top level, until it is absent, null or empty
  (:class:`~connectors.paging.PageKeyPaginator`);
* the cursor committed after each durable page is the end of the last *fully* synced window
  (all its pages landed, and ended before the run started: the current window never is), so a
  kill mid-window re-reads that window, the next run re-reads the current one, and the landing
  store's de-duplication (key ``<csid>:<offer_number>``, latest ``updated_at`` wins) makes both
  harmless; ``lookback_minutes`` (default a day) re-reads older windows for late changes.

Auth is ``Authorization: <API token>``; 10 requests/s with bursts of 4 client-side (plus a small
margin for network jitter). PII is dropped before landing: the requester's id, name and e-mail
fields, and the labels of ``agent_id`` (the agent's name) and ``requester_phone``; the
requester's phone number is replaced by its keyed hash. The mapping to canonical contacts is in
:mod:`connectors.vendors.dixa.mapping` and the typed-field decoding in
:mod:`connectors.vendors.dixa.fields`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field, SecretStr, field_validator

from connectors.errors import ConfigError
from connectors.http import HeaderAuth, make_client
from connectors.landing import RecordKey
from connectors.paging import Page, PageKeyPaginator, Paginator, TimeWindowPaginator, iterate_pages
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, RetryPolicy, TimeWindow
from connectors.source import Source, SourceSettings, Stream
from connectors.state import format_utc, parse_utc
from connectors.vendors.dixa.fields import RECORD_DTYPE
from connectors.vendors.dixa.mapping import (
    CHANNEL_MAP,
    DEFAULT_FIELD_MAPPING,
    OUTCOME_MAP,
    REQUIRED_COLUMNS,
    DurationUnit,
    normalise,
    record_key,
)
from engine.schema import CHANNELS, CONTACTS, OUTCOMES

__all__ = [
    "DIXA",
    "PII_FIELDS",
    "RECORDS_PATH",
    "DixaSettings",
    "check_catalogue",
    "window_request",
]

_log = logging.getLogger(__name__)
RECORDS_PATH: Final = "v1/analytics/records"
#: Fields dropped whole before landing (seed: end-user identifiers and contact details).
PII_FIELDS: Final = ("requester_id", "requester_name", "requester_email")
#: The caller's phone number: its value is replaced by a keyed hash, its label dropped.
PHONE_FIELD: Final = "requester_phone"
_REF = re.compile(r"[A-Za-z0-9_]+(\.label)?")
_NEXT = PageKeyPaginator(next_paths=("meta.next", "pageKey", "next"))


class DixaSettings(SourceSettings):
    """``[sources.dixa]``: the API token, the record ids and how their fields map.

    Example:
        >>> [(n, round(s, 2)) for n, s in DixaSettings().limiter().windows]
        [(4, 0.45), (10, 1.05)]
    """

    api_token: SecretStr | None = None
    credential_fields = ("api_token",)
    rate_limit_per_s: float = Field(default=10.0, gt=0)
    rate_limit_burst: int | None = Field(default=4, ge=1)
    rate_limit_margin_s: float = Field(default=0.05, ge=0)
    per_page: int = Field(default=100, ge=1, le=300)
    lookback_minutes: float = Field(default=1440.0, ge=0)
    window_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    timezone: str = "UTC"
    record_ids: tuple[str, ...] = Field(default=("conversations",), min_length=1)
    field_mapping: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FIELD_MAPPING))
    duration_unit: DurationUnit = "s"
    channel_map: dict[str, str] = Field(default_factory=lambda: dict(CHANNEL_MAP))
    outcome_map: dict[str, str] = Field(default_factory=lambda: dict(OUTCOME_MAP))
    filters: dict[str, list[str]] = Field(default_factory=dict)
    pii_fields: tuple[str, ...] = PII_FIELDS

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("record_ids")
    @classmethod
    def _record_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value) or not all(
            re.fullmatch(r"[a-z0-9][a-z0-9_-]*", v) for v in value
        ):
            raise ValueError("record ids must be distinct lower-case names ([a-z0-9_-])")
        return value

    @field_validator("field_mapping")
    @classmethod
    def _mapping(cls, value: dict[str, str]) -> dict[str, str]:
        if bad := [ref for ref in value if not _REF.fullmatch(ref)]:
            raise ValueError(f"record field {bad[0]!r}: expected a field name or <name>.label")
        columns = list(value.values())
        if bad := [c for c in columns if c not in CONTACTS or c == "source"]:
            raise ValueError(f"{bad[0]!r} is not a canonical contacts column")
        if dupes := sorted({c for c in columns if columns.count(c) > 1}):
            raise ValueError(f"column {dupes[0]!r} is mapped more than once")
        if missing := [c for c in REQUIRED_COLUMNS if c not in columns]:
            raise ValueError(f"no record field maps to {', '.join(missing)}")
        return value

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if empty := [attribute for attribute, values in value.items() if not values]:
            raise ValueError(f"filter {empty[0]!r} needs at least one value")
        return value

    @field_validator("channel_map", "outcome_map")
    @classmethod
    def _enums(cls, value: dict[str, str], info: Any) -> dict[str, str]:
        allowed = (CHANNELS if info.field_name == "channel_map" else OUTCOMES).categories.to_list()
        if bad := [v for v in value.values() if v not in allowed]:
            raise ValueError(f"{bad[0]!r} is not one of {', '.join(allowed)}")
        return {k.upper(): v for k, v in value.items()}

    def required_when_enabled(self) -> Mapping[str, object]:
        """The API token and the PII hashing key, besides the base URL."""
        return {
            "base_url": self.base_url,
            "api_token": self.api_token,
            "pii_hash_secret": self.pii_hash_secret,
        }

    @property
    def window(self) -> timedelta:
        """The length of one period-filter window."""
        return timedelta(hours=self.window_hours)


def window_request(window: TimeWindow, *, record_id: str, settings: DixaSettings) -> ApiRequest:
    """The first page request of one record id over ``[window.start, window.end)``.

    Example:
        >>> from datetime import UTC
        >>> w = TimeWindow(datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC))
        >>> window_request(w, record_id="conversations", settings=DixaSettings()).body
        ... # doctest: +NORMALIZE_WHITESPACE
        {'id': 'conversations', 'periodFilter': {'_type': 'Interval',
         'start': '2024-05-01T00:00:00.000Z', 'end': '2024-05-02T00:00:00.000Z'},
         'timezone': 'UTC'}
    """
    period = {"_type": "Interval", "start": format_utc(window.start), "end": format_utc(window.end)}
    body: dict[str, Any] = {"id": record_id, "periodFilter": period, "timezone": settings.timezone}
    if settings.filters:
        body["filters"] = [
            {"attribute": a, "values": v} for a, v in sorted(settings.filters.items())
        ]
    return ApiRequest("POST", RECORDS_PATH, params={"pageLimit": settings.per_page}, body=body)


def _plan(
    start: datetime, settings: DixaSettings, now: datetime, *, record_id: str
) -> tuple[ApiRequest, Paginator]:
    render = partial(window_request, record_id=record_id, settings=settings)
    paginator = TimeWindowPaginator(
        end=now, step=settings.window, render=render, inner=_NEXT, stamp=_primary
    )
    return paginator.first_request(min(start, now)), paginator


def _primary(record: Any) -> datetime | None:
    """The record's ``primaryTimestampField`` instant: what the period filter selects by."""
    field = record.get("primaryTimestampField") if isinstance(record, dict) else None
    return parse_utc(field.get("timestamp")) if isinstance(field, dict) else None


def _page_cursor(page: Page, latest: datetime | None, started: datetime) -> datetime | None:
    """The end of the last fully synced window: one whose pages are all landed and whose end had
    passed when the run started (the current window is never fully synced)."""
    window = page.request.window
    if window is None:
        return None
    done = _NEXT.next_request(page) is None and window.end <= started
    return window.end if done else window.start


def check_catalogue(
    settings: DixaSettings, client: httpx.Client, limiter: RateLimiter, retry: RetryPolicy
) -> None:
    """Read the records catalogue; fail fast on a configured record id it does not have.

    Raises:
        ConfigError: ``sources.dixa.record_ids`` names an unknown record id.
    """
    first = ApiRequest("GET", RECORDS_PATH, params={"pageLimit": 100})
    pages = iterate_pages(
        client,
        first,
        _NEXT,
        records_path="data",
        limiter=limiter,
        retry=retry,
        max_pages=100,
        max_bytes=settings.max_page_bytes,
    )
    catalogue: dict[str, list[str]] = {}
    for page in pages:
        for entry in page.records:
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                meta = entry.get("fieldsMetadata")
                fields = (
                    [m.get("field") for m in meta if isinstance(m, Mapping)]
                    if isinstance(meta, list)
                    else []
                )
                catalogue[entry["id"]] = [f for f in fields if isinstance(f, str)]
    for record_id in settings.record_ids:
        if record_id not in catalogue:
            known = ", ".join(sorted(catalogue)) or "none"
            msg = f"sources.dixa.record_ids: unknown record id {record_id!r} (catalogue: {known})"
            raise ConfigError(msg)
        listed = set(catalogue[record_id])
        if absent := sorted({r.partition(".")[0] for r in settings.field_mapping} - listed):
            _log.warning(
                "sources.dixa.field_mapping: record %r does not list %s in its catalogue entry",
                record_id,
                ", ".join(absent),
            )


def _client(settings: DixaSettings, transport: httpx.BaseTransport | None) -> httpx.Client:
    if not settings.base_url:
        raise ConfigError("sources.dixa.base_url: not set")
    token = settings.api_token or SecretStr("")
    return make_client(
        settings.base_url,
        setting="sources.dixa.base_url",
        auth=HeaderAuth("Authorization", token),
        timeouts=settings.timeouts.to_timeouts(),
        transport=transport,
    )


def _stream(record_id: str, settings: DixaSettings) -> Stream:
    read_id, read_updated = record_key(settings.field_mapping)
    drop = tuple(f"fields[name={name}]" for name in settings.pii_fields)
    drop += (f"fields[name={PHONE_FIELD}].field.label", "fields[name=agent_id].field.label")
    return Stream(
        name=record_id,
        path=RECORDS_PATH,
        primary_key="",
        normalise=partial(
            normalise,
            mapping=settings.field_mapping,
            duration_unit=settings.duration_unit,
            channel_map=settings.channel_map,
            outcome_map=settings.outcome_map,
        ),
        paging="time_window",
        cursor_field="",
        cursor_param="",
        lookback=settings.lookback,
        records_path="data",
        pii_drop=drop,
        pii_hash=(f"fields[name={PHONE_FIELD}].field.value",),
        record_dtype=RECORD_DTYPE,
        plan=partial(_plan, record_id=record_id),
        page_cursor=_page_cursor,
        record_key=RecordKey(read_id, read_updated),
    )


def _bind(settings: DixaSettings) -> Source:
    streams = tuple(_stream(record_id, settings) for record_id in settings.record_ids)
    return replace(DIXA, streams=streams, bind=None)


#: The Dixa source; its streams are bound to the settings (one per record id) at sync time.
DIXA: Final = Source(
    name="dixa",
    settings_model=DixaSettings,
    client=_client,
    streams=(_stream("conversations", DixaSettings()),),
    bind=_bind,
    preflight=check_catalogue,
)
