"""Incremental sync state per (source, stream), written atomically.

A stream's state is its cursor (the highest ``updated_at`` seen, or the end of the last completed
hour) and the lookback it was committed with. The next sync starts at ``cursor - lookback`` (the
lookback from the current configuration), so late updates are re-read and de-duplicated by the
landing store. State is one small JSON file per stream, ``<root>/<source>/<stream>.json``, holding
only names, instants and a duration: there is no free-form field a secret could end up in.

Write order is the crash-safety contract: the sync lands a batch (durable when
:func:`connectors.landing.land_page` returns), and only then calls :meth:`StateStore.commit`.
A crash before the commit leaves the old cursor, so the next run re-reads and de-duplicates; a
crash during the commit leaves the old or the new file, never a torn one, because
:func:`engine.durable.atomic_write_bytes` writes a temporary file, fsyncs it, ``os.replace``-s
it over the old one and fsyncs the directory. Commits never move a cursor backwards;
:meth:`StateStore.rewind` (a lost landing file's range, :mod:`connectors.landing.check`) and
:meth:`StateStore.reset` do.
A reset leaves a marker, ``<root>/<source>/<stream>.reset``, until the stream's next commit: a
state file missing *with* it was reset on purpose (the next sync starts over); one missing
without it, while the stream's landing files say a cursor had been committed, was lost.

Example:
    >>> import tempfile
    >>> from datetime import UTC, datetime, timedelta
    >>> store, hour = StateStore(Path(tempfile.mkdtemp())), timedelta(hours=1)
    >>> _ = store.commit("ujet", "calls", datetime(2026, 10, 1, tzinfo=UTC), lookback=hour)
    >>> at = datetime(2026, 10, 2, tzinfo=UTC)
    >>> store.resume_from("ujet", "calls", lookback=hour, initial=at - timedelta(days=30), now=at)
    datetime.datetime(2026, 9, 30, 23, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeGuard

from connectors.errors import ConfigError, StateError
from engine import clock
from engine.durable import atomic_write_bytes, fsync_dir

__all__ = [
    "AHEAD",
    "StateStore",
    "StreamState",
    "check_name",
    "format_utc",
    "parse_utc",
]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VERSION = 1


def check_name(value: object, *, what: str) -> str:
    """Validate a source or stream name (it becomes a path component).

    Example:
        >>> check_name("ujet", what="source")
        'ujet'
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{what}: {value!r} is not a valid name ([a-z0-9][a-z0-9_-]*)")
    return value


def parse_utc(value: object) -> datetime | None:
    """Parse an ISO 8601 instant (``Z`` or an offset; naive means UTC) to an aware UTC datetime.

    Returns ``None`` for anything that is not such a string (or a datetime), and for an instant
    that has no UTC date (``0001-01-01T00:00:00+01:00`` is in year 0 in UTC): a vendor's stamp
    is untrusted text, and an overflow would escape every caller as a traceback.

    Example:
        >>> parse_utc("2018-05-30T20:46:31.333Z")
        datetime.datetime(2018, 5, 30, 20, 46, 31, 333000, tzinfo=datetime.timezone.utc)
        >>> parse_utc("9999-12-31T23:59:59-01:00") is None
        True
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        return None


def format_utc(value: datetime, *, timespec: str = "milliseconds") -> str:
    """Format an aware instant as ISO 8601 UTC with a ``Z``.

    Example:
        >>> format_utc(datetime(2026, 10, 1, 9, 45, tzinfo=UTC))
        '2026-10-01T09:45:00.000Z'
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime: instants must be timezone-aware")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


@dataclass(frozen=True)
class StreamState:
    """The committed state of one stream."""

    source: str
    stream: str
    cursor: datetime
    lookback: timedelta
    committed_at: datetime
    #: records of the stream are in the landing store under this state (so a landing store
    #: holding none of them was lost, not never written: :mod:`connectors.landing.check`);
    #: ``None``: not known (a state written before the flag)
    landed: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON document stored on disk (names, instants, seconds, a flag: nothing else)."""
        data: dict[str, Any] = {
            "version": _VERSION,
            "source": self.source,
            "stream": self.stream,
            "cursor": format_utc(self.cursor, timespec="microseconds"),
            "lookback_s": self.lookback.total_seconds(),
            "committed_at": format_utc(self.committed_at, timespec="microseconds"),
        }
        if self.landed is not None:  # absent in a state written before the flag: not known
            data["landed"] = self.landed
        return data

    @classmethod
    def from_json(cls, data: Any, *, path: Path) -> StreamState:
        """Validate a stored document; :class:`~connectors.errors.StateError` if it is bad."""
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise StateError(f"state file {path}: unknown format or version")
        cursor, committed = parse_utc(data.get("cursor")), parse_utc(data.get("committed_at"))
        lookback = data.get("lookback_s")
        if cursor is None or committed is None or not _finite(lookback):
            raise StateError(f"state file {path}: missing or invalid cursor/lookback")
        try:
            source = check_name(data.get("source"), what="source")
            stream = check_name(data.get("stream"), what="stream")
        except ConfigError as exc:
            raise StateError(f"state file {path}: {exc}") from None
        landed = flag if isinstance(flag := data.get("landed"), bool) else None
        return cls(source, stream, cursor, timedelta(seconds=lookback), committed, landed)


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and math.isfinite(value)


#: How far ahead of the clock a cursor (or a record's stamp) may be before it is said to be off:
#: two clocks differ by seconds, not minutes.
AHEAD = timedelta(minutes=5)


class StateStore:
    """Reads and commits :class:`StreamState` files under ``root``.

    Args:
        root: The state directory.
        now: Clock for ``committed_at`` (injectable for tests).
    """

    def __init__(self, root: Path, *, now: Callable[[], datetime] = clock.now) -> None:
        self.root = Path(root)
        self._now = now

    def path(self, source: str, stream: str) -> Path:
        """The file holding the state of ``(source, stream)``."""
        return (
            self.root
            / check_name(source, what="source")
            / f"{check_name(stream, what='stream')}.json"
        )

    def get(self, source: str, stream: str) -> StreamState | None:
        """The committed state, or ``None`` if the stream was never committed (or was reset)."""
        path = self.path(source, stream)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            state = StreamState.from_json(json.loads(raw), path=path)
        except ValueError:
            raise StateError(f"state file {path}: not valid JSON") from None
        if (state.source, state.stream) != (source, stream):
            raise StateError(f"state file {path}: holds {state.source}/{state.stream}")
        return state

    def resume_from(
        self, source: str, stream: str, *, lookback: timedelta, initial: datetime, now: datetime
    ) -> datetime:
        """Where the next sync starts: ``cursor - lookback``, or ``initial`` with no state.

        Raises:
            StateError: the cursor is over :data:`AHEAD` ahead of ``now``. The clock ran back
                (or was ahead when the cursor was committed, or the state came from another
                machine): a sync from it would ask for changes after an instant that has not
                come yet and miss every change until then, with nothing to show for it.
        """
        state = self.get(source, stream)
        if state is None:
            return initial
        if state.cursor > now + AHEAD:
            raise StateError(
                f"state of {source}/{stream}: its cursor {format_utc(state.cursor)} (committed "
                f"at {format_utc(state.committed_at)} by this machine's clock) is ahead of the "
                f"clock ({format_utc(now)}): the clock ran back or was ahead, and a sync from it "
                "would miss every change until then; set the clock right, then move the cursor "
                f"back: `wfm-intervals state reset {source} {stream} --since INSTANT` (when the "
                "clock was last right), or without --since to read everything again"
            )
        return state.cursor - lookback

    def commit(
        self,
        source: str,
        stream: str,
        cursor: datetime,
        *,
        lookback: timedelta,
        landed: bool = False,
    ) -> StreamState:
        """Durably record ``cursor``; call only after the data it covers was landed.

        The stored cursor never moves backwards (the later of the old and the new is kept);
        ``landed`` (records of the stream are in the landing store) is kept once set.
        """
        return self._write(source, stream, cursor, lookback, later=True, landed=landed)

    def rewind(
        self,
        source: str,
        stream: str,
        cursor: datetime,
        *,
        lookback: timedelta,
        landed: bool | None = None,
    ) -> StreamState:
        """Durably move the cursor back to ``cursor``, so that the next sync reads from
        ``cursor - lookback`` again (the earlier of the old and the new is kept). ``landed``
        (given): whether records of the stream are still in the landing store (a repair that
        lost every one of them says ``False``); else as it was.

        Example:
            >>> from datetime import UTC, timedelta
            >>> import tempfile
            >>> store, t = StateStore(Path(tempfile.mkdtemp())), datetime(2026, 10, 1, tzinfo=UTC)
            >>> _ = store.commit("ujet", "calls", t, lookback=timedelta(0))
            >>> store.rewind("ujet", "calls", t - timedelta(hours=2), lookback=timedelta(0)).cursor
            datetime.datetime(2026, 9, 30, 22, 0, tzinfo=datetime.timezone.utc)
        """
        return self._write(source, stream, cursor, lookback, later=False, landed=landed)

    def _write(
        self,
        source: str,
        stream: str,
        cursor: datetime,
        lookback: timedelta,
        *,
        later: bool,
        landed: bool | None = False,
    ) -> StreamState:
        if cursor.tzinfo is None:
            raise ValueError("naive datetime: cursors must be timezone-aware")
        old = self.get(source, stream)
        if old is not None:
            cursor = max(old.cursor, cursor) if later else min(old.cursor, cursor)
            if later:  # a commit: landed once, landed for good (until a repair says not)
                landed = bool(landed) or bool(old.landed)
            elif landed is None:
                landed = old.landed
        at = cursor.astimezone(UTC)
        state = StreamState(source, stream, at, lookback, self._now(), landed)
        data = json.dumps(state.to_json(), indent=2, sort_keys=True).encode() + b"\n"
        atomic_write_bytes(self.path(source, stream), data)
        marker = self.reset_marker(source, stream)
        if marker.exists():  # committed again: no longer a stream that was reset
            marker.unlink(missing_ok=True)
            fsync_dir(marker.parent)
        return state

    def reset_marker(self, source: str, stream: str) -> Path:
        """The file that says ``(source, stream)`` was reset and not committed since."""
        return self.path(source, stream).with_suffix(".reset")

    def was_reset(self, source: str, stream: str) -> bool:
        """Whether the stream was reset and has not been committed since."""
        return self.reset_marker(source, stream).exists()

    def show(self) -> list[StreamState]:
        """Every committed stream state, sorted by source and stream."""
        paths = sorted(self.root.glob("*/*.json"))
        names = [(p.parent.name, p.stem) for p in paths]
        states = (self.get(*n) for n in names if _NAME.fullmatch(n[0]) and _NAME.fullmatch(n[1]))
        return [s for s in states if s is not None]

    def reset(self, source: str | None = None, stream: str | None = None) -> list[StreamState]:
        """Delete the matching states (all when both are ``None``); return what was deleted.

        Each stream is marked reset first (:meth:`was_reset`, until its next commit), a named
        ``source``/``stream`` without a state file too, so that the next sync starts it over
        instead of reporting its state as lost. A state file that cannot be read is deleted
        all the same (it is not in the list returned: it holds no state).
        """
        found = [(p.parent.name, p.stem) for p in sorted(self.root.glob("*/*.json"))]
        names = [
            (a, b)
            for a, b in found
            if _NAME.fullmatch(a)
            and _NAME.fullmatch(b)
            and source in (None, a)
            and stream in (None, b)
        ]
        if source is not None and stream is not None and (source, stream) not in names:
            names.append((source, stream))
        removed: list[StreamState] = []
        for name in names:
            try:
                state = self.get(*name)
            except StateError:
                state = None
            at = format_utc(self._now())
            mark = {"version": _VERSION, "source": name[0], "stream": name[1], "reset_at": at}
            atomic_write_bytes(self.reset_marker(*name), json.dumps(mark).encode() + b"\n")
            path = self.path(*name)
            if path.exists():
                path.unlink()
                fsync_dir(path.parent)
            removed += [state] if state is not None else []
        return removed
