"""A stream's landing files against its manifest and its state: what is lost, and the repair.

:func:`check_landing` compares one stream's manifest (:mod:`connectors.landing.manifest`) with
the files present and with the stream's state file, writes nothing, and returns one
:class:`Finding` per problem (``problem``, the path, what is wrong, the span lost).
:func:`repair_landing` is what :func:`connectors.sync.sync_stream` does with them before it
fetches anything:

===================  ==============================================================================
``missing``          a listed file is gone: the cursor is rewound to the start of the earliest
                     span lost (:meth:`~connectors.state.StateStore.rewind`), so the sync fetches
                     it again, and the entry is dropped
``damaged``          a file is not readable Parquet, or not the one listed (size; with ``deep``,
                     row count and SHA-256): moved aside (``<name>.damaged``, no longer read),
                     then as ``missing``
``unlisted``         a readable file the manifest does not list (a sync or compaction stopped
                     between the file and its entry, or it was landed before the manifest
                     existed): listed, its span from its footer, or its ``updated_at`` column
``manifest_damaged`` a complete line of the manifest is not an entry: the manifest is rewritten
                     from its readable entries and the files present
``state_unreadable`` the state file does not validate
``state_missing``    no state file, but a listed file was fetched after a cursor was committed
                     (and the stream was not reset)
``landing_missing``  the state says records of the stream were landed, and the landing store
                     holds no file of it and no manifest (lost, moved, not mounted, or a
                     relative ``[store] landing`` read from another working directory)
===================  ==============================================================================

What cannot be fetched again stops the sync with one line naming the path and the command that
fixes it (exit 2): a stream's whole landing store gone (``landing_missing``: fetching it again
from the start is the operator's choice, the source may no longer serve all of it; a run would
otherwise rebuild the store's rows of it from nothing), a lost file whose span's start is
unknown (landed before the manifest, by a stream whose cursor is not its ``updated_at``) while
the stream has a cursor
(:class:`~connectors.errors.LandingError`), and a state file that is missing or unreadable while
landed files depend on it (:class:`~connectors.errors.StateError`). The fix,
``wfm-intervals state reset <source> <stream> --yes``, has the stream fetched again from its
configured start; its landed records are kept and the re-read de-duplicated (a lost file whose
start is unknown is then only dropped from the manifest: the stream starts over anyway).

Crash safety of the repair: the cursor is rewound first (durably), then damaged files are moved
aside, then the manifest is rewritten (atomically). Killed in between, the next sync finds the
same losses and does the same again.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> check_landing(root / "landing", root / "state", "ujet", "calls")
    []
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from connectors.errors import LandingError, StateError
from connectors.landing.manifest import (
    Entry,
    Span,
    describe,
    landed_files,
    read_manifest,
    rows_of,
    stream_dir,
    write_manifest,
)
from connectors.state import StateStore, format_utc
from engine.durable import fsync_dir
from engine.errors import printable

__all__ = [
    "Finding",
    "Problem",
    "check_landing",
    "fix_command",
    "lost_landing",
    "refuse_unsyncable",
    "repair_landing",
    "unreadable_landing",
]

Problem = Literal[
    "missing",
    "damaged",
    "unlisted",
    "manifest_damaged",
    "state_unreadable",
    "state_missing",
    "landing_missing",
]
#: The suffix a damaged landing file is renamed with (it no longer ends in ``.parquet``).
DAMAGED = ".damaged"


@dataclass(frozen=True)
class Finding:
    """One problem of a stream's landing store.

    Attributes:
        problem: what kind (see the module docstring).
        path: the file concerned (a landing file, the manifest or the state file).
        detail: what is wrong, one line.
        span: the records concerned (``missing``, ``damaged``: the span lost; ``unlisted``: the
            span listed), ``None`` when unknown or not about records.
        entry: the manifest entry (``missing``, ``damaged`` when listed) or the one to list
            (``unlisted``).
    """

    problem: Problem
    path: Path
    detail: str
    span: Span | None = None
    entry: Entry | None = None

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-able dict (paths and instants as strings)."""
        return {
            "problem": self.problem,
            "path": str(self.path),
            "detail": self.detail,
            "span": None if self.span is None else self.span.to_json(),
        }


def fix_command(source: str, stream: str) -> str:
    """The command that has a stream fetched again from its configured start.

    Example:
        >>> fix_command("ujet", "calls")
        '`wfm-intervals state reset ujet calls --yes` fetches ujet/calls again from its start'
    """
    command = f"`wfm-intervals state reset {source} {stream} --yes`"
    return f"{command} fetches {source}/{stream} again from its start"


def _damage(path: Path, entry: Entry, *, deep: bool) -> str | None:
    """What is wrong with a listed file present on disk (``None``: nothing)."""
    size = path.stat().st_size
    if size != entry.size:
        return f"{size} bytes, the manifest lists {entry.size}"
    try:
        pl.read_parquet_metadata(path)
        rows = rows_of(path) if deep else entry.rows
    except (ValueError, OSError, pl.exceptions.PolarsError) as exc:
        return " ".join(str(exc).split())[:200] or "not readable Parquet"
    if rows != entry.rows:
        return f"{rows} rows, the manifest lists {entry.rows}"
    if deep:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != entry.sha256:
            return "its SHA-256 is not the one the manifest lists"
    return None


def check_landing(
    root: Path,
    state_root: Path,
    source: str,
    stream: str,
    *,
    deep: bool = False,
    by_updated_at: bool = False,
) -> list[Finding]:
    """Compare the manifest of ``source/stream`` with its files and its state; write nothing.

    Args:
        root: the landing store.
        state_root: the state store (:class:`~connectors.state.StateStore`).
        deep: also read every listed file's row count and SHA-256 (reads every byte); else the
            size and the Parquet footer only.
        by_updated_at: the stream's cursor is its records' ``updated_at`` (the span of an
            unlisted file landed before the manifest is then known from that column).

    Returns:
        The problems found, the state's first, then by path.
    """
    store, folder = StateStore(state_root), stream_dir(root, source, stream)
    state_path, found = store.path(source, stream), []
    try:
        current = store.get(source, stream)
    except StateError as exc:
        found.append(Finding("state_unreadable", state_path, str(exc)))
        current = None
    manifest = read_manifest(root, source, stream)
    if manifest.damaged is not None:
        found.append(Finding("manifest_damaged", manifest.path, manifest.damaged))
    present = {p.relative_to(folder).as_posix(): p for p in landed_files(root, source, stream)}
    for name, entry in sorted(manifest.entries.items()):
        path = folder / name
        if name not in present:
            found.append(Finding("missing", path, "listed, not there", entry.span, entry))
        elif (why := _damage(path, entry, deep=deep)) is not None:
            found.append(Finding("damaged", path, why, entry.span, entry))
    cursor = None if current is None else current.cursor
    for name, path in sorted(present.items()):
        if name in manifest.entries:
            continue
        try:
            adopted = describe(
                path, stream_folder=folder, by_updated_at=by_updated_at, committed=cursor
            )
        except ValueError as exc:
            found.append(Finding("damaged", path, f"not listed, {exc}"))
            continue
        found.append(Finding("unlisted", path, "not in the manifest", adopted.span, adopted))
    listed = [*manifest.entries.values(), *(f.entry for f in found if f.problem == "unlisted")]
    committed = any(e is not None and e.span.committed is not None for e in listed)
    unreadable = any(f.problem == "state_unreadable" for f in found)
    if current is None and not unreadable and committed and not store.was_reset(source, stream):
        detail = "missing, while landed files were fetched after a cursor was committed"
        found.insert(0, Finding("state_missing", state_path, detail))
    if current is not None and current.landed and not manifest.entries and not present:
        detail = (
            f"holds no file of {source}/{stream}, while its state (cursor "
            f"{format_utc(current.cursor)}) says its records were landed"
        )
        found.insert(0, Finding("landing_missing", folder, detail))
    return found


def lost_landing(finding: Finding, source: str, stream: str) -> str:
    """The line of a ``landing_missing`` finding of ``source/stream``: what, and the ways out."""
    return (
        f"landing store {finding.path.resolve()} {finding.detail}: lost, moved or not mounted (a "
        "relative [store] landing is read from the working directory); restore it there or point "
        f"[store] landing at it; else {fix_command(source, stream)}, and what the source no "
        "longer serves is lost"
    )


def refuse_unsyncable(found: Sequence[Finding], root: Path, source: str, stream: str) -> None:
    """Raise for the findings of ``source/stream`` (:func:`check_landing`) that no sync can go
    on from: its landing store gone while its state says records were landed, its state file
    unreadable or lost beside landed files. The run and ``sync`` ask it of every stream before
    any is fetched, and the sync again (:func:`repair_landing`).

    Raises:
        LandingError: the landing store is gone (:func:`lost_landing`).
        StateError: the state file is unreadable, or missing while landed files depend on it.
    """
    if emptied := [f for f in found if f.problem == "landing_missing"]:
        raise LandingError(lost_landing(emptied[0], source, stream))
    if bad := [f for f in found if f.problem in ("state_unreadable", "state_missing")]:
        held, first = len(landed_files(root, source, stream)), bad[0]
        what = first.detail  # the StateError's own line names the file
        if first.problem == "state_missing":
            what = f"state file {first.path}: {first.detail}"
        fix = fix_command(source, stream)
        raise StateError(f"{what} ({held} landed files of {source}/{stream}); {fix}")


def repair_landing(
    root: Path,
    state: StateStore,
    source: str,
    stream: str,
    *,
    lookback: timedelta,
    initial: datetime,
    by_updated_at: bool = False,
    deep: bool = False,
) -> list[str]:
    """Repair what :func:`check_landing` finds, before a sync of ``source/stream`` (see the
    module docstring); what was done, one line each (empty: nothing was wrong).

    Args:
        lookback: the stream's configured lookback (kept in a rewound state).
        initial: where the sync starts when the stream has no state (a lost span starting
            before it has the cursor set to its start).

    Raises:
        StateError: the state file is unreadable, or missing while landed files depend on it.
        LandingError: the stream's landing store is gone while its state says records were
            landed; a lost file's span is unknown while the stream has a cursor.
    """
    name, fix = f"{source}/{stream}", fix_command(source, stream)
    found = check_landing(root, state.root, source, stream, deep=deep, by_updated_at=by_updated_at)
    refuse_unsyncable(found, root, source, stream)
    current = state.get(source, stream)
    lost = [f for f in found if f.problem in ("missing", "damaged")]
    unknown = [f for f in lost if f.span is None or f.span.start is None]
    if current is not None and unknown:
        msg = (
            f"landing file {unknown[0].path} of {name}: {unknown[0].detail}, and where its "
            f"records start is not known (landed before the manifest, or never listed); {fix}"
        )
        raise LandingError(msg)
    manifest = read_manifest(root, source, stream)
    adopted = [f.entry for f in found if f.problem == "unlisted" and f.entry is not None]
    gone = {f.entry.file for f in lost if f.entry is not None}
    kept = [e for k, e in manifest.entries.items() if k not in gone]
    # every file of the stream lost: its state no longer says any is landed, or a sync that
    # fails after this repair would leave a landing store that looks lost (landing_missing)
    landed = None if kept or adopted or not lost else False
    starts = [f.span.start for f in lost if f.span is not None and f.span.start is not None]
    how = "fetched again by this sync (the cursor had not passed them)"
    target = min(starts) if starts else None
    if target is not None and target < (initial if current is None else current.cursor):
        state.rewind(source, stream, target, lookback=lookback, landed=landed)
        how = f"cursor rewound to {format_utc(target)}, fetched again by this sync"
    elif landed is False and current is not None:  # the cursor stays; the flag does not
        state.rewind(source, stream, current.cursor, lookback=lookback, landed=False)
    over = f"not fetched again: the stream starts over from {format_utc(initial)}"
    done = [_set_aside(f, name, over if f in unknown else how) for f in lost]
    done += [
        f"{name}: landing file {f.path} was {f.detail}: listed ({_span(f)})"
        for f in found
        if f.problem == "unlisted"
    ]
    if manifest.damaged is not None:
        done.append(f"{name}: manifest {manifest.damaged}: rewritten from the files present")
    if lost or adopted or manifest.damaged is not None:
        write_manifest(root, source, stream, [*kept, *adopted])
    return done


def _span(finding: Finding) -> str:
    return "range unknown" if finding.span is None else finding.span.describe()


def _set_aside(finding: Finding, name: str, how: str) -> str:
    """Move a damaged file aside (durably); the line that says what happened to a lost file."""
    what = "is missing"
    if finding.problem == "damaged":
        aside = finding.path.with_name(finding.path.name + DAMAGED)
        os.replace(finding.path, aside)
        fsync_dir(aside.parent)
        what = f"is damaged ({finding.detail}), moved aside to {aside.name}"
    return f"{name}: landing file {finding.path} {what} ({_span(finding)}): {how}"


def unreadable_landing(root: Path, streams: Sequence[tuple[str, str]], what: str, why: str) -> str:
    """The line of landed records of ``what`` that cannot be read (``why``, the reader's
    error): each landed file of ``streams`` (``(source, stream)``) is read alone to find the
    damaged ones, named with their stream and the command that fetches them again (none found:
    the line says how to find them).

    Example:
        >>> line = unreadable_landing(Path("/nowhere"), [("ujet", "calls")], "contacts", "oops")
        >>> line[-42:]
        'state reset SOURCE STREAM --yes` and `run`'
    """
    bad: list[tuple[str, str, Path, str]] = []
    for source, stream in streams:
        for path in landed_files(root, source, stream):
            try:
                pl.read_parquet(path)
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
                bad.append((source, stream, path, printable(exc, 200)))  # never empty
    head = f"store.landing {root}: the landed records of {what} cannot be read"
    if not bad:
        return (
            f"{head} ({why}); find the damaged file (`wfm-intervals verify`), move it away, "
            "then `wfm-intervals state reset SOURCE STREAM --yes` and `run`"
        )
    named = "; ".join(f"{p} ({s}/{t}): {e}" for s, t, p, e in bad[:3])
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    resets = " and ".join(
        sorted({f"`wfm-intervals state reset {s} {t} --yes`" for s, t, *_ in bad})
    )
    return (
        f"{head}: {named}{more}; move the damaged file(s) away, then {resets} and `run` to "
        "fetch their records again"
    )
