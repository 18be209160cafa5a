"""Which intervals a ``wfm-intervals run`` rebuilds, and what the rebuild step hands over.

:func:`run_windows` decides the window of a run:

* the first run (or a run whose build settings changed, or whose store is gone) starts where the
  enabled sources' first sync starts (their ``start``, else ``initial_days`` back);
* later runs start at the previous window's end minus the lookback (``[run] lookback_minutes``,
  default the largest ``lookback_minutes`` of the enabled sources);
* a *late change* (a segment updated after the previous run started but offered before it)
  widens the window back to its offer, so the intervals it changed are aggregated again;
* the window ends now (and holds at least now's interval); both ends are widened to whole
  intervals of the build's zone;
* the callback tables' window also reaches back to the first attempt of every chain that has an
  attempt in the window (a request counts in the interval of its first attempt);
* an explicit ``start``/``end`` replaces the default window (late changes are still counted).

Example:
    >>> from datetime import UTC, datetime
    >>> from engine.app.config import load_settings
    >>> at = datetime(2026, 10, 1, 9, 7, tzinfo=UTC)
    >>> w = run_windows(load_settings(env_file=None), names=["ujet"],
    ...                 canonical=Canonical(None, None, None), previous=None,
    ...                 given=(at.replace(hour=8), at), now=at)
    >>> w.window[1].isoformat(), w.late_changes
    ('2026-10-01T09:15:00+00:00', 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import polars as pl

from engine.app.config import AppSettings
from engine.interval import Window, snap_window
from engine.pipeline.kore import KoreImport
from engine.pipeline.state import RunState
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS

__all__ = ["Canonical", "RunWindows", "run_windows"]


@dataclass(frozen=True)
class Canonical:
    """What the rebuild step produced: ``(rows, quarantine)`` per canonical table (``None``
    when no enabled source feeds it) and the Kore.ai import."""

    contacts: tuple[pl.DataFrame, pl.DataFrame] | None
    attempts: tuple[pl.DataFrame, pl.DataFrame] | None
    kore: KoreImport | None

    @property
    def contact_rows(self) -> pl.DataFrame:
        """The canonical contacts (empty when there are none)."""
        return self.contacts[0] if self.contacts else pl.DataFrame(schema=CONTACTS)

    @property
    def attempt_rows(self) -> pl.DataFrame:
        """The canonical callback attempts (empty when there are none)."""
        return self.attempts[0] if self.attempts else pl.DataFrame(schema=CALLBACK_ATTEMPTS)


class RunWindows(NamedTuple):
    """The volume window, the callback window, and how many late changes widened them."""

    window: Window
    callback_window: Window
    late_changes: int


def _default_start(
    settings: AppSettings, names: Sequence[str], previous: RunState | None, now: datetime
) -> datetime:
    if previous is None:
        return min(settings.source(n).initial_cursor(now) for n in names)
    minutes = settings.run.lookback_minutes
    if minutes is None:
        minutes = max(settings.source(n).lookback_minutes for n in names)
    return previous.window_end - timedelta(minutes=minutes)


def _late(contacts: pl.DataFrame, previous: RunState | None) -> pl.DataFrame:
    if previous is None:
        return contacts.clear()
    at = previous.started_at
    return contacts.filter((pl.col("updated_at") > at) & (pl.col("offered_at") < at))


def _chains_from(attempts: pl.DataFrame, start: datetime) -> datetime:
    """The first attempt of the earliest chain with an attempt created at or after ``start``."""
    chains = attempts.group_by("original_id").agg(
        pl.col("created_at").min().alias("first"), pl.col("created_at").max().alias("last")
    )
    first = chains.filter(pl.col("last") >= start)["first"].min()
    return min(first, start) if isinstance(first, datetime) else start


def run_windows(
    settings: AppSettings,
    *,
    names: Sequence[str],
    canonical: Canonical,
    previous: RunState | None,
    given: tuple[datetime | None, datetime | None],
    now: datetime,
) -> RunWindows:
    """The windows of a run (see the module docstring).

    Args:
        settings: the effective configuration.
        names: the enabled sources.
        canonical: what the rebuild step produced.
        previous: the last run's state (``None``: rebuild everything).
        given: the explicit ``(start, end)``, or ``(None, None)``.
        now: the run's start.
    """
    late = _late(canonical.contact_rows, previous)
    start, end = given
    if start is None or end is None:
        start, end = _default_start(settings, names, previous, now), now
        if late.height:
            first: datetime = late["offered_at"].min()  # type: ignore[assignment]
            start = min(start, first)
        start = min(start, end - timedelta(microseconds=1))  # at least the interval of now
    minutes, tz = settings.build.interval_minutes, settings.build.tz
    window = snap_window(start, end, minutes=minutes, tz=tz)
    chains = _chains_from(canonical.attempt_rows, window[0])
    return RunWindows(window, snap_window(chains, window[1], minutes=minutes, tz=tz), late.height)
