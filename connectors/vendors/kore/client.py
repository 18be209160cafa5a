"""Kore.ai Contact Volume API (seed 003): the ``callvolume`` stream of pre-aggregated intervals.

``POST {base_url}/agentassist/api/public/analytics/account/{account_id}/callvolume`` with a JSON
body ``orgId``, ``fromTimeStamp``, ``toTimeStamp``, ``skip``, ``limit``. The stream walks aligned
UTC windows of ``window_minutes`` (default one day, :class:`~connectors.paging.TimeWindowPaginator`)
from ``cursor - lookback`` (widened to whole windows) to now, and pages each window by
``skip``/``limit`` in the body until ``hasMore`` is false
(:class:`~connectors.paging.SkipLimitPaginator`; ``totalCount`` is a fallback when ``hasMore``
is absent, and a ``hasMore: false`` short of it is asked past: the next page's rows go on, an
empty one ends the window; one that is not a count of rows stops the stream, and each window's
distinct rows are held to it, :mod:`connectors.paging`). A row whose interval does not meet the
window asked for (a period filter's bug) stops the stream (``record_outside_window``): landed, it
would commit the window as synced with its own rows never read. Rows carry no last-modified time, so
the cursor is a time: after each landed page the start of its window (everything before it is
complete), after a window's last page its end, or for the window still running the latest
interval end it served, never past the run's start. Each run re-reads ``lookback_minutes``
(default 3 h) behind the cursor, so intervals still filling up (open contacts, handling not yet
finished) are read again; the landing store keeps each row's latest fetch by ``_id``, and the
import keeps one row per interval x queue x channel. Skip/limit over rows that change while
paging: a row that existed when the run started is never skipped (Kore.ai's aggregate rows are
updated and added, not deleted); a row added before the current offset shifts the later ones by
one (one row is read twice: harmless) and, like a row updated after it was read, is read by the
next run's lookback.

Auth: ``auth: <JWT>``, HS256 with ``client_secret`` and an ``appId`` claim, re-signed before its
short ``exp`` (:class:`~connectors.vendors.kore.auth.KoreJwtAuth`). Kore.ai allows 60 requests per
minute
per account: the client-side limiter allows ``rate_limit_burst`` (60) in any
``rate_limit_period_s`` (60 s) window, spaced at ``rate_limit_per_s`` (1/s) on average.

No field of seed 003 is marked as PII, so nothing is dropped or hashed. The mapping to volume rows
and the quarantine rules are in :mod:`connectors.vendors.kore.rows`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final, Literal

import httpx
import polars as pl
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.errors import ConfigError
from connectors.http import make_client
from connectors.paging import Page, Paginator, SkipLimitPaginator, TimeWindowPaginator
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, TimeWindow
from connectors.source import Normalised, Source, SourceSettings, Stream
from connectors.state import format_utc, parse_utc
from connectors.vendors.kore.auth import KoreJwtAuth
from connectors.vendors.kore.rows import (
    KORE_CALLVOLUME,
    RECORD_DTYPE,
    kore_rows_to_callvolume,
    validate_rows,
)
from engine.schema import CHANNELS

__all__ = [
    "KORE",
    "KORE_CALLVOLUME",
    "KoreSettings",
    "callvolume_path",
    "kore_rows_to_callvolume",
    "normalise",
    "plan",
]

SOURCE: Final = "kore"
RECORDS_PATH: Final = "CallVolumeUpdate"
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_PAGES: Final = SkipLimitPaginator(location="body")


class KoreSettings(SourceSettings):
    """``[sources.kore]``: one Kore.ai account (JWT app credentials, 60 requests per minute).

    Example:
        >>> s = KoreSettings(duration_unit="s", rate_limit_margin_s=0)
        >>> s.limiter().windows, s.duration_unit
        (((60, 60.0), (60, 60.0)), 's')
    """

    base_url: str | None = None
    account_id: str = ""
    org_id: str = ""
    app_id: str = ""
    client_secret: SecretStr | None = None
    credential_fields = ("app_id", "client_secret")
    token_lifetime_s: int = Field(default=300, ge=10, le=3600)
    duration_unit: Literal["ms", "s"] = "ms"
    channel_map: dict[str, str] = Field(default_factory=dict)
    interval_minutes: Literal[15, 30, 60] = 15
    window_minutes: int = Field(default=1440, ge=15, le=31 * 1440)
    rate_limit_per_s: float = Field(default=1.0, gt=0)
    rate_limit_burst: int | None = Field(default=60, ge=1)
    rate_limit_period_s: float = Field(default=60.0, gt=0)
    per_page: int = Field(default=100, ge=1, le=1000)
    lookback_minutes: float = Field(default=180.0, ge=0)

    @field_validator("account_id")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        if value and not _ID.fullmatch(value):
            raise ValueError("only letters, digits, '.', '_' and '-' (it is part of the path)")
        return value

    @field_validator("channel_map")
    @classmethod
    def _channels(cls, value: dict[str, str]) -> dict[str, str]:
        known = CHANNELS.categories.to_list()
        if bad := sorted(v for v in value.values() if v not in known):
            raise ValueError(f"not channels: {bad} (channels: {', '.join(known)})")
        return value

    @model_validator(mode="after")
    def _whole_intervals(self) -> KoreSettings:
        if self.window_minutes % self.interval_minutes:
            raise ValueError("window_minutes must be a multiple of interval_minutes")
        return self

    def required_when_enabled(self) -> Mapping[str, object]:
        """The account, organisation and app ids and the JWT secret (no PII: no hashing key)."""
        return {
            "base_url": self.base_url,
            "account_id": self.account_id,
            "org_id": self.org_id,
            "app_id": self.app_id,
            "client_secret": self.client_secret,
        }

    def limiter(self) -> RateLimiter:
        """At most ``rate_limit_burst`` requests in any ``rate_limit_period_s`` (plus margin)."""
        burst = self.rate_limit_burst or max(
            1, round(self.rate_limit_per_s * self.rate_limit_period_s)
        )
        return RateLimiter(
            self.rate_limit_per_s,
            burst,
            period=self.rate_limit_period_s,
            margin=self.rate_limit_margin_s,
        )


def _settings(settings: Any) -> KoreSettings:
    if not isinstance(settings, KoreSettings):
        raise ConfigError("sources.kore: expected Kore.ai settings")
    return settings


def callvolume_path(account_id: str) -> str:
    """The endpoint path of an account (relative to the base URL).

    Example:
        >>> callvolume_path("636f5b36")
        'agentassist/api/public/analytics/account/636f5b36/callvolume'
    """
    if not _ID.fullmatch(account_id):
        raise ConfigError("sources.kore.account_id: not set or not a valid account id")
    return f"agentassist/api/public/analytics/account/{account_id}/callvolume"


def _client(settings: Any, transport: httpx.BaseTransport | None) -> httpx.Client:
    s = _settings(settings)
    if not s.base_url:
        raise ConfigError("sources.kore.base_url: not set")
    if not (s.app_id and s.client_secret and s.client_secret.get_secret_value()):
        raise ConfigError("sources.kore.app_id and client_secret: required to sign the JWT")
    auth = KoreJwtAuth(s.app_id, s.client_secret, lifetime_s=s.token_lifetime_s)
    return make_client(
        s.base_url,
        setting="sources.kore.base_url",
        auth=auth,
        timeouts=s.timeouts.to_timeouts(),
        transport=transport,
    )


def plan(start: datetime, settings: Any, now: datetime) -> tuple[ApiRequest, Paginator]:
    """The first request of a sync from ``start`` and its paginator (windows x skip/limit).

    Example:
        >>> from datetime import UTC
        >>> s = KoreSettings(account_id="a1", org_id="o-1")
        >>> at = datetime(2026, 10, 1, 7, 30, tzinfo=UTC)
        >>> request, _ = plan(at, s, at + timedelta(hours=2))
        >>> request.method, request.body["fromTimeStamp"], request.body["toTimeStamp"]
        ('POST', '2026-10-01T00:00:00.000Z', '2026-10-02T00:00:00.000Z')
    """
    s = _settings(settings)
    path, limit = callvolume_path(s.account_id), s.per_page

    def render(window: TimeWindow) -> ApiRequest:
        body: dict[str, str | int] = {"orgId": s.org_id}
        body |= {"fromTimeStamp": format_utc(window.start)}
        body |= {"toTimeStamp": format_utc(window.end), "skip": 0, "limit": limit}
        return ApiRequest("POST", path, body=body)

    step = timedelta(minutes=s.window_minutes)
    walker = TimeWindowPaginator(
        end=max(now, start), step=step, render=render, inner=_PAGES, stamp=_interval
    )
    return walker.first_request(start), walker


def _interval(row: Any) -> tuple[datetime, datetime] | None:
    """A row's interval ``(intervalStartTimeStamp, intervalEndTimeStamp)``: what the window
    selects by. A row whose interval does not meet the window asked for is another period's
    (``record_outside_window``); one without a readable start is left to the quarantine.

    Example:
        >>> _interval({"intervalStartTimeStamp": "2026-10-01T00:00:00Z"})[1].minute
        0
    """
    if not isinstance(row, dict) or (start := parse_utc(row.get("intervalStartTimeStamp"))) is None:
        return None
    end = parse_utc(row.get("intervalEndTimeStamp")) or start
    return min(start, end), max(start, end)


def page_cursor(page: Page, latest: datetime | None, started: datetime) -> datetime | None:
    """The cursor to commit after ``page`` is durable (never past the run's start).

    Inside a window: the window's start (every earlier window is complete, whatever order the
    rows come in). After a window's last page: its end when the window is over; for the window
    still running, the latest interval end on the page (so a second run with nothing new keeps
    the cursor where it was).
    """
    window = page.request.window
    if window is None:
        return None
    if _PAGES.next_request(page) is not None:
        return window.start
    if window.end <= started:
        return window.end
    ends = (parse_utc(r.get("intervalEndTimeStamp")) for r in page.records if isinstance(r, dict))
    return min(max((e for e in ends if e is not None), default=window.start), started)


def _decoded(landed: pl.LazyFrame) -> pl.LazyFrame:
    fields = pl.col("payload").str.json_decode(RECORD_DTYPE).alias("__r")
    return (
        landed.with_columns(fields)
        .select(
            "record_id", "fetched_at", "batch_id", "page_no", "__r", pl.col("payload").alias("raw")
        )
        .unnest("__r")
    )


def normalise(landed: pl.LazyFrame, settings: KoreSettings | None = None) -> Normalised:
    """Landed Kore.ai rows -> volume rows (:data:`KORE_CALLVOLUME`) and quarantine rows.

    Example:
        >>> from connectors.landing import LANDING_SCHEMA
        >>> normalise(pl.LazyFrame(schema=LANDING_SCHEMA)).rows.collect().height
        0
    """
    s = settings or KoreSettings()
    rows, quarantine = validate_rows(
        _decoded(landed),
        unit=s.duration_unit,
        channel_map=s.channel_map,
        interval_minutes=s.interval_minutes,
        source=SOURCE,
    )
    return Normalised(rows, quarantine)


def _stream(settings: KoreSettings | None) -> Stream:
    return Stream(
        name="callvolume",
        path="agentassist/api/public/analytics/account/{account_id}/callvolume",
        primary_key="_id",
        normalise=partial(normalise, settings=settings),
        paging="time_window",
        cursor_field="",
        cursor_param="",
        lookback=timedelta(hours=3),
        records_path=RECORDS_PATH,
        record_dtype=RECORD_DTYPE,
        plan=plan,
        page_cursor=page_cursor,
    )


def _bind(settings: Any) -> Source:
    return replace(KORE, streams=(_stream(_settings(settings)),), bind=None)


#: The Kore.ai source: interval rows of one account, imported as ``callvolume_kore``; its
#: stream's mapping is bound to the settings (duration unit, channel map) at sync and rebuild.
KORE: Final = Source(
    name=SOURCE,
    settings_model=KoreSettings,
    client=_client,
    streams=(_stream(None),),
    table="callvolume_kore",
    bind=_bind,
)
