"""A vendor is a value: the declarations every connector fills in, and its settings base model.

A :class:`Source` is a name, a settings model (a subclass of :class:`SourceSettings`), a function
that builds its ``httpx.Client`` from those settings, and its :class:`Stream` values. A stream
says everything the shared sync loop (:mod:`connectors.sync`) and the rebuild
(:mod:`connectors.normalise`) need: where its records are, how they page, what the incremental
cursor is, the primary key, which JSON paths are PII, the record shape checked before landing, and
one vectorised ``normalise`` function from the landed frame to canonical rows plus quarantine.
Nothing here does I/O.

Example:
    >>> stream = Stream(name="calls", path="calls", primary_key="id", normalise=no_rows)
    >>> stream.cursor_param, stream.paging
    ('updated_at[from]', 'cursor_tail')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, NamedTuple, Self

import httpx
import polars as pl
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.decode import shape_error
from connectors.errors import (
    ConfigError,
    RecordError,
    RetriableError,
    is_missing_allowed,
    require_secure_url,
)
from connectors.http import DEFAULT_MAX_BYTES, Timeouts, unsendable
from connectors.landing import RecordKey
from connectors.paging import Page, Paginator
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, RetryPolicy
from engine import clock
from engine.schema import empty_contacts, empty_quarantine

__all__ = [
    "Normalised",
    "PagingKind",
    "Source",
    "SourceSettings",
    "Stream",
    "TimeoutSettings",
    "no_rows",
    "secure_url_setting",
    "shape_error",
]

PagingKind = Literal["cursor_tail", "page_number", "skip_limit", "page_key", "time_window"]


class Normalised(NamedTuple):
    """What a stream's normalise function returns: canonical rows and quarantine rows (lazy)."""

    rows: pl.LazyFrame
    quarantine: pl.LazyFrame


def no_rows(landed: pl.LazyFrame) -> Normalised:
    """A normalise function that maps nothing (placeholder for streams that only land).

    Example:
        >>> no_rows(pl.LazyFrame()).rows.collect().height
        0
    """
    return Normalised(empty_contacts().lazy(), empty_quarantine().lazy())


@dataclass(frozen=True)
class Stream:
    """One endpoint of a vendor, declared as data.

    Attributes:
        name: Stream name (a path component of the landing and state stores).
        path: Request path relative to the source's base URL.
        primary_key: Top-level key of a record's id.
        normalise: Landed frame (:data:`connectors.landing.LANDING_SCHEMA`) -> :class:`Normalised`.
            Settings that change its rows are bound as ``functools.partial`` keywords (Dixa's
            ``duration_unit``): the canonical snapshot's key reads them, so a change redoes it.
        paging: The paginator kind (:mod:`connectors.paging`).
        cursor_field: Record field holding the vendor's last-modified instant.
        cursor_param: Query parameter that takes the lower bound of ``cursor_field``.
        lookback: Default re-read window behind the cursor (settings may override it).
        records_path: Dotted path of the records in a response (``None``: the body is the list).
        params: Fixed query parameters (sorting, filters).
        pii_drop: PII paths dropped before landing (:class:`connectors.landing.PiiScrubber`).
        pii_hash: Paths whose value (a phone number) is replaced by a keyed hash.
        record_dtype: The record shape the normalise function decodes; records that do not fit
            it are quarantined at landing (see :func:`shape_error`).
        land_decoded: Also land each record decoded to ``record_dtype`` (the landing column
            ``record``, :mod:`connectors.landing`), so that ``normalise`` reads typed columns
            instead of parsing the JSON payload again on every rebuild.
        prepare: Applied to each raw record before scrubbing (e.g. to isolate a phone number).
        record_ref: How quarantine rows name a record: ``{id}`` is its primary key.
        plan: ``(start, settings, now) -> (first request, paginator)``; ``None``: the sync's
            built-in plan for ``paging`` (``cursor_tail``: ``cursor_param`` = start, sorted
            params, ``per``/``page``).
        page_cursor: ``(page, latest cursor_field landed so far, run start) -> cursor`` to
            commit after a page is durable; ``None``: the latest ``cursor_field`` landed.
        record_key: How the landing store reads a record's id and last change when they are
            not top-level keys (Dixa's typed ``fields``); ``None``: ``primary_key`` and
            ``cursor_field``.
    """

    name: str
    path: str
    primary_key: str
    normalise: Callable[[pl.LazyFrame], Normalised]
    paging: PagingKind = "cursor_tail"
    cursor_field: str = "updated_at"
    cursor_param: str = "updated_at[from]"
    lookback: timedelta = timedelta(hours=1)
    records_path: str | None = None
    params: Mapping[str, str | int] = field(default_factory=dict)
    pii_drop: tuple[str, ...] = ()
    pii_hash: tuple[str, ...] = ()
    record_dtype: pl.DataType | None = None
    land_decoded: bool = False
    prepare: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    record_ref: str = "{id}"
    plan: Callable[[datetime, Any, datetime], tuple[ApiRequest, Paginator]] | None = None
    page_cursor: Callable[[Page, datetime | None, datetime], datetime | None] | None = None
    record_key: RecordKey | None = None

    @property
    def landed_dtype(self) -> pl.DataType | None:
        """The dtype the landing store decodes this stream's records to (``None``: JSON only).

        Example:
            >>> Stream(name="s", path="s", primary_key="id", normalise=no_rows).landed_dtype is None
            True
        """
        return self.record_dtype if self.land_decoded else None

    def identity(self, record: object) -> tuple[str, datetime | None] | None:
        """A raw record's id and last change (``None`` without an id): what the repeated-page
        guard of :func:`~connectors.paging.iterate_pages` compares.

        Example:
            >>> Stream(name="s", path="s", primary_key="id", normalise=no_rows).identity({"id": 7})
            ('7', None)
        """
        key = self.record_key or RecordKey(self.primary_key, self.cursor_field)
        try:
            return key.read(record) if isinstance(record, Mapping) else None
        except RecordError:
            return None

    def ref(self, record_id: pl.Expr) -> pl.Expr:
        """The quarantine ``record_id`` of records whose primary key is ``record_id`` (null: ?).

        Example:
            >>> s = Stream(name="calls", path="c", primary_key="id", normalise=no_rows,
            ...            record_ref="call-{id}")
            >>> pl.select(s.ref(pl.lit("7"))).item()
            'call-7'
        """
        prefix, _, suffix = self.record_ref.partition("{id}")
        return pl.concat_str(pl.lit(prefix), record_id.fill_null("?"), pl.lit(suffix))


class TimeoutSettings(BaseModel):
    """HTTP timeouts in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect: float = Field(default=10.0, gt=0)
    read: float = Field(default=60.0, gt=0)
    write: float = Field(default=30.0, gt=0)
    pool: float = Field(default=10.0, gt=0)
    #: A whole request, from sending it to its body's last byte (retried as a timeout).
    total: float = Field(default=300.0, gt=0)

    def to_timeouts(self) -> Timeouts:
        """The shared layer's :class:`~connectors.http.Timeouts`."""
        return Timeouts(self.connect, self.read, self.write, self.pool, self.total)


def secure_url_setting(value: str | None) -> str | None:
    """A URL setting's field validator: :func:`require_secure_url`, as a one-line pydantic error.

    Example:
        >>> secure_url_setting("http://example.com")
        Traceback (most recent call last):
        ...
        ValueError: HTTPS is required for non-loopback hosts (http://example.com)
    """
    if value is not None:
        try:
            require_secure_url(value, setting="url")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("url: ")) from None
    return value


def _utf8(text: str) -> bool:
    """Whether ``text`` has UTF-8 bytes (not a surrogate: an env var's undecodable byte)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _given(value: object) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


class SourceSettings(BaseModel):
    """Settings every source has (``[sources.<name>]``); vendors subclass it.

    Example:
        >>> s = SourceSettings(rate_limit_per_s=5, lookback_minutes=30)
        >>> s.limiter().windows, s.lookback
        (((5, 1.0), (5, 1.0)), datetime.timedelta(seconds=1800))
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = False
    #: The streams to sync, by name (``None``: every stream of the source), e.g. ``["calls"]``
    #: for a tenant without chats.
    streams: tuple[str, ...] | None = None
    base_url: str | None = None
    rate_limit_per_s: float = Field(default=1.0, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    rate_limit_margin_s: float = Field(default=0.0, ge=0)
    rate_limit_anchor: Literal["response", "request"] = "response"
    per_page: int = Field(default=100, ge=1)
    lookback_minutes: float = Field(default=60.0, ge=0)
    start: AwareDatetime | None = None
    initial_days: int = Field(default=30, ge=0)
    timeouts: TimeoutSettings = TimeoutSettings()
    max_retries: int = Field(default=6, ge=0)
    retry_base_s: float = Field(default=0.5, ge=0)
    retry_max_s: float = Field(default=30.0, ge=0)
    retry_after_max_s: float = Field(default=120.0, ge=0)
    max_pages: int = Field(default=100_000, ge=1)
    #: The largest response body read, in bytes (decoded); a larger one stops the stream.
    max_page_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    pii_hash_secret: SecretStr | None = None
    #: The settings holding credentials (vendors name theirs): one with a line break, a control
    #: character or undecodable bytes (an env var pasted with its trailing newline) is refused
    #: at load, naming the setting, never the value (whitespace at its ends, when sent).
    credential_fields: ClassVar[tuple[str, ...]] = ()

    @field_validator("*")
    @classmethod
    def _usable(cls, value: Any, info: ValidationInfo) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        usable = info.field_name not in cls.credential_fields or not isinstance(text, str)
        if not usable and (why := unsendable(text.strip(" \t"))):
            raise ValueError(f"not a usable credential: {why}")
        if info.field_name == "pii_hash_secret" and isinstance(text, str) and not _utf8(text):
            raise ValueError("not a usable secret: it is not valid text")  # the HMAC's key bytes
        return value

    @field_validator("rate_limit_per_s")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of requests per second")
        return value

    @field_validator("base_url")
    @classmethod
    def _secure(cls, value: str | None) -> str | None:
        return secure_url_setting(value)

    def required_when_enabled(self) -> Mapping[str, object]:
        """The settings an enabled source cannot work without (vendors override): name ->
        value, in the order an error lists the missing ones (:meth:`missing`: empty, ``None`` or
        an empty :class:`~pydantic.SecretStr`)."""
        return {"base_url": self.base_url}

    def missing(self) -> list[str]:
        """What :meth:`required_when_enabled` lists and is not given."""
        return [name for name, value in self.required_when_enabled().items() if not _given(value)]

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.enabled and not is_missing_allowed() and (missing := self.missing()):
            raise ValueError(f"required when enabled: {', '.join(missing)}")
        return self

    @property
    def lookback(self) -> timedelta:
        """The re-read window behind the committed cursor."""
        return timedelta(minutes=self.lookback_minutes)

    def initial_cursor(self, now: datetime | None = None) -> datetime:
        """Where a stream with no state starts: ``start``, else ``initial_days`` before now."""
        if self.start is not None:
            return self.start.astimezone(UTC)
        return (now or clock.now()) - timedelta(days=self.initial_days)

    def limiter(self) -> RateLimiter:
        """The client-side limiter: ``floor(rate)`` per second (bursts allowed), plus margin."""
        burst = self.rate_limit_burst or max(1, math.floor(self.rate_limit_per_s))
        return RateLimiter(self.rate_limit_per_s, burst, margin=self.rate_limit_margin_s)

    def retry_policy(
        self,
        *,
        sleep: Callable[[float], None] = clock.sleep,
        on_retry: Callable[[int, float, RetriableError], None] | None = None,
    ) -> RetryPolicy:
        """The retry policy: ``max_retries`` retries after the first attempt, capped backoff."""
        return RetryPolicy(
            max_attempts=self.max_retries + 1,
            base_delay=self.retry_base_s,
            max_delay=self.retry_max_s,
            max_retry_after=self.retry_after_max_s,
            sleep=sleep,
            on_retry=on_retry,
        )


@dataclass(frozen=True)
class Source:
    """A vendor: its settings model, how to build its client, and its streams.

    Attributes:
        name: Source name (``ujet``); the ``source`` column of its canonical rows.
        settings_model: The ``[sources.<name>]`` settings model.
        client: Builds the configured ``httpx.Client`` (auth, timeouts, URL policy); the
            optional transport is for tests.
        streams: The streams, synced in this order.
        table: The canonical table the streams feed (``contacts``, ``callback_attempts``...).
        bind: ``settings -> Source`` when streams depend on settings (Dixa: the configured
            record ids and field mapping); see :meth:`configured`.
        preflight: ``(settings, client, limiter, retry)``, called once before the streams sync
            (Dixa reads its catalogue); raises :class:`~connectors.errors.ConfigError`.
    """

    name: str
    settings_model: type[SourceSettings]
    client: Callable[[Any, httpx.BaseTransport | None], httpx.Client]
    streams: tuple[Stream, ...]
    table: str = "contacts"
    bind: Callable[[Any], Source] | None = None
    preflight: Callable[[Any, httpx.Client, RateLimiter, RetryPolicy], None] | None = None

    def configured(self, settings: SourceSettings | None) -> Source:
        """This source with its streams for ``settings``: bound to them when the streams depend
        on settings, and only those ``settings.streams`` names (itself when nothing changes).

        Raises:
            ConfigError: ``streams`` names a stream the source does not have, or none.

        Example:
            >>> s = Source("x", SourceSettings, lambda s, t: httpx.Client(), streams=())
            >>> s.configured(SourceSettings()) is s
            True
        """
        if settings is None:
            return self
        source = self if self.bind is None else self.bind(settings)
        wanted = settings.streams
        if wanted is None:
            return source
        known = [s.name for s in source.streams]
        if unknown := [n for n in wanted if n not in known]:
            msg = (
                f"sources.{self.name}.streams: no stream {unknown[0]!r} "
                f"(streams of {self.name}: {', '.join(known)})"
            )
            raise ConfigError(msg)
        if not wanted:
            msg = f"sources.{self.name}.streams is empty: set enabled = false instead"
            raise ConfigError(msg)
        return replace(source, streams=tuple(s for s in source.streams if s.name in wanted))

    def stream(self, name: str) -> Stream:
        """The stream called ``name``.

        Raises:
            ConfigError: No such stream.
        """
        for stream in self.streams:
            if stream.name == name:
                return stream
        known = ", ".join(s.name for s in self.streams)
        raise ConfigError(f"source {self.name!r} has no stream {name!r} (streams: {known})")
