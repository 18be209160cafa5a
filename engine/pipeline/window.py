"""What a ``wfm-intervals run`` rebuilds: the changed days, found by what landed, and their grids.

Change detection is by content, never by a vendor's clock. The rebuild step gives every
canonical row (everything landed, validated); :func:`fingerprints` reduces each table to one
digest per UTC date partition (contacts by the date of their offer, callback attempts by the date
of their request), and the run state keeps the digests the store's tables were last built from
(:class:`engine.pipeline.state.RunState`). A day whose digest differs (a record landed late,
was changed, moved to another day, or a whole catch-up of days landed) is *changed*, however
old; a day that did not is left alone. So an early-ending sync followed by a catch-up, or a
callback attempt published hours after its request, re-aggregates exactly the days it touched.

:func:`plan_run` turns that into the run's plan:

* a *full* rebuild (the first run, new build settings, ``--full-refresh``, or a damaged store)
  covers every day from the sources' first sync start (from that day's UTC midnight when rows
  landed earlier) up to now, and the days before it that rows count at: a row stamped years
  earlier (an old record changed lately, a vendor's bad date) adds its day, not every day
  between, which a zero-filled export would hold as millions of empty rows;
  an explicit ``start``/``end`` only widens it (every day's digest is kept as built: a
  narrower window would drop the days outside it from the interval tables for good, a rebuild
  left unfinished by a kill included);
* otherwise the changed days of each table, plus the *recent* window
  ``[previous window end - lookback, now)`` (``[run] lookback_minutes``, default the largest of
  the enabled sources'), which also zero-fills the intervals up to now; an explicit
  ``start``/``end`` replaces the recent window (changed days are rebuilt all the same, after
  the given end too: their digests are kept as built, so no later run would see them change);
* days are grouped into runs of consecutive days (a gap of one day is bridged, so that two grids
  never share a partition), and each run becomes one :class:`~engine.interval.Grid` of the
  build's intervals and zone; the last ends at now's interval.

Example:
    >>> from datetime import UTC, date, datetime
    >>> from engine.settings import BuildSettings
    >>> now = datetime(2026, 10, 9, 9, 7, tzinfo=UTC)
    >>> days = [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 8)]
    >>> [(g.start.day, g.end.day) for g in grids_of(days, BuildSettings(), now)]
    [(1, 3), (8, 9)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from engine.interval import Grid, Window
from engine.output.delta import PARTITION, days_of
from engine.output.store import request_dates, request_instant
from engine.pipeline.snapshot import Digests, day_digests, digest_rows
from engine.pipeline.snapshot.canonical import Canonical
from engine.settings import BuildSettings

__all__ = [
    "Canonical",
    "RunPlan",
    "after_until",
    "attribution_days",
    "changed_days",
    "fingerprints",
    "grids_of",
    "plan_attempts",
    "plan_contacts",
    "plan_run",
    "requested",
]


def partition_days(canonical: Canonical, *, skip: Iterable[str] = ()) -> dict[str, pl.Series]:
    """Each canonical row's store partition: ``contacts`` by offer date, ``callback_attempts``
    by request date (tables no source feeds, or in ``skip``, are absent)."""
    days: dict[str, pl.Series] = {}
    skip = set(skip)
    if "contacts" not in skip and (contacts := canonical.contact_rows) is not None:
        days["contacts"] = contacts.select(days_of("offered_at"))[PARTITION]
    if "callback_attempts" not in skip and (attempts := canonical.attempt_rows) is not None:
        days["callback_attempts"] = request_dates(attempts)
    return days


def fingerprints(canonical: Canonical) -> dict[str, Digests]:
    """One digest per table and partition day (:func:`engine.pipeline.snapshot.day_digests`):
    those the snapshot kept (:attr:`Canonical.digests`), the others hashed here. Polars' hash
    is stable within a version: after an upgrade every day may look changed once, which costs
    a full rebuild, never a missed change."""
    found = dict(canonical.digests)  # kept only for a table some source feeds
    for name, day in partition_days(canonical, skip=set(found)).items():
        frame = canonical.contact_rows if name == "contacts" else canonical.attempt_rows
        assert frame is not None
        found[name] = day_digests(frame, day)
    return found


def changed_days(new: Digests, old: Digests | None) -> set[date]:
    """Days whose digest is new, different, or gone (every day when ``old`` is ``None``)."""
    if old is None:
        return {date.fromisoformat(d) for d in new}
    keys = set(new) | set(old)
    return {date.fromisoformat(d) for d in keys if new.get(d) != old.get(d)}


def attribution_days(contacts: pl.DataFrame, settings: BuildSettings) -> set[date]:
    """The UTC dates of the instants ``contacts`` count at (offer or end, by attribution)."""
    at = "offered_at" if settings.attribution == "arrival" else "ended_at"
    instant = pl.coalesce(at, "offered_at")
    found = contacts.select(instant.dt.date().unique().drop_nulls())
    return set(found.to_series().to_list())


_DAY = timedelta(days=1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def grids_of(days: Iterable[date], settings: BuildSettings, now: datetime) -> list[Grid]:
    """The grids of ``days``: runs of consecutive days (one-day gaps bridged), each ending at
    midnight after its last day or at now's interval, whichever is first; days after now's
    interval are dropped."""
    end_of_now = settings.grid((now - timedelta(microseconds=1), now)).end
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if _midnight(day) >= end_of_now:
            continue
        if runs and (day - runs[-1][-1]).days <= 2:
            runs[-1].append(day)
        else:
            runs.append([day])
    grids = []
    for run in runs:
        start, end = _midnight(run[0]), _midnight(run[-1] + timedelta(days=1))
        grids.append(settings.grid((start, min(end, end_of_now)), checked=False))
    return grids


@dataclass
class RunPlan:
    """What a run rebuilds: per interval table its grids, per canonical table the partition
    days it commits (``None``: every partition, a full rebuild), and the digests to keep."""

    full: bool
    recent: Window
    #: where its last grid ends (now's interval, or a given end after it): a row after it is
    #: stored, and counted by a later run
    until: datetime
    volume: list[Grid] = field(default_factory=list)
    callbacks: list[Grid] = field(default_factory=list)
    commit_days: dict[str, set[date] | None] = field(default_factory=dict)
    digests: dict[str, Digests] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  #: table -> changed days

    def to_json(self) -> dict[str, object]:
        """The plan as ``--dry-run`` prints it."""

        def days(grids: list[Grid]) -> list[list[str]]:
            return [[_iso(g.start), _iso(g.end)] for g in grids]

        return {
            "full_rebuild": self.full,
            "recent": [_iso(self.recent[0]), _iso(self.recent[1])],
            "callvolume": days(self.volume),
            "callback_tables": days(self.callbacks),
            "changed_days": self.changed,
            "partitions": {
                name: "all" if d is None else sorted(x.isoformat() for x in d)
                for name, d in self.commit_days.items()
            },
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _earliest(canonical: Canonical) -> datetime | None:
    found = []
    if (contacts := canonical.contact_rows) is not None and contacts.height:
        found.append(contacts["offered_at"].min())
    if (attempts := canonical.attempt_rows) is not None and attempts.height:
        found.append(attempts["created_at"].min())
    return min((f for f in found if isinstance(f, datetime)), default=None)


def _days_before(
    canonical: Canonical, cut: date, settings: BuildSettings
) -> tuple[set[date], set[date]]:
    """The UTC dates before ``cut`` that rows count at: contacts' (offer, and end with end
    attribution) and callback requests'."""
    contacts, attempts = canonical.contact_rows, canonical.attempt_rows
    volume = set[date]()
    if contacts is not None:  # those offered before the cut: a later offer counts after it
        early = contacts.filter(pl.col("offered_at").dt.date() < cut)
        volume = attribution_days(early, settings) | set(early["offered_at"].dt.date())
    chains = set() if attempts is None else set(request_dates(attempts).unique())
    return {d for d in volume if d and d < cut}, {d for d in chains if d and d < cut}


def _days(window: Window) -> set[date]:
    first, last = window[0].date(), (window[1] - timedelta(microseconds=1)).date()
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def plan_run(
    canonical: Canonical,
    *,
    settings: BuildSettings,
    first_start: datetime,
    recent_start: datetime | None,
    given: tuple[datetime | None, datetime | None],
    previous: Mapping[str, Digests] | None,
    stored: Callable[[set[date]], pl.DataFrame] | None = None,
    now: datetime,
) -> RunPlan:
    """The plan of a run (see the module docstring).

    Args:
        canonical: what the rebuild step produced.
        settings: the build settings.
        first_start: where the sources' first sync starts (a full rebuild's window starts
            there, or at that day's midnight; earlier rows add their days).
        recent_start: the recent window's start (``None``: a full rebuild).
        given: the explicit ``(start, end)``, or ``(None, None)``.
        previous: the digests the store was built from (``None``: a full rebuild).
        stored: reads the stored contacts of the given partition days (their old versions:
            with attribution at the end, a contact whose end moved to another day counts
            where it was, too).
        now: the run's start.
    """
    new = fingerprints(canonical)
    full = recent_start is None or previous is None
    early: tuple[set[date], set[date]] | None = None  # a full rebuild's days of rows long before
    start, end = given if given[0] and given[1] else (recent_start, now)
    if full or start is None or end is None:  # the earliest row is read for a full rebuild only
        earliest, cut = _earliest(canonical), _midnight(first_start.astimezone(UTC).date())
        first = first_start if earliest is None else min(first_start, max(earliest, cut))
        # every day's digest is kept as built: a given window only widens a full rebuild
        start, end = min(first, given[0] or first), max(given[1] or now, now)
        if earliest is not None and earliest < cut:
            early = _days_before(canonical, cut.date(), settings)
    start = min(start, end - timedelta(microseconds=1))  # at least now's interval
    recent = settings.grid((start, end), checked=False).window
    # a changed day after a given end is rebuilt all the same: its digest is kept as built
    until = max(recent[1], settings.grid((now - timedelta(microseconds=1), now)).end)
    plan = RunPlan(full, recent, recent[1] if full else until, digests=new)
    if full:
        plan.volume = [settings.grid(recent, checked=False)]
        plan.callbacks = [settings.grid(recent, checked=False)]
        if early is not None:  # the days of those rows, not every day since the first of them
            plan.volume = grids_of(early[0] | _days(recent), settings, recent[1])
            plan.callbacks = grids_of(early[1] | _days(recent), settings, recent[1])
        plan.commit_days = dict.fromkeys(new)
        return plan
    volume, chains = _days(recent), _days(recent)
    for name, digests in new.items():
        changed = changed_days(digests, (previous or {}).get(name))
        plan.changed[name], plan.commit_days[name] = len(changed), changed
        if name == "contacts":
            rows = canonical.contacts_near((_midnight(d), _midnight(d) + _DAY) for d in changed)
            assert rows is not None
            volume |= changed  # where the old versions counted too (a day emptied, a move)
            volume |= attribution_days(rows.filter(days_of("offered_at").is_in(changed)), settings)
            if stored is not None and settings.attribution == "end" and changed:
                volume |= attribution_days(stored(changed), settings)
        else:
            chains |= changed
    plan.volume = grids_of(volume, settings, plan.until)
    plan.callbacks = grids_of(chains, settings, plan.until)
    return plan


def after_until(
    plan: RunPlan, table: str, rows: pl.DataFrame, settings: BuildSettings
) -> int | None:
    """How many rows of ``table`` count at or after :attr:`RunPlan.until` (contacts by their
    offer, or their end with end attribution; attempts by their request): stored, and counted
    by a later run. Far ahead of the clock, they are a sign of a source's clock or time zone
    off. ``rows``: what the run read of the table (:func:`plan_contacts`, :func:`plan_attempts`),
    every row up to the day after ``until``; the days after it are counted from the digests.
    ``None`` for a run given an end before now (its recent window does not reach ``until``)."""
    if plan.recent[1] < plan.until:
        return None
    at = pl.col("offered_at") if table == "contacts" else request_instant()
    day = at.dt.date()
    if table == "contacts" and settings.attribution == "end":
        at = pl.coalesce("ended_at", "offered_at")
    edge = plan.until.astimezone(UTC).date() + _DAY
    near = rows.select(((at >= plan.until) & (day <= edge)).sum()).item()
    digests = plan.digests.get(table, {}).items()
    return int(near) + sum(digest_rows(d) for k, d in digests if date.fromisoformat(k) > edge)


def plan_contacts(
    canonical: Canonical, plan: RunPlan, settings: BuildSettings
) -> pl.DataFrame | None:
    """The contacts ``plan`` needs (``None``: no source feeds them): those offered in its
    volume grids and contacts partition days (:meth:`Canonical.contacts_near`) when the grids
    count contacts by their offer; every one on a full rebuild, or counted by their end (an
    end is not bounded by the offer: a given ``wait_ms`` stands for the timestamps)."""
    if plan.full or settings.attribution == "end":
        return canonical.contact_rows
    days = plan.commit_days.get("contacts") or set()
    spans = [(g.start, g.end) for g in plan.volume]
    return canonical.contacts_near([*spans, *((_midnight(d), _midnight(d) + _DAY) for d in days)])


def plan_attempts(canonical: Canonical, plan: RunPlan, *, every: bool) -> pl.DataFrame | None:
    """The attempts ``plan`` needs, in chain order (``None``: no callback source): those of
    the chains requested in its callback grids, its recent window and its attempts partition
    days (:meth:`Canonical.attempts_near`); every one on a full rebuild or with ``every`` (a
    cluster's tasks)."""
    if plan.full or every:
        return canonical.attempt_rows
    days = plan.commit_days.get("callback_attempts") or set()
    spans = [plan.recent, *((g.start, g.end) for g in plan.callbacks)]
    return canonical.attempts_near([*spans, *((_midnight(d), _midnight(d) + _DAY) for d in days)])


def requested(attempts: pl.DataFrame, windows: Iterable[Window]) -> pl.DataFrame:
    """The chains of ``attempts`` (in chain order) requested on a day ``windows`` reach, or a day
    either side (a zone can move a grid's ends over midnight UTC): the callback tables and
    documents count a request by its instant only; the rest of the history is not reduced."""
    days = set[date]()
    for lo, hi in windows:
        first, last = lo.date() - timedelta(days=1), hi.date() + timedelta(days=1)
        days |= {first + timedelta(days=i) for i in range((last - first).days + 1)}
    return attempts.filter(request_dates(attempts).is_in(sorted(days)))
