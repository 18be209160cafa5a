"""``wfm-intervals run``: the whole job, incrementally, in one call (:func:`run`).

Steps, each reported through ``on_event``:

1. **sync** every enabled source into the landing store (:func:`engine.pipeline.sources.sync_all`;
   the first failed stream stops the run);
2. **rebuild** canonical contacts (UJET, Dixa), callback attempts (Mindful) and the Kore.ai rows
   (:func:`engine.pipeline.kore.import_kore`) from the landing store; contacts and attempts are
   validated there, once (:func:`engine.pipeline.sources.canonical`);
3. **build** every table for the window and merge it into the output store
   (:func:`engine.pipeline.tables.build_tables`). The window is ``[previous window end - lookback,
   now)`` (the first run, or a run after the build settings changed, starts where the sources'
   first sync starts), widened back to the offer of every *late change* (a segment updated after
   the previous run started but offered before it) and, for the callback tables, to the first
   attempt of every chain with an attempt in it; ``start``/``end`` replace it;
4. **export** (:func:`engine.pipeline.export.export_tables`);
5. **reconcile** with Mindful and Kore.ai when they are enabled
   (:mod:`engine.pipeline.checks`), each cut to what its sync has completed;
6. **report**: ``report.html``.

The run state (:mod:`engine.pipeline.state`) is saved last; the summary (:class:`RunSummary`) also
goes to ``run_summary.json``. Exit code 1 (data problems) when a table's quarantined share is
above ``[run] max_quarantine_fraction`` or a reconciliation is out of tolerance.

Example:
    ``summary = run(load_settings(Path("config/tenant.toml")))`` then ``summary.exit_code``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from connectors.errors import ConfigError
from connectors.state import StateStore, format_utc
from connectors.vendors.kore.client import KoreSettings
from engine.app.config import AppSettings
from engine.app.sources import connector
from engine.clock import now as clock_now
from engine.errors import StoreError
from engine.interval import Window
from engine.output import files as export
from engine.pipeline.checks import Inputs, reconcile, write_reconciliation
from engine.pipeline.export import export_tables
from engine.pipeline.kore import KoreImport, import_kore
from engine.pipeline.sources import Emit, canonical, sync_all
from engine.pipeline.state import RunState, load_run_state, run_state_path, save_run_state
from engine.pipeline.tables import Built, build_tables
from engine.pipeline.window import Canonical, run_windows
from engine.report.build import write_report
from engine.schema import QUARANTINE
from engine.tables.callback_requests import requests

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
    late_changes: int = 0
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
        """As a JSON-able dict (with ``ok`` and ``exit_code``)."""
        return {"ok": not self.problems, "exit_code": self.exit_code, **asdict(self)}


def _check_dirs(settings: AppSettings) -> None:
    for name, path in (
        ("store.landing", settings.store.landing),
        ("store.state", settings.store.state),
        ("output.dir", settings.output.dir),
    ):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{name}: {path} is not a directory")


def _cut(settings: AppSettings, name: str, window: Window) -> Window:
    """``window`` ended where the source's sync has completed (its committed cursor)."""
    stream = connector(name).configured(settings.source(name)).streams[0].name
    state = StateStore(settings.store.state).get(name, stream)
    end = window[1] if state is None else min(window[1], state.cursor)
    return window[0], end


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


def _build(
    settings: AppSettings, canon: Canonical, windows: tuple[Window, Window], *, merge: bool
) -> Built:
    empty = pl.DataFrame(schema=QUARANTINE)
    return build_tables(
        settings.output.dir,
        build=settings.build,
        window=windows[0],
        callback_window=windows[1],
        contacts=canon.contacts[0] if canon.contacts else None,
        contact_quarantine=canon.contacts[1] if canon.contacts else empty,
        attempts=canon.attempts[0] if canon.attempts else None,
        attempt_quarantine=canon.attempts[1] if canon.attempts else empty,
        merge=merge,
    )


def _count(summary: RunSummary, built: Built, canon: Canonical, limit: float) -> list[Path]:
    summary.segments = built.contacts.contacts if built.contacts else 0
    summary.attempts = built.callbacks.attempts if built.callbacks else 0
    summary.intervals_written = built.window_rows.get("callvolume", 0)
    summary.tables = {
        n: {"rows": built.rows[n], "window_rows": built.window_rows[n]} for n in built.rows
    }
    if canon.kore is not None:
        summary.tables["callvolume_kore"] = {"rows": canon.kore.rows.height}
    _quarantine(summary, built, canon.kore, limit)
    return [*built.files, *(canon.kore.files if canon.kore else ())]


def _reconcile(
    settings: AppSettings, names: list[str], canon: Canonical, window: Window, summary: RunSummary
) -> list[Path]:
    if not {"mindful", "kore"} & set(names):
        return []
    kore = canon.kore.rows.lazy() if canon.kore else None
    inputs = Inputs(canon.contact_rows.lazy(), requests(canon.attempt_rows.lazy()), kore)
    cuts: dict[str, Window] = {
        n: _cut(settings, n, window) for n in ("mindful", "kore") if n in names
    }
    rec = reconcile(settings, inputs, window=window, windows=cuts, out_dir=settings.output.dir)
    summary.reconcile = {"ok": rec.ok, "checks": rec.to_json()["checks"]}
    if not rec.ok:
        beyond = sum(c.out_of_tolerance for c in rec.checks)
        summary.problems.append(f"reconciliation: {beyond} differences out of tolerance")
    return [write_reconciliation(rec, settings.output.dir)]


def _report(settings: AppSettings, summary: RunSummary) -> list[Path]:
    if not settings.run.report:
        return []
    out = settings.output.dir
    try:
        write_report(out, out / "report.html")
    except StoreError as exc:
        summary.report = f"not written: {exc}"
        return []
    summary.report = str(out / "report.html")
    return [out / "report.html"]


def run(
    settings: AppSettings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    on_event: Emit | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunSummary:
    """Run the whole job once (see the module docstring).

    Args:
        settings: the effective configuration.
        start: window start (with ``end``; default: from the run state).
        end: window end, exclusive (default: now).
        on_event: called with ``(event, fields)`` as the run goes (progress, logs).
        clock: "now" (default :func:`engine.clock.now`).

    Raises:
        ConfigError: nothing enabled, a path that is not a directory, a bad setting.
        SyncFailedError: a stream could not be synced (nothing after it ran).
        ConnectorError: Mindful's metrics could not be fetched, a client could not be built.
        ExportError: a vendor profile does not fit the table.
        OSError: the output directory cannot be written.
    """
    emit, now_of = on_event or (lambda _event, _fields: None), clock or clock_now
    began, now = time.perf_counter(), now_of()
    names = settings.enabled_sources()
    if not names:
        raise ConfigError("no source is enabled: set sources.<name>.enabled = true")
    _check_dirs(settings)
    out, build_json = settings.output.dir, settings.build.model_dump(mode="json")
    state_path = run_state_path(settings.store.state)
    previous = load_run_state(state_path)
    if previous is not None and (previous.build != build_json or not (out / "store").is_dir()):
        previous = None  # rebuild everything: new settings, or the store is gone
    step = [time.perf_counter()]

    def done(name: str) -> None:
        emit("step", {"step": name, "seconds": round(time.perf_counter() - step[0], 3)})
        step[0] = time.perf_counter()

    pulls = sync_all(settings, names, emit)
    done("sync")
    kore = None
    if "kore" in names:
        kore_settings = settings.source("kore")
        assert isinstance(kore_settings, KoreSettings)
        kore = import_kore(kore_settings, landing_root=settings.store.landing, out_dir=out)
        if not kore.quarantine.height:  # import_kore writes the file only when there are rows
            (out / "quarantine" / "callvolume_kore.csv").unlink(missing_ok=True)
    canon = Canonical(
        canonical(settings, names, "contacts"),
        canonical(settings, names, "callback_attempts"),
        kore,
    )
    done("rebuild")
    window, chains, late = run_windows(
        settings, names=names, canonical=canon, previous=previous, given=(start, end), now=now
    )
    summary = RunSummary(
        started_at=format_utc(now, timespec="seconds"),
        window={
            "start": format_utc(window[0], timespec="seconds"),
            "end": format_utc(window[1], timespec="seconds"),
            "callback_start": format_utc(chains[0], timespec="seconds"),
            "interval_minutes": settings.build.interval_minutes,
            "tz": settings.build.tz,
            "full_rebuild": previous is None,
        },
        pulled=[p.to_dict() for p in pulls],
        late_changes=late,
    )
    built = _build(settings, canon, (window, chains), merge=previous is not None)
    files = _count(summary, built, canon, settings.run.max_quarantine_fraction)
    done("build")
    files += export_tables(out, settings.output, built.tables)
    done("export")
    files += _reconcile(settings, names, canon, window, summary)
    done("reconcile")
    files += _report(settings, summary)
    done("report")
    finished = now_of()
    summary.finished_at = format_utc(finished, timespec="seconds")
    summary.seconds = round(time.perf_counter() - began, 3)
    summary.files = sorted({str(f) for f in [*files, out / "run_summary.json"]})
    export.write_json(summary.to_json(), out / "run_summary.json")
    window_end = max(window[1], previous.window_end) if previous else window[1]
    save_run_state(state_path, RunState(now, finished, window[0], window_end, build_json))
    emit("run.done", {"exit_code": summary.exit_code, "seconds": summary.seconds})
    return summary
