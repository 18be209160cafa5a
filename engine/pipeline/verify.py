"""``wfm-intervals verify``: the landing store, the state and the output store checked against
each other, writing nothing.

:func:`verify` returns one :class:`Finding` per check, each ``ok``, ``behind`` (nothing is wrong,
but a run has work to do) or ``problem`` (something is missing or damaged; its ``fix`` names the
command that repairs it):

* **state**: ``run.json`` and every enabled stream's cursor file read back; a store whose run state
  is gone is rebuilt whole by the next run; a cursor ahead of the clock, which a sync refuses
  to start from (:meth:`connectors.state.StateStore.resume_from`), is a problem;
* **store**: every table the enabled sources feed is a table whose current version has every file
  it names, with the size and row count its log recorded, readable whole (a file damaged in
  place keeps its size: :func:`engine.output.delta.problems`);
* **store vs state**: the stored canonical tables hash, partition day by partition day, to the
  digests the last run recorded (:func:`engine.pipeline.window.fingerprints`): a partition lost,
  added or changed outside a run shows here even when every file is sound; a difference a run
  stopped after some of its commits left (its state marked, :func:`~engine.pipeline.state.
  begin_commits`) is one the next plain run completes;
* **snapshot**: every file of each canonical snapshot against the digest it was written with (a
  file damaged in place; the snapshot is derived data, redone from the landing store);
* **landing**: every enabled stream's landing manifest against its files, reading every byte
  (:func:`connectors.landing.check.check_landing` with ``deep``): a file lost, torn, or not
  listed is a problem the next ``run`` repairs (its sync fetches the file's range again);
* **landing vs state**: what has landed is validated and hashed the same way: the days whose
  landed content differs from what the tables were built from are work for the next run.

Example:
    ``for f in verify(load_settings(Path("wfm.toml"))): print(f.status, f.check, f.detail)``
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

import polars as pl

from connectors.errors import ConnectorError, LandingError, StateError
from connectors.landing.check import Finding as LandingFinding
from connectors.landing.check import check_landing, fix_command
from connectors.state import StateStore
from engine import clock
from engine.app.config import AppSettings
from engine.app.sources import SOURCES, connector
from engine.errors import StoreError, printable
from engine.output import delta
from engine.output.store import scan_attempts
from engine.pipeline.lock import not_as_left
from engine.pipeline.snapshot import snapshot_dir
from engine.pipeline.snapshot.sums import damaged
from engine.pipeline.sources import canonical, keep_landed, tables_fed
from engine.pipeline.state import UNFINISHED, load_run_state, run_history, run_state_path
from engine.pipeline.window import Canonical, changed_days, fingerprints
from engine.schema import CONTACTS

__all__ = ["Finding", "verify"]

Status = Literal["ok", "behind", "problem"]
_REFRESH = "wfm-intervals run --full-refresh"


@dataclass(frozen=True)
class Finding:
    """One check: what, how it went, and the command that fixes a problem."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-able dict."""
        return asdict(self)


def _days(found: set[date]) -> str:
    shown = sorted(d.isoformat() for d in found)
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return ", ".join(shown[:5]) + more


def _state(settings: AppSettings, names: list[str]) -> tuple[list[Finding], Any]:
    found: list[Finding] = []
    path = run_state_path(settings.store.state)
    try:
        state = load_run_state(path)
    except ConnectorError as exc:
        return [Finding("state", "problem", str(exc), _REFRESH)], None
    ran = [r for r in run_history(settings.store.state) if r.get("exit_code") in (0, 1)]
    if state is None and ran:  # lost (or deleted): not the same as no run yet
        detail = (
            f"{path}: missing, while {len(ran)} run(s) finished before (the last "
            f"{ran[-1].get('finished_at', '?')}): the next run rebuilds every table from the "
            "landing store"
        )
        found.append(Finding("state", "behind", detail, "wfm-intervals run"))
    elif state is None:
        found.append(Finding("state", "behind", f"{path}: no run yet", "wfm-intervals run"))
    elif state.build == UNFINISHED:  # killed halfway: nothing to compare the store with
        detail = (
            f"{path}: a full rebuild began {state.started_at:%Y-%m-%dT%H:%MZ} and did not end: "
            "the next run rebuilds every table from the landing store"
        )
        found.append(Finding("state", "behind", detail, "wfm-intervals run"))
    elif state.began is not None:  # stopped after it began to commit: the next run completes it
        detail = (
            f"{path}: last run {state.finished_at:%Y-%m-%dT%H:%MZ}; a run began to commit "
            f"{state.began:%Y-%m-%dT%H:%MZ} and did not finish: the next run completes it"
        )
        found.append(Finding("state", "behind", detail, "wfm-intervals run"))
    else:
        found.append(
            Finding("state", "ok", f"{path}: last run {state.finished_at:%Y-%m-%dT%H:%MZ}")
        )
    store, now = StateStore(settings.store.state), clock.now()
    for name in names:
        lookback = settings.source(name).lookback
        for stream in connector(name).configured(settings.source(name)).streams:
            what = f"state {name}/{stream.name}"
            try:  # unreadable: a sync refuses it, a reset forgets it
                cursor = store.get(name, stream.name)
            except ConnectorError as exc:
                found.append(Finding(what, "problem", str(exc), fix_command(name, stream.name)))
                continue
            try:  # a cursor ahead of the clock is refused where a sync would start from it
                store.resume_from(name, stream.name, lookback=lookback, initial=now, now=now)
            except ConnectorError as exc:  # its line names the ways out
                found.append(Finding(what, "problem", str(exc)))
                continue
            detail = (
                "not synced yet" if cursor is None else f"cursor {cursor.cursor:%Y-%m-%dT%H:%MZ}"
            )
            found.append(Finding(f"state {name}/{stream.name}", "ok", detail))
    return found, state


def _landing(settings: AppSettings, names: list[str]) -> list[Finding]:
    """The landing manifest of every enabled stream against its files (every byte read)."""
    found: list[Finding] = []
    for name in names:
        for stream in connector(name).configured(settings.source(name)).streams:
            tail = stream.plan is None and stream.paging == "cursor_tail"
            problems = check_landing(
                settings.store.landing,
                settings.store.state,
                name,
                stream.name,
                deep=True,
                by_updated_at=tail and stream.record_key is None,
            )
            what = f"landing {name}/{stream.name}"
            if not problems:
                found.append(Finding(what, "ok", "every listed file is there and whole"))
                continue
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            detail = f"{first.problem}: {first.path}: {first.detail}{more}"
            held = StateStore(settings.store.state).path(name, stream.name).exists()
            fix = _landing_fix(problems, name, stream.name, cursor=held)
            found.append(Finding(what, "problem", detail, fix))
        try:  # the state lost with it: the store's rows of the source tell
            keep_landed(settings, name)
        except StateError:
            pass  # a state file unreadable or lost: found above, stream by stream
        except LandingError as exc:
            found.append(Finding(f"landing {name}", "problem", str(exc)))
    return found


def _landing_fix(problems: list[LandingFinding], source: str, stream: str, *, cursor: bool) -> str:
    """The command that repairs ``problems`` of ``source/stream``, as the next sync decides
    (:func:`connectors.landing.check.repair_landing`): a landing store lost, a state file
    unreadable or lost while landed files depend on it, or a lost file whose span is unknown
    while the stream has a cursor stop it, and only a reset of the stream gets past them; the
    rest (files lost or torn, not listed, a damaged manifest) the next run's sync repairs.
    ``cursor``: the stream has a state file."""
    kinds = {p.problem for p in problems}
    if "landing_missing" in kinds:
        return f"restore the landing store, or {fix_command(source, stream)}"
    unknown = any(
        p.problem in ("missing", "damaged") and (p.span is None or p.span.start is None)
        for p in problems
    )
    if kinds & {"state_unreadable", "state_missing"} or (unknown and cursor):
        return fix_command(source, stream)
    return "wfm-intervals run (its sync fetches the lost records again)"


def _stored_digests(settings: AppSettings, names: list[str]) -> dict[str, dict[str, str]]:
    root = settings.output.dir / "store"
    tables = tables_fed(names)
    contacts = delta.scan(root / "contacts", CONTACTS).collect() if "contacts" in tables else None
    attempts = None
    if "callback_attempts" in tables:
        attempts = scan_attempts(root / "callback_attempts").collect()
    empty = contacts.clear() if contacts is not None else None
    stored = Canonical.of(
        None if contacts is None else (contacts, empty),  # type: ignore[arg-type]
        None if attempts is None else (attempts, attempts.clear()),
        None,
    )
    return fingerprints(stored)


def unfed_tables(settings: AppSettings) -> list[str]:
    """The store's tables that no enabled source feeds (its sources turned off since they were
    built): no run touches them any more, and every reader (exports, ``report``, ``serve``)
    would take them as current. One line each, naming the sources that fed them."""
    fed, root, lines = set(tables_fed(settings.enabled_sources())), settings.output.dir, []
    for name in tables_fed(list(SOURCES)):
        path = root / "store" / name
        if name in fed or not delta.is_table(path):
            continue
        feeders = [s for s in SOURCES if name in tables_fed([s])]
        lines.append(
            f"{path}: fed by no enabled source (it was built from {', '.join(feeders)}), left as "
            "last built; enable the source again, or move the table aside if it is gone for good"
        )
    return lines


def _tables(settings: AppSettings, names: list[str], state: Any) -> list[Finding]:
    """Each store table the sources feed against its log (every file: size, rows, readable) and,
    as the last run left it, against its recorded identity (``state.tables``)."""
    root, found = settings.output.dir / "store", []
    for name in tables_fed(names):
        path = root / name
        if not delta.is_table(path) and state is None:
            continue  # no run yet: nothing to check
        problems = delta.problems(path, whole=True)
        if state is not None and state.tables is not None and not problems:
            problems = not_as_left(root, [name], state.tables)  # restored from an older copy
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            found.append(Finding(f"store {name}", "problem", problems[0] + more, _REFRESH))
        else:
            found.append(Finding(f"store {name}", "ok", f"version {delta.version(path)}"))
    return found


def _snapshots(settings: AppSettings, names: list[str]) -> list[Finding]:
    """Each canonical table's snapshot, every file read back against the digest it was written
    with (:func:`engine.pipeline.snapshot.sums.damaged`): a problem only. A plain run redoes
    it when the file changed on disk since it was committed (the files a run checks), else
    ``--full-refresh`` does."""
    found = []
    for table in ("contacts", "callback_attempts"):
        folder = snapshot_dir(settings.store.state, table)
        if table not in tables_fed(names) or not (bad := damaged(folder, deep=True)):
            continue
        fix = "wfm-intervals run" if damaged(folder) == bad else _REFRESH
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        found.append(Finding(f"snapshot {table}", "problem", bad[0] + more, fix))
    return found


def verify(settings: AppSettings) -> list[Finding]:
    """Every check (see the module docstring); writes nothing.

    Raises:
        ConfigError: nothing is enabled.
    """
    names = settings.enabled_sources()
    found, state = _state(settings, names)
    found += _landing(settings, names)
    found += [Finding("store", "behind", line) for line in unfed_tables(settings)]
    tables = _tables(settings, names, state)
    found += tables + _snapshots(settings, names)
    if state is None or state.build == UNFINISHED or state.digests is None:
        return found  # nothing the store can be compared with
    if any(f.status == "problem" for f in tables):
        return found
    try:
        stored = _stored_digests(settings, names)
    except (StoreError, OSError, pl.exceptions.PolarsError) as exc:  # a file damaged inside
        return [*found, Finding("store vs state", "problem", printable(exc), _REFRESH)]
    for name, digests in stored.items():
        off = changed_days(digests, state.digests.get(name, {}))
        if off:
            detail = f"{name}: {len(off)} partition day(s) differ from the last run: {_days(off)}"
            fix = _REFRESH
            if state.began is not None:  # what a run stopped after some of its commits leaves
                detail += f"; a run began {state.began:%Y-%m-%dT%H:%MZ} and did not finish: "
                detail += "`wfm-intervals run` completes it"
                fix = "wfm-intervals run"
            found.append(Finding("store vs state", "problem", detail, fix))
        else:
            found.append(Finding("store vs state", "ok", f"{name}: {len(digests)} day(s) agree"))
    landed = Canonical.of(
        canonical(settings, names, "contacts"),
        canonical(settings, names, "callback_attempts"),
        None,
    )
    for name, digests in fingerprints(landed).items():
        new = changed_days(digests, state.digests.get(name, {}))
        if new:
            detail = f"{name}: {len(new)} day(s) landed since the last run: {_days(new)}"
            found.append(Finding("landing vs state", "behind", detail, "wfm-intervals run"))
        else:
            found.append(Finding("landing vs state", "ok", f"{name}: nothing new landed"))
    return found
