"""Settings of the table builders (SPEC §4, §5): plain, validated, immutable values.

Immutable all the way down: the per-channel thresholds and targets are :class:`FrozenDict`
(a ``dict`` that refuses changes), so a settings object a grid or a cached build was made with
keeps its meaning; settings with other values are new ``BuildSettings``.

The builders take a :class:`BuildSettings`; where it comes from (TOML, environment, the command
line) is the business of :mod:`engine.app.config`.

Example:
    >>> s = BuildSettings(interval_minutes=30, tz="Asia/Kolkata")
    >>> s.threshold_ms("q1", "voice")
    20000
"""

from __future__ import annotations

from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.interval import Grid, Window, known_zone
from engine.schema import CHANNELS

__all__ = [
    "MAX_DURATION_LIMIT_HOURS",
    "MAX_THRESHOLD_MS",
    "SL_FORMULAS",
    "SL_SETTINGS",
    "Attribution",
    "BuildSettings",
    "FrozenDict",
    "SlFormula",
    "ThresholdOverride",
    "duration_bound_ms",
    "known_channel",
    "known_zone",
]

Attribution = Literal["arrival", "end"]
SlFormula = Literal[
    "answered_over_answered_abandoned",
    "exclude_short_abandons",
    "ignore_abandons_within_t",
    "abandons_within_t_positive",
    "answered_only",
]
SL_FORMULAS: tuple[SlFormula, ...] = (
    "answered_over_answered_abandoned",
    "exclude_short_abandons",
    "ignore_abandons_within_t",
    "abandons_within_t_positive",
    "answered_only",
)

#: The settings that decide a table's ``service_level`` and the thresholds and targets it is held
#: to: what a build records in its summary (:meth:`BuildSettings.sl_record`), so that a report of
#: the store says and uses what it was built with.
SL_SETTINGS: tuple[str, ...] = (
    "sl_formula",
    "sl_comparator",
    "sl_default_ms",
    "sl_overrides",
    "use_vendor_threshold",
    "short_abandon_ms",
    "sl_target",
)

#: The largest service-level threshold accepted: a week (a larger one is a typo, and would not
#: fit the arithmetic of the table).
MAX_THRESHOLD_MS = 7 * 24 * 3_600_000

#: The largest ``max_duration_hours`` accepted: 8 days. A frame holds at most 2**32 - 1 rows
#: (Polars' row index is 32 bits) and the largest sum of a table adds three durations per row
#: (``handle_ms`` = talk + hold + wrap-up), so with every duration at most 8 days
#: (691,200,000 ms) no sum can pass 3 * 691,200,000 * (2**32 - 1) < 2**63 - 1: none overflows.
MAX_DURATION_LIMIT_HOURS = 8 * 24

_DEFAULT_THRESHOLDS_MS = {
    "voice": 20_000,
    "callback": 20_000,
    "chat": 60_000,
    "messaging": 60_000,
    "email": 3_600_000,
}


#: Service-level targets the staffing table plans for (fraction within the threshold).
_DEFAULT_SL_TARGETS = {"voice": 0.8, "callback": 0.8, "chat": 0.8, "messaging": 0.8, "email": 0.9}
MAX_SL_TARGET = 0.999  #: the highest target accepted (Erlang C needs a finite answer)


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses every change (a settings value): it reads, compares, copies,
    pickles and serialises as a ``dict`` does.

    Example:
        >>> d = FrozenDict({"voice": 20000})
        >>> d["voice"], d == {"voice": 20000}
        (20000, True)
        >>> d["voice"] = 1
        Traceback (most recent call last):
        ...
        TypeError: settings are immutable: make new BuildSettings with the changed values
    """

    __slots__ = ()

    def _refuse(self, *_args: object, **_kwargs: object) -> NoReturn:
        msg = "settings are immutable: make new BuildSettings with the changed values"
        raise TypeError(msg)

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return type(self), (dict(self),)  # made whole, not filled item by item


def duration_bound_ms(value: int) -> int:
    """``value`` if it can bound a duration in validation (``max_duration_ms``): a whole number
    of milliseconds from 1 to :data:`MAX_DURATION_LIMIT_HOURS` hours, so that no table's sum
    can overflow; else :class:`ValueError`.

    Example:
        >>> duration_bound_ms(2**62)
        Traceback (most recent call last):
        ValueError: max_duration_ms 4611686018427387904: from 1 to 691,200,000 ms (8 days) ...
    """
    limit = MAX_DURATION_LIMIT_HOURS * 3_600_000
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        days = MAX_DURATION_LIMIT_HOURS // 24
        msg = f"max_duration_ms {value!r}: from 1 to {limit:,} ms ({days} days) at most, "
        raise ValueError(msg + "above which a table's sums could overflow")
    return value


def known_channel(name: str) -> str:
    """``name`` if it is a canonical channel (:data:`engine.schema.CHANNELS`, lower case), else
    :class:`ValueError` listing them: a threshold for a typo'd channel would match no contact.

    Example:
        >>> known_channel("Voice")
        Traceback (most recent call last):
        ...
        ValueError: unknown channel 'Voice' (channels: voice, chat, email, callback, messaging)
    """
    if name not in CHANNELS.categories:
        msg = f"unknown channel {name!r} (channels: {', '.join(CHANNELS.categories)})"
        raise ValueError(msg)
    return name


class ThresholdOverride(BaseModel):
    """A service-level threshold for one queue (optionally one channel of it, a canonical one:
    another is refused, as it would match no contact)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_id: str
    channel: str | None = None
    threshold_ms: int = Field(ge=0, le=MAX_THRESHOLD_MS)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str | None) -> str | None:
        return value if value is None else known_channel(value)


class BuildSettings(BaseModel):
    """Everything that changes what the interval tables contain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_minutes: Literal[15, 30, 60] = 15
    tz: str = "UTC"
    attribution: Attribution = "arrival"
    sl_formula: SlFormula = "exclude_short_abandons"
    sl_comparator: Literal["<=", "<"] = "<="
    sl_default_ms: dict[str, int] = Field(
        default_factory=lambda: FrozenDict(_DEFAULT_THRESHOLDS_MS)
    )
    sl_overrides: tuple[ThresholdOverride, ...] = ()
    use_vendor_threshold: bool = False
    #: Per channel, the fraction within the threshold the ``staffing`` table plans for.
    sl_target: dict[str, float] = Field(default_factory=lambda: FrozenDict(_DEFAULT_SL_TARGETS))
    #: The AHT ``staffing`` assumes in an interval where nothing was answered.
    staffing_default_aht_ms: int = Field(default=300_000, ge=1_000, le=MAX_THRESHOLD_MS)
    short_abandon_ms: int = Field(default=5_000, ge=0, le=MAX_THRESHOLD_MS)
    #: A duration above this many hours (a wait, talk, hold or wrap-up; a callback's times) is
    #: quarantined ``implausible_duration``: a week by default, at most
    #: :data:`MAX_DURATION_LIMIT_HOURS` so that no sum can overflow.
    max_duration_hours: int = Field(default=7 * 24, ge=1, le=MAX_DURATION_LIMIT_HOURS)
    #: The longest window a build accepts, in days (a longer one is refused before any grid is
    #: allocated: a typo'd year would otherwise ask for gigabytes of empty intervals).
    max_window_days: int = Field(default=400, ge=1, le=36_600, exclude=True)

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("sl_default_ms")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for channel in value:  # a key that is no channel would set nothing
            known_channel(channel)
        bad = {k: v for k, v in value.items() if not 0 <= v <= MAX_THRESHOLD_MS}
        if bad:
            msg = f"service-level thresholds must be 0 to {MAX_THRESHOLD_MS} ms (a week), got {bad}"
            raise ValueError(msg)
        return FrozenDict({**_DEFAULT_THRESHOLDS_MS, **value})

    @field_validator("sl_target")
    @classmethod
    def _target_range(cls, value: dict[str, float]) -> dict[str, float]:
        for channel in value:  # a key that is no channel would set nothing
            known_channel(channel)
        bad = {k: v for k, v in value.items() if not 0 < v <= MAX_SL_TARGET}
        if bad:
            msg = f"service-level targets must be above 0 and at most {MAX_SL_TARGET}, got {bad}"
            raise ValueError(msg)
        return FrozenDict({**_DEFAULT_SL_TARGETS, **value})

    @property
    def max_duration_ms(self) -> int:
        """``max_duration_hours`` in milliseconds (what validation compares with).

        Example:
            >>> BuildSettings(max_duration_hours=1).max_duration_ms
            3600000
        """
        return self.max_duration_hours * 3_600_000

    def grid(self, window: Window | Grid, *, checked: bool = True) -> Grid:
        """The one :class:`~engine.interval.Grid` of ``window`` in these intervals and zone.

        A grid is passed through as it is (built once, shared by every table of a build); a
        ``(start, end)`` pair is widened to whole intervals, and refused when it is longer than
        ``max_window_days`` (:meth:`check_window`): every builder given a window gets its grid
        here, so the Python API holds windows to the same limit as the command line.
        ``checked=False`` is for a span taken from the data or from a grid already built (the
        data's span is held to :func:`engine.tables.dense.check_filled` instead).

        Raises:
            ValueError: a grid of another interval length or zone, a naive instant, an empty
                window, or a window longer than ``max_window_days`` (``checked``).

        Example:
            >>> from datetime import UTC, datetime
            >>> s = BuildSettings(interval_minutes=30)
            >>> g = s.grid((datetime(2026, 10, 1, 0, 5, tzinfo=UTC),
            ...             datetime(2026, 10, 1, 1, tzinfo=UTC)))
            >>> s.grid(g) is g, g.frame.height
            (True, 2)
        """
        if not isinstance(window, Grid):
            if checked and all(w.tzinfo is not None for w in window):  # naive: Grid.over's
                try:
                    self.check_window(window)
                except ValueError as exc:
                    fix = "give a shorter window, or settings with a larger max_window_days"
                    raise ValueError(f"{exc}; {fix}") from None
            return Grid.over(*window, minutes=self.interval_minutes, tz=self.tz)
        if (window.minutes, window.tz) != (self.interval_minutes, self.tz):
            msg = (
                f"a grid of {window.minutes} min in {window.tz} given to a build of "
                f"{self.interval_minutes} min in {self.tz}"
            )
            raise ValueError(msg)
        return window

    def check_window(self, window: Window) -> None:
        """Refuse a window a user gave that is longer than ``max_window_days`` (before any grid
        is allocated: a typo'd year would otherwise ask for gigabytes of empty intervals).

        Raises:
            ValueError: it is longer.

        Example:
            >>> from datetime import UTC, datetime
            >>> BuildSettings().check_window((datetime(1900, 1, 1, tzinfo=UTC),
            ...                               datetime(2100, 1, 1, tzinfo=UTC)))
            Traceback (most recent call last):
            ...
            ValueError: a window of 73,049 days is longer than max_window_days (400)
        """
        days = (window[1] - window[0]).total_seconds() / 86_400
        if days > self.max_window_days:
            limit = self.max_window_days
            msg = f"a window of {days:,.0f} days is longer than max_window_days ({limit})"
            raise ValueError(msg)

    def threshold_ms(self, queue_id: str, channel: str) -> int:
        """The configured threshold for a queue and channel (vendor thresholds aside)."""
        for wanted in (channel, None):  # a queue-and-channel override beats a queue-wide one
            for o in self.sl_overrides:
                if o.queue_id == queue_id and o.channel == wanted:
                    return o.threshold_ms
        return self.sl_default_ms.get(channel, _DEFAULT_THRESHOLDS_MS["voice"])

    def sl_record(self) -> dict[str, Any]:
        """The service-level settings (:data:`SL_SETTINGS`) as JSON values, what a build
        records in its summary; ``BuildSettings(**record)`` reads them back.

        Example:
            >>> record = BuildSettings(sl_formula="answered_only").sl_record()
            >>> record["sl_formula"], record["sl_default_ms"]["voice"], record["sl_overrides"]
            ('answered_only', 20000, [])
            >>> BuildSettings(**record).sl_formula
            'answered_only'
        """
        return self.model_dump(include=set(SL_SETTINGS), mode="json")
