"""The ``run`` command of ``wfm-intervals`` (registered on :data:`engine.cli.main.cli`).

Runs the whole job once (:func:`engine.pipeline.run.run`: sync, rebuild, build, export, reconcile,
report) and prints the run summary (``--json``: as JSON). While it runs: progress bars on a
terminal (rich, on stderr), ``key=value`` log lines on stderr otherwise, nothing with
``--quiet``. Exit codes: 0 ok; 1 data problems (a table's quarantined share above
``[run] max_quarantine_fraction``, or a reconciliation out of tolerance); 2 usage,
configuration or I/O errors, and unreachable sources (one line naming the setting or URL).

Example:
    $ WFM_CONFIG=config/tenant.toml wfm-intervals run --quiet
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.errors import ConnectorError
from connectors.state import format_utc
from engine import clock
from engine.app import logs
from engine.app.config import AppSettings
from engine.app.tenants import for_tenant
from engine.cli.common import (
    CONFIG_OPTION,
    EACH_TENANT_OPTION,
    FiniteFloat,
    check_window,
    each_tenant,
    engine_options,
    engine_settings,
    fail,
    instant,
    log_lines,
    print_table,
    tenant_error,
    work_through,
)
from engine.errors import (
    ClusterError,
    ExportError,
    StoreError,
    StoreLockedError,
    SyncFailedError,
    printable,
)
from engine.pipeline.run import STEPS, RunSummary, run
from engine.pipeline.sources import Emit
from engine.pipeline.state import record_run
from engine.pipeline.verify import unfed_tables

__all__ = ["run_command", "show_summary"]

_log = logging.getLogger("engine.pipeline.run")


def _flat(fields: dict[str, Any]) -> dict[str, Any]:
    """Dict values (reasons -> counts) as ``a:1,b:2``, so every value is one token."""
    return {
        k: ",".join(f"{a}:{b}" for a, b in v.items()) or "none" if isinstance(v, dict) else v
        for k, v in fields.items()
    }


@contextmanager
def _display(*, terminal: bool, quiet: bool) -> Iterator[Emit | None]:
    """Progress bars (terminal), log lines (otherwise) or nothing (quiet), as an event sink."""
    with ExitStack() as stack:
        if quiet:
            stack.enter_context(log_lines("engine.pipeline.run", "connectors", quiet=True))
            yield None
            return
        if not terminal:
            stack.enter_context(log_lines("engine.pipeline.run"))
            stack.enter_context(log_lines("connectors", level=logging.WARNING))

            def log(event: str, fields: dict[str, Any]) -> None:
                level = logging.DEBUG if event == "sync.page" else logging.INFO
                _log.log(level, event, extra={"fields": {"event": event, **_flat(fields)}})

            yield log
            return
        from rich.logging import RichHandler  # noqa: PLC0415 - terminals only

        console = Console(stderr=True)
        connectors = logging.getLogger("connectors")
        handler = RichHandler(console=console, show_path=False, level=logging.WARNING)
        connectors.addHandler(handler)
        stack.callback(connectors.removeHandler, handler)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        bar = stack.enter_context(Progress(*columns, TimeElapsedColumn(), console=console))
        steps = bar.add_task("run", total=len(STEPS))
        tasks: dict[str, Any] = {}

        def show(event: str, fields: dict[str, Any]) -> None:
            if event == "sync.page":
                key = f"{fields['source']}/{fields['stream']}"
                if key not in tasks:
                    tasks[key] = bar.add_task(key, total=fields["total_hint"])
                bar.update(tasks[key], completed=fields["records"], total=fields["total_hint"])
            elif event == "step":
                bar.update(steps, advance=1, description=f"run: {fields['step']} done")

        yield show


def show_summary(summary: RunSummary) -> None:
    """Print the run summary as tables and lines (``--json`` prints :meth:`RunSummary.to_json`)."""
    w = summary.window
    kind = "full rebuild" if w["full_rebuild"] else "incremental"
    click.echo(f"run {summary.started_at} .. {summary.finished_at} ({summary.seconds:.1f} s)")
    click.echo(
        f"window {w['start']} .. {w['end']} ({w['interval_minutes']} min, {w['tz']}; {kind})"
    )
    pulled = [
        [
            f"{p['source']}/{p['stream']}",
            p["pages"],
            p["records"],
            p["landed"],
            p["new"],
            sum(p["rejected"].values()),
            p["retries"],
            p["cursor"],
        ]
        for p in summary.pulled
    ]
    heads = ("source/stream", "pages", "records", "landed", "new", "rejected", "retries", "cursor")
    print_table(heads, pulled, title="pulled")
    quarantine = [
        [q["table"], q["rows"], q["quarantined"], q["fraction"]] for q in summary.quarantine
    ]
    print_table(("table", "rows read", "quarantined", "fraction"), quarantine, title="quarantine")
    reasons = ", ".join(f"{r}={n}" for r, n in summary.quarantined.items()) or "none"
    click.echo(f"quarantined by reason: {reasons}")
    tables = [[n, t["rows"], t.get("window_rows")] for n, t in summary.tables.items()]
    print_table(("table", "rows", "rows in window"), tables, title="tables")
    click.echo(
        f"segments {summary.segments:,}  attempts {summary.attempts:,}  "
        f"intervals written {summary.intervals_written:,}  "
        f"late changes re-aggregated {summary.late_changes:,}"
    )
    if any(summary.after_window.values()):
        click.echo(f"after the window {_after(summary)}")
    if summary.reconcile is not None:
        for c in summary.reconcile["checks"]:
            detail = c["note"] or f"{c['differences']} differences, {c['out_of_tolerance']} beyond"
            click.echo(f"reconcile {c['source']}: {c['status']} ({detail})")
    for line in summary.repaired:
        click.echo(f"repaired {line}")
    for line in summary.cleaned:
        click.echo(f"cleaned {line}")
    click.echo(f"report {summary.report or 'not written ([run] report = false)'}")
    click.echo(f"files {len(summary.files):,} (listed in run_summary.json)")
    click.echo(f"problems: {'; '.join(summary.problems) or 'none'}")


def _after(summary: RunSummary) -> str:
    """The rows stored after the window's end, said as the note that goes with them."""
    names = {"contacts": "contacts", "callback_attempts": "callback attempts"}
    found = ", ".join(f"{names[t]} {n:,}" for t, n in summary.after_window.items() if n)
    return (
        f"rows at or after the window's end ({summary.window['end']}), stored for a later run "
        f"to count: {found}; far ahead of the clock, a source's clock or time zone is off"
    )


def show_plan(summary: RunSummary, streams: list[str]) -> None:
    """What ``run --dry-run`` prints: the window, the sources, and the days each table would
    have rebuilt (from what has landed so far: a real run syncs first, and may find more);
    ``--json`` prints the same as one document (``window``, ``sources`` and the plan)."""
    w = summary.window
    kind = "full rebuild" if w["full_rebuild"] else "incremental"
    click.echo(f"dry run: nothing synced, nothing written ({kind})")
    click.echo(f"window {w['start']} .. {w['end']} (recent from {w['recent_start']})")
    click.echo(f"sources {', '.join(streams)}")
    for name in ("callvolume", "callback_tables"):
        spans = ", ".join(f"{a} .. {b}" for a, b in summary.plan[name]) or "none"
        click.echo(f"{name}: {spans}")
    for name, days in summary.plan["partitions"].items():
        shown = days if isinstance(days, str) else f"{len(days)} day(s) {', '.join(days)}"
        click.echo(f"{name} partitions: {shown}")


def _history_entry(summary: RunSummary) -> dict[str, Any]:
    """What ``state show`` keeps of a finished run: its window, counts and exit code."""
    return {
        "exit_code": summary.exit_code,
        "window": summary.window,
        "new_records": {f"{p['source']}/{p['stream']}": p.get("new", 0) for p in summary.pulled},
        "late_changes": summary.late_changes,
        "quarantined": sum(summary.quarantined.values()),
        "tables": {name: t.get("rows", 0) for name, t in summary.tables.items()},
        "problems": len(summary.problems),
    }


def _record(settings: AppSettings, started: datetime, entry: dict[str, Any]) -> None:
    """Add the run to the state's short history; a failure to write it is logged, not fatal."""
    stamp = {"timespec": "seconds"}
    times = {
        "started_at": format_utc(started, **stamp),
        "finished_at": format_utc(clock.now(), **stamp),
    }
    try:
        record_run(settings.store.state, times | entry)
    except OSError as exc:
        logging.getLogger(__name__).warning("run history not written: %s", exc)


def _attempt(
    settings: AppSettings,
    options: dict[str, Any],
    on_event: Emit | None,
    wait: float,
    started: datetime,
) -> tuple[RunSummary | None, str | None, bool]:
    """Run once: ``(summary, None, False)``, or ``(None, the error's line, whether the lock
    refused it)`` for an error a run expects. An interrupt or an unexpected error is recorded
    in the history (:func:`_ended`), then raised on (the command's exit code is main's)."""
    try:
        return run(settings, on_event=on_event, wait=wait, **options), None, False
    except (ConnectorError, SyncFailedError, ExportError, StoreError, ClusterError) as exc:
        return None, str(exc), isinstance(exc, StoreLockedError)
    except OSError as exc:
        return None, f"{exc.strerror or exc}: {exc.filename or settings.output.dir}", False
    except pl.exceptions.PolarsError as exc:  # e.g. a damaged Parquet file in the store
        return None, f"output.dir {settings.output.dir}: {printable(exc)}", False
    except BaseException as exc:  # interrupted (130), or a bug (2): in the history, raised
        if not options["dry_run"] and not isinstance(exc, SystemExit | GeneratorExit):
            _record(settings, started, _ended(exc))
        raise


def _ended(exc: BaseException) -> dict[str, Any]:
    """The history entry of a run that ended by ``exc``, neither an error it expects nor a
    summary: interrupted (Ctrl-C, SIGTERM, SIGHUP: 130), or an unexpected error (2)."""
    if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
        return {"exit_code": 130, "error": "interrupted"}
    return {"exit_code": 2, "error": f"internal error: {type(exc).__name__}: {printable(exc)}"}


@click.command("run")
@CONFIG_OPTION
@EACH_TENANT_OPTION
@click.option("--start", help="Window start, ISO 8601 instant (default: from the last run).")
@click.option("--end", help="Window end (exclusive), ISO 8601 instant (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no log lines.")
@click.option("--full-refresh", is_flag=True, help="Rebuild every table from the landing store.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Sync nothing, write nothing: print the window, streams and partitions a run would touch.",
)
@click.option(
    "--wait",
    type=FiniteFloat(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Wait this long for another run or sync to release the store [0: fail at once].",
)
@engine_options
def run_command(
    *,
    config_path: tuple[Path, ...],
    tenant: str | None,
    start: str | None,
    end: str | None,
    as_json: bool,
    quiet: bool,
    full_refresh: bool,
    dry_run: bool,
    wait: float,
    engine: str | None,
    ray_address: str | None,
) -> None:
    """Sync, rebuild, build, export, reconcile and report: the whole job, once.

    With tenants configured and no --tenant: every tenant in turn, each under its own lock,
    one summary each (--json: one document, its "tenants" the summaries); the exit code is
    the worst of theirs.
    """
    todo = each_tenant(config_path, tenant)
    begin, until = instant(start, "start"), instant(end, "end")
    if (begin is None) != (until is None):
        fail("give both --start and --end, or neither")
    if begin is not None and until is not None and until <= begin:
        fail(f"--end {end!r} is not after --start {start!r}")
    ready: list[tuple[str | None, AppSettings | list[str]]] = []
    for name, found in todo:  # usage errors first, before any tenant runs
        if isinstance(found, AppSettings):
            chosen = engine_settings(engine, ray_address, found.engine)  # the command line's
            check_window(found.build, begin, until)
            ready.append((name, found.model_copy(update={"engine": chosen})))
        else:
            ready.append((name, found))
    every = tenant is None and todo[0][0] is not None  # tenants configured, none named
    options = {"start": begin, "end": until, "full_refresh": full_refresh, "dry_run": dry_run}

    def one(settings: AppSettings, name: str | None) -> dict[str, Any]:
        return _run_one(settings, name, options, wait=wait, quiet=quiet, as_json=as_json)

    if worst := work_through(ready, one, every=every, as_json=as_json):
        sys.exit(worst)


def _run_one(
    settings: AppSettings,
    tenant: str | None,
    options: dict[str, Any],
    *,
    wait: float,
    quiet: bool,
    as_json: bool,
) -> dict[str, Any]:
    """One tenant's run (or the one run without tenants): its summary printed (``--json``:
    returned, for :func:`work_through`), its problems and errors on stderr naming the tenant;
    the result's ``exit_code`` is the run's."""
    started = clock.now()
    terminal = sys.stderr.isatty() and logs.current_format() == "text"  # bars: a person reads
    with _display(terminal=terminal, quiet=quiet) as on_event:
        summary, error, locked = _attempt(settings, options, on_event, wait, started)
        if summary is None:
            assert error is not None
            if not options["dry_run"] and not locked:  # a run refused by the lock: its holder
                _record(settings, started, {"exit_code": 2, "error": error})  # records
            return tenant_error(tenant, error)
    if options["dry_run"]:
        plan = {"window": summary.window, "sources": settings.enabled_sources(), **summary.plan}
        if not as_json:
            show_plan(summary, settings.enabled_sources())
        return plan
    _record(settings, started, _history_entry(summary))
    if not as_json:
        show_summary(summary)
    where = f"tenant {tenant}: " if tenant is not None else ""
    if any(summary.after_window.values()):
        click.echo(f"wfm-intervals: note: {where}{for_tenant(tenant, _after(summary))}", err=True)
    for line in unfed_tables(settings):  # a source turned off: its tables stay as they were
        click.echo(f"wfm-intervals: note: {where}{for_tenant(tenant, line)}", err=True)
    for problem in summary.problems:
        click.echo(f"wfm-intervals: problem: {where}{for_tenant(tenant, problem)}", err=True)
    return summary.to_json()
