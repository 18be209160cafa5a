"""The run state: when the last ``wfm-intervals run`` started and which window it built.

One small JSON file next to the connectors' state, ``<store.state>/run.json`` (the connectors
keep theirs in ``<store.state>/<source>/<stream>.json``), written atomically and durably
(:func:`connectors.state.atomic_write_bytes`) after a run has committed its tables: the run is
committed when this file is. It holds instants, the build settings the tables were made with,
and the digest of each canonical table's partition days the tables were built from
(:func:`engine.pipeline.window.fingerprints`), and each store table's identity and version as
the run left it (:func:`engine.output.read.table_identity`), nothing else: no secret can end up
in it. The next run rebuilds the recent window from ``window_end - lookback`` and every day
whose digest changed, and rebuilds everything when the build settings changed, or a table is
not as the run left it (restored from a backup, its newest log entry lost: :func:`behind`). A
full rebuild marks the file first (:data:`UNFINISHED`), so that a kill halfway through (tables
committed under new settings, then the settings put back) is a full rebuild again. A version 1
file (before the digests) is read with none: the next run rebuilds everything once.

Example:
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> path = run_state_path(Path(tempfile.mkdtemp()))
    >>> at = datetime(2026, 10, 2, tzinfo=UTC)
    >>> save_run_state(path, RunState(at, at, at, at, {"tz": "UTC"}))
    >>> load_run_state(path).build
    {'tz': 'UTC'}
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.errors import StateError
from connectors.state import format_utc, parse_utc
from engine import killpoint
from engine.durable import atomic_write_bytes
from engine.output import delta
from engine.output.read import table_identity

__all__ = [
    "UNFINISHED",
    "RunState",
    "begin_commits",
    "behind",
    "commit_run_state",
    "load_run_state",
    "run_state_path",
    "save_run_state",
]

_VERSION = 2
_INSTANTS = ("started_at", "finished_at", "window_start", "window_end")
_IDENTITY = re.compile(r".+@\d+")  #: a table's identity as recorded: ``<id>@<version>``
#: The ``build`` of a run state whose full rebuild has begun and not ended: no settings are
#: this, so the next run rebuilds everything again (its tables may be half of each).
UNFINISHED: dict[str, Any] = {"unfinished": "a full rebuild began and did not end"}


@dataclass(frozen=True)
class RunState:
    """What the last successful run did.

    Attributes:
        started_at: when it started (the reference of late changes).
        finished_at: when it finished.
        window_start: the start of the window its tables were rebuilt for.
        window_end: the end of that window (the latest of every run so far).
        build: the build settings the tables were made with (``BuildSettings`` as JSON).
        digests: per canonical table, ISO date -> the digest of that partition day the tables
            were built from (``None``: unknown, e.g. a version 1 file).
        tables: store table -> its identity as the run left it (``<id>@<version>``; ``None``:
            not recorded, a file of an earlier version).
    """

    started_at: datetime
    finished_at: datetime
    window_start: datetime
    window_end: datetime
    build: dict[str, Any]
    digests: dict[str, dict[str, str]] | None = None
    tables: dict[str, str] | None = None
    #: when an incremental run going on from this state began to commit (it did not finish:
    #: the next run completes what it committed); ``None``: none did
    began: datetime | None = None


def run_state_path(state_root: Path) -> Path:
    """Where the run state lives under the connectors' state directory."""
    return Path(state_root) / "run.json"


def load_run_state(path: Path) -> RunState | None:
    """The saved run state, or ``None`` before the first run.

    Raises:
        StateError: the file is not a run state this version wrote.
    """
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raise StateError(f"run state {path}: not valid JSON") from None
    if not isinstance(data, dict) or data.get("version") not in (1, _VERSION):
        raise StateError(f"run state {path}: not a run state this version can read")
    instants = {name: parse_utc(data.get(name)) for name in _INSTANTS}
    build = data.get("build")
    digests = data.get("digests")
    if any(v is None for v in instants.values()) or not isinstance(build, dict):
        raise StateError(f"run state {path}: missing or invalid fields")
    if data["version"] == _VERSION and not _valid_digests(digests):
        raise StateError(f"run state {path}: missing or invalid digests")
    tables = data.get("tables")
    if not isinstance(tables, dict) or not all(
        isinstance(v, str) and _IDENTITY.fullmatch(v) for v in tables.values()
    ):
        tables = None  # not recorded (an earlier version's file), or not readable: no compare
    began = parse_utc(data.get("began"))
    return RunState(build=build, digests=digests, tables=tables, began=began, **instants)  # type: ignore[arg-type]


def _valid_digests(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(days, dict) and all(isinstance(v, str) for v in days.values())
        for days in value.values()
    )


def save_run_state(path: Path, state: RunState) -> None:
    """Write the run state atomically (and durably)."""
    data: dict[str, Any] = {"version": _VERSION}
    data |= {name: format_utc(getattr(state, name)) for name in _INSTANTS}
    data["build"] = state.build
    data["digests"] = state.digests or {}
    if state.tables is not None:
        data["tables"] = state.tables
    if state.began is not None:
        data["began"] = format_utc(state.began)
    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def behind(recorded: str, found: str) -> str | None:
    """How a table found as ``found`` (``<id>@<version>``) is not as a run left it,
    ``recorded`` (``None``: it is): another table (made anew: restored from an older copy,
    rebuilt), or an older version of it (its newest log entries lost or restored). A newer
    version is a run killed after its commits, before its state was saved: the next run redoes
    what it needs.

    Example:
        >>> behind("a@4", "a@3")
        'version 3, where the last run left version 4'
        >>> behind("a@4", "b@9")[:28], behind("a@4", "a@5")
        ('version 9 of another table, ', None)
    """
    (was, _, then), (now, _, version) = recorded.rpartition("@"), found.rpartition("@")
    if was == now and int(version) >= int(then):
        return None
    other = " of another table" if was != now else ""
    return f"version {version}{other}, where the last run left version {then}"


def commit_run_state(path: Path, state: RunState, *, tables: Mapping[str, Path]) -> None:
    """Commit a run: its state, with the identity of each of ``tables`` (name -> path) that is
    there as the run leaves it, says its tables are built (:func:`save_run_state`)."""
    left = {name: table_identity(p) for name, p in tables.items() if delta.is_table(p)}
    killpoint.reached("run.state_saving")
    save_run_state(path, replace(state, tables=left))
    killpoint.reached("run.state_saved")


def begin_commits(
    path: Path, now: datetime, window: tuple[datetime, datetime], previous: RunState | None
) -> None:
    """Mark the run state at ``path``, if there is one, before a run commits its first table.
    A full rebuild (no ``previous``) marks it :data:`UNFINISHED`: killed halfway (tables half
    under new settings, half under the old, the settings then put back), the next run rebuilds
    everything too. An incremental run keeps ``previous`` with :attr:`RunState.began`: stopped
    after some commits, ``verify`` says a run did not finish (the next run completes it)
    rather than that the store differs from what was built."""
    if previous is None and path.is_file():
        save_run_state(path, RunState(now, now, *window, UNFINISHED, {}))
    elif previous is not None:
        save_run_state(path, replace(previous, began=now))


#: Runs kept in the history (the oldest are dropped).
HISTORY_KEPT = 20


def history_path(state_root: Path) -> Path:
    """Where the short run history lives under the connectors' state directory."""
    return Path(state_root) / "runs.json"


def run_history(state_root: Path) -> list[dict[str, Any]]:
    """The last runs, oldest first (``[]`` before the first, or when the file is unreadable:
    the history is informative, never what a run depends on)."""
    try:
        data = json.loads(history_path(state_root).read_bytes())
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def record_run(state_root: Path, entry: dict[str, Any]) -> None:
    """Append one run to the history, keeping the last :data:`HISTORY_KEPT` (atomic write).

    A run records itself after it has let go of the store's lock, so two runs (of one store,
    or tenants of one state folder) may finish together: the read and the write of the history
    are made under a lock of their own (``runs.json.lock``), so that neither entry is lost."""
    path = history_path(state_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for one small read and write
        runs = [*run_history(state_root), entry][-HISTORY_KEPT:]
        atomic_write_bytes(path, json.dumps(runs, indent=1).encode())
    finally:
        os.close(fd)  # releases the lock
