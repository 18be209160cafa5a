"""One writer at a time: the store's lock, and the leftovers of killed runs.

:func:`store_lock` takes an exclusive ``flock`` on ``<store.state>/wfm-intervals.lock`` for the
whole of a ``run`` or ``sync`` (the landing store, the connectors' and the run's state and the
output store are written only under it). The kernel drops the lock when its holder dies, however
it dies, so a lock left by a dead process is taken over with no guess about staleness. The file
also says who holds it (pid, host, since when: no secret), which is what a second writer's error
names:

    wfm-intervals: error: the store is in use by pid 4242 on host-a since 2026-11-09T02:00:03Z
    (another `wfm-intervals run`, `sync`, `build` or `callbacks` writing it); wait for it to
    end (`run` and `sync` can: --wait SECONDS)

``build`` and ``callbacks`` take the same lock on their ``--out`` folder: two of them into one
folder would both commit a first version of its tables, each keeping its rows (the second's
overwrite is read against the empty table the first had not yet filled), counting every contact
twice.

:func:`clean_leftovers` removes what a killed run can leave behind: temporary files and folders
of atomic writes, landing compactions never finished, and data files of store commits that never
happened (:func:`engine.output.delta.remove_orphans`), and the files of table versions replaced
over a week ago (:func:`engine.output.delta.vacuum`). :func:`housekeeping` does that and
migrates tables of the Parquet-directory store (before the Delta Lake store) in place;
:func:`damage` lists what is missing or damaged in the store's tables. All run under the lock.

The lock file also says how the previous holder ended: a holder whose ``with`` block finished
without an exception writes ``ended`` before it lets go, and the next holder records
``previous_ended: "cleanly"``. Only then can nothing of a killed writer be lying around, so
:func:`housekeeping` skips the sweep (a walk of every store and every table's history: ~0.45 s
at a year of history, growing with it) unless the previous holder did not end cleanly or a
week (:data:`SWEEP_EVERY`) has passed since the last sweep: what a writer outside the lock,
e.g. a killed ``build --store``, may have left, and the files of table versions replaced over a
week ago. Neither is ever read (readers go by the tables' logs), so waiting a week costs disk,
never a result.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with store_lock(root):
    ...     holder(root)["pid"] == os.getpid()
    True
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from engine import clock, killpoint
from engine.durable import fsync_dir
from engine.errors import StoreError, StoreLockedError
from engine.output import delta
from engine.output.files import write_json
from engine.output.migrate import migrate
from engine.output.read import table_identity
from engine.output.store import request_instant
from engine.pipeline.state import behind

__all__ = [
    "LOCK_FILE",
    "STORE_TABLES",
    "SWEEP_EVERY",
    "clean_leftovers",
    "damage",
    "holder",
    "housekeeping",
    "not_as_left",
    "set_aside_unreadable",
    "store_lock",
]

LOCK_FILE: Final = "wfm-intervals.lock"
#: The longest time between two sweeps of leftovers after clean ends (vacuum keeps a week too).
SWEEP_EVERY: Final = timedelta(days=7)
_SWEPT: Final = "housekeeping.json"
#: The store's tables, and the column each is partitioned by (``None``: by request date).
STORE_TABLES: Final[dict[str, str | None]] = {
    "contacts": "offered_at",
    "callback_attempts": None,
    "callvolume": "interval_start_utc",
    "callback_intervals": "interval_start_utc",
    "retry_outcomes": "interval_start_utc",
    "callvolume_kore": "interval_start_utc",
}
#: Names of what an interrupted write leaves: ``.<name>.tmp-<hex>`` (the temporary file of an
#: atomic write: :func:`engine.durable.temporary_sibling`), ``.<name>.old-<hex>``,
#: ``.run-staging-<hex>`` (earlier versions) and ``.compact-<hex>.tmp`` (landing compaction).
#: Each ``<hex>`` is a random UUID's 32 lowercase digits, a name no one else's file takes. Also
#: ``.<name>.<8 of a-z, 0-9, _>.tmp``, exactly what ``tempfile.mkstemp(prefix=".<name>.",
#: suffix=".tmp")`` named an atomic write's temporary file in earlier versions: left by a kill
#: then, it would stay for ever.
_LEFTOVER = re.compile(
    r"^(\..+\.(tmp|old)-[0-9a-f]{32}|\.run-staging-.+|\.compact-[0-9a-f]{32}\.tmp"
    r"|\..+\.[a-z0-9_]{8}\.tmp)$"
)


def holder(state_root: Path) -> dict[str, Any] | None:
    """Who holds (or last held) the lock, as its file says (``None``: no such file)."""
    try:
        data = json.loads((Path(state_root) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(found: dict[str, Any] | None) -> str:
    if not found:
        return "another process"
    return f"pid {found.get('pid')} on {found.get('host')} since {found.get('since')}"


@contextmanager
def store_lock(state_root: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the store's lock inside the ``with`` block.

    Args:
        state_root: ``store.state`` (created if missing).
        wait: seconds to wait for a holder to finish (0: fail at once).

    Raises:
        StoreLockedError: another process holds it (after ``wait``); names the holder.
    """
    root = Path(state_root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    found = _describe(holder(root))
                    msg = (
                        f"the store is in use by {found} (another `wfm-intervals run`, `sync`, "
                        "`build` or `callbacks` writing it); wait for it to end (`run` can: "
                        "--wait SECONDS)"
                    )
                    raise StoreLockedError(msg) from None
                clock.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
        before = holder(root)
        me: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": _stamp(clock.now()),
            "previous_ended": "cleanly" if before and before.get("ended") else "not cleanly",
        }
        _say(fd, me)
        killpoint.reached("lock.taken")
        yield
        _say(fd, me | {"ended": _stamp(clock.now())})  # not on an exception: that is no clean end
    finally:
        os.close(fd)  # closing drops the lock


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _say(fd: int, content: dict[str, Any]) -> None:
    """Replace the lock file's content (a torn write reads as no holder: not a clean end)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(content).encode(), 0)


def clean_leftovers(*roots: Path, tables: Path | None = None) -> list[str]:
    """Delete what killed runs left under ``roots`` and the orphans of the store's tables in
    ``tables`` (``<output.dir>/store``); what was removed, one line each (a file or folder: its
    path). Under ``roots`` only names of :data:`_LEFTOVER` go (a symlink of such a name: the
    link, never its target); any other file stays. Call it under :func:`store_lock` (as
    :func:`housekeeping` is): a temporary file is a leftover only once its writer is gone, and
    the lock's holder is the one writer of the landing store and the state."""
    removed: list[str] = []
    for root in roots:
        if not Path(root).is_dir():
            continue
        for path in sorted(Path(root).rglob(".*"), reverse=True):
            if not _LEFTOVER.match(path.name) or not os.path.lexists(path):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(str(path))
    if tables is not None and tables.is_dir():
        found = [t for t in sorted(tables.iterdir()) if delta.is_table(t) and not _log_error(t)]
        counts = {t: delta.remove_orphans(t) for t in found}
        removed += [f"{t}: {n} uncommitted file(s)" for t, n in counts.items() if n]
        old = {t: delta.vacuum(t) for t in found}
        removed += [
            f"{t}: {n} file(s) of versions replaced over a week ago" for t, n in old.items() if n
        ]
    return removed


def housekeeping(out: Path, landing: Path, state: Path, rebuilt: Sequence[str] = ()) -> list[str]:
    """Clean the leftovers under the output directory, the landing store and the state,
    migrate every table of ``out/store`` still in the Parquet-directory layout, and set aside
    those of ``rebuilt`` (the tables the run can build again) whose log cannot be read
    (:func:`set_aside_unreadable`); what was done.

    Call it under :func:`store_lock`. The sweep is skipped when the lock's previous holder
    ended cleanly and the last sweep (``<state>/housekeeping.json``) is less than
    :data:`SWEEP_EVERY` old;
    tables of the old layout are migrated either way.

    Raises:
        StoreError: an old table cannot be read to migrate it.
    """
    tables, now, record = out / "store", clock.now(), Path(state) / _SWEPT
    held = holder(state) or {}
    sweep = held.get("previous_ended") != "cleanly" or _swept(record) < now - SWEEP_EVERY
    done = clean_leftovers(out, landing, state, tables=tables) if sweep else []
    for name, by in STORE_TABLES.items():
        path = tables / name
        if not sweep and delta.is_table(path):
            continue  # migrated already; what a killed migration left is the sweep's
        partition = by if by is not None else request_instant()
        if migrate(path, by=partition):
            done.append(f"{path}: migrated to the Delta Lake store")
    if sweep:
        write_json({"swept": _stamp(now)}, record)
    return done + set_aside_unreadable(tables, rebuilt)  # after the sweep: the copy stays a while


def _swept(record: Path) -> datetime:
    """When the last sweep ran (long ago when the record is missing or unreadable)."""
    try:
        found = json.loads(record.read_text()).get("swept")
        return datetime.strptime(found, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (OSError, ValueError, TypeError, AttributeError):
        return datetime.min.replace(tzinfo=UTC)


def damage(
    tables: Path, names: list[str], left: Mapping[str, str] | None = None, since: Path | None = None
) -> list[str]:
    """What is missing or damaged among the tables ``names`` under ``tables``: one line each
    (files missing or of another size than their commit recorded, and the files changed on disk
    after the file ``since`` was written, the run state the last run committed last, read whole:
    bytes overwritten in place; ``wfm-intervals verify`` reads every file), and with ``left``,
    the tables not as the last run left them (:func:`not_as_left`), which no file check sees."""
    try:
        after = -1 if since is None else os.stat(since).st_mtime_ns
    except OSError:
        after = 0  # no run state to go by: every file is read
    found = [
        problem
        for name in names
        for problem in delta.problems(tables / name, deep=False, changed_after=after)
    ]
    return found + not_as_left(tables, names, left or {})


def not_as_left(tables: Path, names: list[str], left: Mapping[str, str]) -> list[str]:
    """The tables of ``names`` under ``tables`` that are not as the last run left them, by its
    recorded identities ``left`` (:attr:`~engine.pipeline.state.RunState.tables`;
    :func:`~engine.pipeline.state.behind`): restored from an older copy, their newest log
    entries lost. One line each; a table not recorded or not there is not one of them."""
    found = []
    for name in names:
        path, was = tables / name, left.get(name)
        if was is None or not delta.is_table(path):
            continue
        try:
            now = table_identity(path)
        except StoreError as exc:
            found.append(str(exc))
            continue
        if (how := behind(was, now)) is not None:
            found.append(f"{path}: {how} (restored from an older copy, or its newest log lost)")
    return found


def set_aside_unreadable(tables: Path, names: Sequence[str]) -> list[str]:
    """Move each table of ``names`` under ``tables`` whose transaction log cannot be read (torn
    by a crash of the machine, damaged on disk) aside, as ``.<name>.old-<hex>``, which a later
    sweep of leftovers deletes: the whole rebuild this calls for writes it again from the
    landing store, where opening it would stop every run, ``--full-refresh`` included (the
    run finds it missing: :func:`damage`). One line each."""
    moved = []
    for name in names:
        path = tables / name
        if delta.is_table(path) and (error := _log_error(path)) is not None:
            aside = path.with_name(f".{name}.old-{uuid.uuid4().hex}")
            path.rename(aside)
            fsync_dir(tables)
            moved.append(f"{error}: set aside as {aside.name}, to be built again")
    return moved


def _log_error(path: Path) -> str | None:
    """Why the log of the table at ``path`` cannot be read (``None``: it can)."""
    try:
        delta.data_files(path)
    except StoreError as exc:
        return str(exc)
    return None
