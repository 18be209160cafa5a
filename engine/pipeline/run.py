"""``wfm-intervals run``: the whole job, incrementally, in one call (:func:`run`).

Everything happens under the store's lock (:func:`engine.pipeline.lock.store_lock`: a second
writer fails at once naming the holder, or waits ``wait`` seconds). First the leftovers of killed
runs are removed and tables of the Parquet-directory store are migrated to the Delta Lake store
(:mod:`engine.output.delta`); a table the last run committed that is now missing, damaged or
behind (restored from an older copy) is reported in ``repaired`` and everything is rebuilt from
the landing store. Then, each step reported through ``on_event``:

1. **sync** every enabled source into the landing store (:func:`engine.pipeline.sources.sync_all`;
   the first failed stream stops the run);
2. **rebuild** canonical contacts (UJET, Dixa), callback attempts (Mindful) and the Kore.ai rows
   (:func:`engine.pipeline.kore.import_kore`) from the landing store; contacts and attempts are
   validated there, once (:func:`engine.pipeline.sources.canonical`);
3. **build** the plan's days (:func:`engine.pipeline.window.plan_run`: the recent window and every
   day whose landed content changed, however old; everything on a full rebuild) and commit them,
   one transaction per table (:func:`engine.pipeline.tables.build_tables`);
4. **export** the committed days (:func:`engine.pipeline.export.export_tables`);
5. **reconcile** with Mindful and Kore.ai when they are enabled
   (:mod:`engine.pipeline.checks`), each cut to what its sync has completed;
6. **report**: ``report.html`` over the store's last ``[run] report_days`` days.

The run state (:mod:`engine.pipeline.state`) is saved last: the run is committed when it is
(a full rebuild marks it unfinished first). A run killed before leaves tables that hold the
previous run's rows or the new rows of whole partitions, and the next run rebuilds every day
whose digest the state does not hold yet: nothing is lost and nothing counted twice. The summary
(:class:`RunSummary`, also ``run_summary.json``) counts, among the rest, the rows stored after the
window's end (counted by a later run; far ahead of the clock, a source's clock or zone is off).
Exit 1 (data problems): a table's quarantined share above ``[run] max_quarantine_fraction``, or
a reconciliation out of tolerance. ``full_refresh`` rebuilds every table from the landing store;
``dry_run`` syncs and writes nothing, and says what a run would rebuild.

Example:
    ``summary = run(load_settings(Path("config/tenant.toml")))`` then ``summary.exit_code``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from connectors.errors import ConfigError, StateError
from connectors.state import format_utc
from connectors.vendors.kore.client import KoreSettings
from engine import killpoint
from engine.app.config import AppSettings
from engine.clock import now as clock_now
from engine.errors import StoreError
from engine.interval import Window
from engine.memory import trim_heap
from engine.output import delta
from engine.output import files as export
from engine.pipeline.checks import (
    Inputs,
    reconcile,
    run_inputs,
    synced_window,
    write_reconciliation,
)
from engine.pipeline.export import export_tables
from engine.pipeline.kore import KoreImport, import_kore
from engine.pipeline.lock import damage, housekeeping, store_lock
from engine.pipeline.sources import Emit, run_lookback, sync_all, tables_fed
from engine.pipeline.state import (
    RunState,
    begin_commits,
    commit_run_state,
    load_run_state,
    run_state_path,
)
from engine.pipeline.tables import Built, build_tables
from engine.pipeline.window import Canonical, RunPlan, plan_run
from engine.report.build import write_run_report
from engine.schema import CONTACTS

__all__ = ["STEPS", "RunSummary", "run"]

#: The steps of a run, in order (``step`` events name them).
STEPS = ("sync", "rebuild", "build", "export", "reconcile", "report")


@dataclass
class RunSummary:
    """What a run did; :meth:`to_json` is what ``--json`` prints and ``run_summary.json`` holds."""

    started_at: str
    window: dict[str, Any]
    pulled: list[dict[str, Any]] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)  #: reason -> rows
    quarantine: list[dict[str, Any]] = field(default_factory=list)  #: per table
    segments: int = 0
    attempts: int = 0
    late_changes: int = 0  #: changed partition days outside the recent window
    after_window: dict[str, int] = field(default_factory=dict)  #: table -> rows after its end
    repaired: list[str] = field(default_factory=list)  #: what was missing or damaged, rebuilt
    cleaned: list[str] = field(default_factory=list)  #: leftovers of killed runs removed
    plan: dict[str, Any] = field(default_factory=dict)  #: what was rebuilt (dry run: would be)
    intervals_written: int = 0
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    reconcile: dict[str, Any] | None = None
    report: str | None = None
    problems: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    finished_at: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 ok, 1 data problems."""
        return 1 if self.problems else 0

    def to_json(self) -> dict[str, Any]:
        """As a JSON-able dict (``ok``, ``exit_code``; ``after_window`` only if counted)."""
        found = {k: v for k, v in asdict(self).items() if v or k != "after_window"}
        return {"ok": not self.problems, "exit_code": self.exit_code, **found}


def _check_dirs(settings: AppSettings) -> None:
    at = {"store.landing": settings.store.landing, "store.state": settings.store.state}
    for name, path in {**at, "output.dir": settings.output.dir}.items():
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{name}: {path} is not a directory")


def _quarantine(summary: RunSummary, built: Built, kore: KoreImport | None, limit: float) -> None:
    reasons: Counter[str] = Counter()
    reports = {"contacts": built.contacts, "callback_attempts": built.callbacks}
    for table, report in reports.items():
        if report is not None:
            counts = report.quarantined
            summary.quarantine.append(
                {"table": table, "rows": report.rows_in, "quarantined": sum(counts.values())}
            )
            reasons.update(counts)
    if kore is not None:
        q = kore.quarantine
        summary.quarantine.append(
            {
                "table": "callvolume_kore",
                "rows": kore.rows.height + q.height,
                "quarantined": q.height,
            }
        )
        reasons.update(q["reason"].to_list())
    for entry in summary.quarantine:
        entry["fraction"] = round(entry["quarantined"] / entry["rows"], 6) if entry["rows"] else 0.0
        if entry["fraction"] > limit:
            summary.problems.append(
                f"{entry['table']}: {entry['quarantined']} of {entry['rows']} rows quarantined "
                f"({entry['fraction']:.1%} > run.max_quarantine_fraction {limit:.1%})"
            )
    summary.quarantined = dict(sorted(reasons.items()))


def _count(summary: RunSummary, built: Built, canon: Canonical, limit: float) -> list[Path]:
    summary.segments = built.contacts.contacts if built.contacts else 0
    summary.attempts = built.callbacks.attempts if built.callbacks else 0
    summary.intervals_written = built.window_rows.get("callvolume", 0)
    summary.after_window = {t: n for t, n in built.after.items() if n is not None}
    summary.tables = {
        n: {"rows": built.rows[n], "window_rows": built.window_rows[n]} for n in built.rows
    }
    if canon.kore is not None:
        summary.tables["callvolume_kore"] = {"rows": canon.kore.rows.height}
    _quarantine(summary, built, canon.kore, limit)
    return [*built.files, *(canon.kore.files if canon.kore else ())]


def _reconcile(
    settings: AppSettings, names: list[str], inputs: Inputs | None, window: Window, s: RunSummary
) -> list[Path]:
    if inputs is None:
        return []
    kept: list[str] = [n for n in ("mindful", "kore") if n in names]
    cuts = {n: synced_window(settings, n, window, names, s.pulled) for n in kept}
    rec = reconcile(settings, inputs, window=window, windows=cuts, out_dir=settings.output.dir)
    s.reconcile = {"ok": rec.ok, "checks": rec.to_json()["checks"]}
    if not rec.ok:
        beyond = sum(c.out_of_tolerance for c in rec.checks)
        s.problems.append(f"reconciliation: {beyond} differences out of tolerance")
    return [write_reconciliation(rec, settings.output.dir), *rec.files]


def _report(settings: AppSettings, summary: RunSummary) -> list[Path]:
    if not settings.run.report:
        return []
    out = settings.output.dir
    try:
        write_run_report(out, out / "report.html", days=settings.run.report_days)
    except StoreError as exc:
        summary.report = f"not written: {exc}"
        return []
    summary.report = str(out / "report.html")
    return [out / "report.html"]


def _plan(
    settings: AppSettings,
    *,
    names: list[str],
    canon: Canonical,
    previous: RunState | None,
    given: tuple[datetime | None, datetime | None],
    now: datetime,
) -> RunPlan:
    recent = None
    if previous is not None:
        recent = previous.window_end - timedelta(minutes=run_lookback(settings, names))
    contacts = settings.output.dir / "store" / "contacts"

    def stored(days: set[date]) -> pl.DataFrame:
        if not delta.is_table(contacts):
            return pl.DataFrame(schema=CONTACTS)
        return delta.scan(contacts, CONTACTS, days=days).collect()

    return plan_run(
        canon,
        settings=settings.build,
        first_start=min(settings.source(n).initial_cursor(now) for n in names),
        recent_start=recent,
        given=given,
        previous=None if previous is None else previous.digests,
        stored=stored,
        now=now,
    )


def _summary(settings: AppSettings, plan: RunPlan, now: datetime) -> RunSummary:
    grids = [*plan.volume, *plan.callbacks]
    start = min([plan.recent[0], *(g.start for g in grids)])
    recent_days = {plan.recent[0].date(), (plan.recent[1] - timedelta(microseconds=1)).date()}
    late = sum(
        1
        for name, days in plan.commit_days.items()
        if days is not None and name in ("contacts", "callback_attempts")
        for d in days
        if not (min(recent_days) <= d <= max(recent_days))
    )
    return RunSummary(
        started_at=format_utc(now, timespec="seconds"),
        window={
            "start": format_utc(start, timespec="seconds"),
            "end": format_utc(plan.recent[1], timespec="seconds"),
            "recent_start": format_utc(plan.recent[0], timespec="seconds"),
            "interval_minutes": settings.build.interval_minutes,
            "tz": settings.build.tz,
            "full_rebuild": plan.full,
        },
        late_changes=late,
        plan=plan.to_json(),
    )


def run(
    settings: AppSettings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    on_event: Emit | None = None,
    clock: Callable[[], datetime] | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    wait: float = 0.0,
) -> RunSummary:
    """Run the whole job once (see the module docstring).

    Args:
        settings: the effective configuration.
        start: window start (with ``end``; default: from the run state).
        end: window end, exclusive (default: now).
        on_event: called with ``(event, fields)`` as the run goes (progress, logs).
        clock: "now" (default :func:`engine.clock.now`).
        full_refresh: rebuild every table from the landing store.
        dry_run: sync nothing, write nothing; the summary says what would be rebuilt.
        wait: seconds to wait for another run or sync to release the store.

    Raises:
        ConfigError: nothing enabled, a path that is not a directory, a bad setting.
        StoreLockedError: another run or sync holds the store (after ``wait``).
        SyncFailedError: a stream could not be synced (nothing after it ran).
        ConnectorError: Mindful's metrics could not be fetched, a client could not be built.
        ExportError: a vendor profile does not fit the table.
        StoreError: a store table cannot be read or committed.
        OSError: the output directory cannot be written.
    """
    names = settings.enabled_sources()
    if not names:
        raise ConfigError("no source is enabled: set sources.<name>.enabled = true")
    _check_dirs(settings)
    switches = {"full_refresh": full_refresh, "dry_run": dry_run}
    if dry_run:
        return _run(settings, names, (start, end), on_event, clock, **switches)
    with store_lock(settings.store.state, wait=wait):
        return _run(settings, names, (start, end), on_event, clock, **switches)


def _stepper(emit: Emit) -> Callable[[str], None]:
    """``done(step)``: :func:`engine.memory.trim_heap` (in the step's time), then its event."""
    began = [time.perf_counter()]

    def done(name: str) -> None:
        trim_heap()
        emit("step", {"step": name, "seconds": round(time.perf_counter() - began[0], 3)})
        began[0] = time.perf_counter()

    return done


def _run(
    settings: AppSettings,
    names: list[str],
    given: tuple[datetime | None, datetime | None],
    on_event: Emit | None,
    clock: Callable[[], datetime] | None,
    *,
    full_refresh: bool,
    dry_run: bool,
) -> RunSummary:
    emit, now_of = on_event or (lambda _event, _fields: None), clock or clock_now
    began, now = time.perf_counter(), now_of()
    out, build_json = settings.output.dir, settings.build.model_dump(mode="json")
    state_path = run_state_path(settings.store.state)
    try:
        previous = None if full_refresh else load_run_state(state_path)
    except StateError as exc:
        fix = "run `wfm-intervals run --full-refresh` to rebuild the store from the landing store"
        raise StateError(f"{exc} ({fix})") from None
    store, fed, where = out / "store", tables_fed(names), settings.store
    cleaned = [] if dry_run else housekeeping(out, where.landing, where.state, rebuilt=fed)
    repaired: list[str] = []
    if previous is not None and previous.build != build_json:
        previous = None  # new build settings: rebuild everything
    if previous is not None and not full_refresh:
        repaired = damage(store, fed, previous.tables, state_path)
    if full_refresh or repaired:
        previous = None
    done = _stepper(emit)
    pulls = [] if dry_run else sync_all(settings, names, emit, run_lookback(settings, names))
    done("sync")
    kore = None
    if "kore" in names and not dry_run:
        kore_settings = settings.source("kore")
        assert isinstance(kore_settings, KoreSettings)
        kore = import_kore(kore_settings, landing_root=settings.store.landing, out_dir=out)
        if not kore.quarantine.height:  # import_kore writes the file only when there are rows
            (out / "quarantine" / "callvolume_kore.csv").unlink(missing_ok=True)
    held = [  # _commit lets go of the canonical rows once the tables are built
        Canonical.refreshed(
            settings, names, kore, emit, whole=full_refresh or bool(repaired), write=not dry_run
        )
    ]
    done("rebuild")
    killpoint.reached("run.rebuilt")
    plan = _plan(settings, names=names, canon=held[0], previous=previous, given=given, now=now)
    summary = _summary(settings, plan, now)
    summary.pulled, summary.cleaned = [p.to_dict() for p in pulls], cleaned
    fixed = (f"{p.source}/{p.stream}: {r}" for p in pulls for r in p.repaired)
    summary.repaired = [*repaired, *held[0].repaired, *fixed]
    if dry_run:
        summary.finished_at = format_utc(now_of(), timespec="seconds")
        summary.seconds = round(time.perf_counter() - began, 3)
        return summary
    begin_commits(state_path, now, plan.recent, previous)  # killed from here on: known
    files = _commit(settings, names, held, plan, summary, done, now)
    finished = now_of()
    summary.finished_at = format_utc(finished, timespec="seconds")
    summary.seconds = round(time.perf_counter() - began, 3)
    summary.files = sorted({str(f) for f in [*files, out / "run_summary.json"]})
    export.write_json(summary.to_json(), out / "run_summary.json")
    window_end = max(plan.recent[1], previous.window_end) if previous else plan.recent[1]
    state = RunState(now, finished, plan.recent[0], window_end, build_json, plan.digests)
    commit_run_state(state_path, state, tables={t: store / t for t in fed})
    emit("run.done", {"exit_code": summary.exit_code, "seconds": summary.seconds})
    return summary


def _commit(  # noqa: PLR0917
    settings: AppSettings,
    names: list[str],
    held: list[Canonical],
    plan: RunPlan,
    summary: RunSummary,
    done: Callable[[str], None],
    now: datetime,
) -> list[Path]:
    """Build, export, reconcile, report: every file written (the exports' closed intervals are
    those closed at the run's start, ``now``). ``held``: the canonical rows, let go once built
    (the exports read the built tables, the reconciliation what it needs of the rows)."""
    out, canon = settings.output.dir, held.pop()
    tag = uuid.uuid4().hex[:12]  # the run's id, in the names of the files it commits
    built = build_tables(out, settings, plan=plan, canonical=canon, tag=tag)
    files = _count(summary, built, canon, settings.run.max_quarantine_fraction)
    inputs = run_inputs(names, canon, plan.recent)
    del canon  # the snapshot's rows and bookkeeping: nothing reads them any more
    done("build")
    files += export_tables(
        out, settings.output, built.tables, grids=plan.volume, callback_grids=plan.callbacks,
        build=settings.build, now=now,
    )  # fmt: skip
    built.tables.clear()  # the exports were their last reader
    killpoint.reached("run.exported")
    done("export")
    files += _reconcile(settings, names, inputs, plan.recent, summary)
    del inputs
    done("reconcile")
    files += _report(settings, summary)
    done("report")
    return files
