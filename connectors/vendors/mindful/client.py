"""Mindful (seeds 000 and 001): the hourly ``attempts`` stream, settings, and the metrics pull.

The ``attempts`` stream walks ``GET /v2/data/historical/{YYYYMMDD}/{HH}`` hour by hour
(:class:`~connectors.paging.TimeWindowPaginator`, one request per hour: the API does not page
inside an hour). Hour ``HH`` holds the records created in ``[HH-1:00, HH:00)`` UTC of that date,
so the connector names the hour ``[h, h + 1 h)`` by the date of ``h`` and ``HH = h.hour + 1``
(``01`` … ``24``; never ``00``, whose meaning the seed leaves implicit). Records carry no
last-modified field and Mindful finalises them after the hour (outcomes, ``hasRetry``), so every
run re-reads ``lookback_minutes`` (default 3 h, widened to whole hours) behind the committed
cursor and the landing store keeps each ``id``'s latest fetch. The cursor is the end of the last
hour read that had already ended when the run started. An hour holds the data
*available* in it (seed 001), with no bound on how late, so a record served long after it ended
lands. What is held to the hour is the page (:func:`plan`): an hour none of whose records meets
it (``createdAt`` … ``endedAt``, up to seven days before it), or a record created after it (five
minutes allowed for clocks), is another period's (a filter's bug): the stream stops
(``record_outside_window``) rather than commit the hour as read.

Auth: OAuth2 client credentials (``client_id``/``client_secret`` against ``token_url``, Basic
client auth as Mindful documents; the token is refreshed ``token_refresh_margin_s`` before it
expires and once more after a 401), or a static bearer token (``auth = "static"``).

PII (SPEC §8): ``ani`` (the caller's line) and ``metadata`` (what the caller typed) are dropped
before landing; ``phoneNumber`` is replaced by its keyed hash (``pii_hash_secret``) and becomes
``customer_key``. The mapping is in :mod:`connectors.vendors.mindful.mapping`.

:func:`fetch_metrics` pulls the vendor's own aggregate (seed 000) for reconciliation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import httpx
import polars as pl
from pydantic import AwareDatetime, Field, SecretStr, field_validator

from connectors.errors import ConfigError, ResponseShapeError
from connectors.http import BearerAuth, HeaderAuth, OAuth2ClientCredentials, make_client
from connectors.landing import RecordKey
from connectors.paging import Page, Paginator, TimeWindowPaginator
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, TimeWindow, send_json
from connectors.source import Normalised, Source, SourceSettings, Stream, secure_url_setting
from connectors.state import parse_utc
from connectors.vendors.mindful.mapping import RECORD_DTYPE, canonical
from engine.clock import sleep as clock_sleep
from engine.schema import empty_quarantine

__all__ = [
    "AVAILABLE_WITHIN",
    "CLOCK_SKEW",
    "METRICS_PATH",
    "MINDFUL",
    "PII_DROP",
    "PII_HASH",
    "MindfulSettings",
    "fetch_metrics",
    "hour_request",
    "lifetime",
    "normalise",
    "page_cursor",
    "plan",
    "prepare",
]

METRICS_PATH: Final = "v2/callback/historical/metrics"
DATA_PATH: Final = "v2/data/historical"
_HOUR: Final = timedelta(hours=1)
#: A record's instants, from its creation to its end (:func:`lifetime`).
_LIFE: Final = ("createdAt", "estimatedFor", "processedAt", "endedAt")
#: How long after its last instant a record still counts as the hour's own (a page none of whose
#: records does is another period's); later records land all the same.
AVAILABLE_WITHIN: Final = timedelta(days=7)
#: How far after the hour's end a record may be created (Mindful's clock against ours).
CLOCK_SKEW: Final = timedelta(minutes=5)
#: Dropped before landing: the caller's line and whatever the caller typed at registration.
PII_DROP: Final = ("ani", "metadata")
#: Replaced by an HMAC-SHA256 of its digits: the callback number (``customer_key``).
PII_HASH: Final = ("phoneNumber",)
_FILTERS: Final = {
    "call_target_id": "callTargetId",
    "first_party_called": "firstPartyCalled",
    "source_type": "sourceType",
    "type": "type",
}
_FIVE: Final = (
    "totalAbandoned",
    "totalCanceled",
    "totalFailure",
    "totalSuccessful",
    "totalUnavailable",
)
#: The seed-000 document's keys (leaves are numbers).
METRICS_SHAPE: Final[dict[str, Any]] = {
    "outcomes": dict.fromkeys(("totalCallbackASAP", "totalCallbackScheduled", *_FIVE)),
    "performance": {
        **dict.fromkeys(
            f"{stat}{name}"
            for stat in ("average", "max")
            for name in ("CallbackTime", "CustomerWaitTime", "EstimatedCallbackTime", "TalkTime")
        ),
        "averagePunctuality": None,
        "rcsl": dict.fromkeys(("totalAbove60", "totalBelow30", "totalBetween31_60")),
        "retries": {
            **{k: dict.fromkeys(_FIVE) for k in ("'1'", "'2'", "'3'", "'4'", "'5'", "over5")},
            "totalCallbacksWithRetries": None,
            "totalRetryAttempts": None,
        },
        "totalRepeatCustomers": None,
        "totalUniqueCustomers": None,
    },
    "totalCallbacks": None,
}


class MindfulSettings(SourceSettings):
    """``[sources.mindful]``: the Mindful organisation (OAuth2 client or static token).

    Mindful allows 100 requests/s per IP on the historical data and 10/s on the metrics; the
    defaults stay well under both. ``end`` stops the walk at that instant instead of now (a
    bounded backfill).

    Example:
        >>> s = MindfulSettings(base_url="http://127.0.0.1:8080", auth="static")
        >>> s.rate_limit_per_s, s.lookback
        (20.0, datetime.timedelta(seconds=10800))
    """

    base_url: str | None = "https://api.getmindful.com"
    auth: Literal["oauth2", "static"] = "oauth2"
    token_url: str = "https://auth.getmindful.com/oauth2/token"  # noqa: S105 - a URL
    client_id: str = ""
    client_secret: SecretStr | None = None
    static_token: SecretStr | None = None
    credential_fields = ("client_id", "client_secret", "static_token")
    token_refresh_margin_s: float = Field(default=60.0, ge=0)
    rate_limit_per_s: float = Field(default=20.0, gt=0)
    metrics_rate_limit_per_s: float = Field(default=5.0, gt=0)
    lookback_minutes: float = Field(default=180.0, ge=0)
    #: How long after it ended a record may still be served as an hour's only data (seed 001:
    #: an hour holds what became available in it); an hour none of whose records is within it
    #: stops the stream as another period's. Raise it when Mindful does serve such late data.
    available_within_days: float = Field(default=AVAILABLE_WITHIN.days, gt=0)
    end: AwareDatetime | None = None

    @field_validator("token_url")
    @classmethod
    def _secure_token_url(cls, value: str | None) -> str | None:
        return secure_url_setting(value)

    def required_when_enabled(self) -> Mapping[str, object]:
        """The PII hashing key and the credentials of the configured ``auth``."""
        needed: dict[str, object] = {"base_url": self.base_url}
        needed["pii_hash_secret"] = self.pii_hash_secret
        if self.auth == "oauth2":
            return needed | {"client_id": self.client_id, "client_secret": self.client_secret}
        return needed | {"static_token": self.static_token}

    def metrics_limiter(self) -> RateLimiter:
        """The client-side limiter of the metrics endpoint."""
        rate = self.metrics_rate_limit_per_s
        return RateLimiter(rate, max(1, int(rate)), margin=self.rate_limit_margin_s)


def _auth(settings: MindfulSettings, transport: httpx.BaseTransport | None) -> httpx.Auth:
    if settings.auth == "static":
        token = settings.static_token or SecretStr("")
        return HeaderAuth("Authorization", token, scheme="Bearer")
    provider = OAuth2ClientCredentials(
        settings.token_url,
        settings.client_id,
        settings.client_secret or SecretStr(""),
        margin=settings.token_refresh_margin_s,
        setting="sources.mindful.token_url",
        timeouts=settings.timeouts.to_timeouts(),
        transport=transport,
    )
    return BearerAuth(provider)


def _client(settings: MindfulSettings, transport: httpx.BaseTransport | None) -> httpx.Client:
    if not settings.base_url:
        raise ConfigError("sources.mindful.base_url: not set")
    return make_client(
        settings.base_url,
        setting="sources.mindful.base_url",
        auth=_auth(settings, transport),
        timeouts=settings.timeouts.to_timeouts(),
        transport=transport,
    )


def hour_request(window: TimeWindow) -> ApiRequest:
    """The request for the hour ``[window.start, window.start + 1 h)``.

    Example:
        >>> start = datetime(2023, 6, 8, 23, tzinfo=UTC)
        >>> hour_request(TimeWindow(start, start + timedelta(hours=1))).url
        'v2/data/historical/20230608/24'
    """
    start = window.start.astimezone(UTC)
    return ApiRequest("GET", f"{DATA_PATH}/{start:%Y%m%d}/{start.hour + 1:02d}", window=window)


def plan(start: datetime, settings: object, now: datetime) -> tuple[ApiRequest, Paginator]:
    """Walk the hours from the one holding ``start`` to the one holding ``now`` (included), or
    to the settings' ``end`` when that is earlier.

    Example:
        >>> at = datetime(2023, 6, 8, 12, 30, tzinfo=UTC)
        >>> request, _ = plan(at - timedelta(hours=3), None, at)
        >>> request.url, request.window.start.hour
        ('v2/data/historical/20230608/10', 9)
    """
    end = getattr(settings, "end", None)
    end = now if end is None else min(now, end)
    days = getattr(settings, "available_within_days", None)
    paginator = TimeWindowPaginator(
        end=end,
        step=_HOUR,
        render=hour_request,
        stamp=lifetime,
        late=AVAILABLE_WITHIN if days is None else timedelta(days=days),
        late_setting="sources.mindful.available_within_days",
        page_meets_window=True,
        skew=CLOCK_SKEW,
    )
    return paginator.first_request(start), paginator


def lifetime(record: Any) -> tuple[datetime, datetime] | None:
    """A record's life: its first and last instants (``createdAt``, ``estimatedFor``,
    ``processedAt``, ``endedAt``). An hour file holds "the data available" in that hour (seed
    001): a record created before the hour and ended in it, or made available long after it
    ended, lands; an hour none of whose records meets it (within ``available_within_days``), or a
    record created after it, is another period's (a filter's bug) and stops the stream
    (``record_outside_window``).

    A record without a readable ``createdAt`` has none: the quarantine takes it
    (``unparsable_timestamp``), never the hour's check.

    Example:
        >>> record = {"createdAt": "2023-06-08T12:12:53Z", "endedAt": "2023-06-08T14:00:00Z"}
        >>> [f"{at:%d %H}" for at in lifetime(record)]
        ['08 12', '08 14']
        >>> lifetime(record | {"createdAt": "yesterday"}) is None
        True
    """
    stamps = [parse_utc(record.get(k)) for k in _LIFE] if isinstance(record, dict) else []
    known = [at for at in stamps if at is not None]
    return (min(known), max(known)) if known and stamps[0] is not None else None


def page_cursor(page: Page, latest: datetime | None, started: datetime) -> datetime | None:
    """The cursor after an hour is landed: its end, but never past the last hour that had
    ended when the run started (the current hour is read, not committed).

    Example:
        >>> at = datetime(2023, 6, 8, 12, 30, tzinfo=UTC)
        >>> request, _ = plan(at, None, at)
        >>> page = Page(request, None, [], 1)  # type: ignore[arg-type]
        >>> page_cursor(page, None, at).hour
        12
    """
    window = page.request.window
    if window is None:
        return None
    whole = started.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return min(window.end, whole)


def prepare(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with ``id`` as its first key (Mindful sends keys alphabetically), so a record
    set aside at landing is filed under its id by :func:`connectors.normalise.land_rejected`.

    Example:
        >>> list(prepare({"activeDuration": 0, "id": "e58"}))
        ['id', 'activeDuration']
    """
    rid = record.get("id")
    if isinstance(rid, str | int) and not isinstance(rid, bool) and rid != "":
        return {"id": rid, **record}
    return dict(record)


def normalise(landed: pl.LazyFrame) -> Normalised:
    """Landed Mindful records -> canonical attempts, not yet validated (the pipeline edge sets
    aside the non-callbacks and quarantines bad rows); the mapping quarantines nothing.

    Example:
        >>> from connectors.landing import LANDING_SCHEMA
        >>> normalise(pl.LazyFrame(schema=LANDING_SCHEMA)).rows.collect().height
        0
    """
    return Normalised(canonical(landed), empty_quarantine().lazy())


def _project(value: Any, shape: Any, path: str) -> Any:
    """``value`` reduced to the keys of ``shape`` (unknown keys dropped, missing ones fatal)."""
    if shape is None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ResponseShapeError(f"metrics document: {path} is not a number")
        return value
    if not isinstance(value, Mapping):
        raise ResponseShapeError(f"metrics document: {path} is not an object")
    missing = [k for k in shape if k not in value]
    if missing:
        raise ResponseShapeError(f"metrics document: {path} lacks {', '.join(missing)}")
    return {k: _project(value[k], sub, f"{path}.{k}") for k, sub in shape.items()}


def _bound(value: datetime, name: str) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{name}: naive datetime, give a UTC instant")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_metrics(
    settings: MindfulSettings,
    begin: datetime,
    end: datetime,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = clock_sleep,
    **filters: str | list[str] | None,
) -> dict[str, Any]:
    """Mindful's callback metrics document for ``[begin, end)`` (seed 000), for reconciliation.

    Args:
        settings: the source's settings (base URL, auth, limits, retries).
        begin: window start (aware; sent to the second).
        end: window end (aware, exclusive).
        transport: a custom transport (tests).
        sleep: the retry policy's sleep (tests).
        **filters: ``call_target_id`` (one id, a comma-separated list or a list),
            ``first_party_called``, ``source_type``, ``type`` (the vendor's camelCase names work
            too); ``None`` means no filter.

    Returns:
        ``{"data": {...}}`` with exactly the seed's keys (unknown keys dropped), the shape of
        :func:`engine.tables.callback_metrics.document`.

    Raises:
        ResponseShapeError: a documented key is missing or not a number.
        ConnectorError: what the request itself raised (after retries).
    """
    params: dict[str, str | int] = {
        "timeBegin": _bound(begin, "begin"),
        "timeEnd": _bound(end, "end"),
    }
    for name, value in filters.items():
        key = _FILTERS.get(name, name)
        if key not in _FILTERS.values():
            raise ValueError(f"unknown metrics filter {name!r} (known: {', '.join(_FILTERS)})")
        if value is not None:
            params[key] = ",".join(value) if isinstance(value, list) else value
    request = ApiRequest("GET", METRICS_PATH, params=params)
    with _client(settings, transport) as client:
        response = send_json(
            client,
            request,
            limiter=settings.metrics_limiter(),
            retry=settings.retry_policy(sleep=sleep),
            max_bytes=settings.max_page_bytes,
        )
    body = response.body
    data = body.get("data") if isinstance(body, Mapping) else None
    return {"data": _project(data, METRICS_SHAPE, "data")}


#: The hourly historical records.
ATTEMPTS: Final = Stream(
    name="attempts",
    path=DATA_PATH,
    primary_key="id",
    normalise=normalise,
    paging="time_window",
    cursor_field="",  # no last-modified field: the cursor is the hour (page_cursor)...
    record_key=RecordKey("id"),  # ...and the latest fetch of an id wins in the landing store
    cursor_param="",
    lookback=timedelta(hours=3),
    records_path="data",
    pii_drop=PII_DROP,
    pii_hash=PII_HASH,
    record_dtype=RECORD_DTYPE,
    land_decoded=True,
    plan=plan,
    page_cursor=page_cursor,
    prepare=prepare,
)

#: The Mindful source: callback attempts.
MINDFUL: Final = Source(
    name="mindful",
    settings_model=MindfulSettings,
    client=_client,
    streams=(ATTEMPTS,),
    table="callback_attempts",
)
