"""The connector commands of ``wfm-intervals`` (registered on :data:`engine.cli.main.cli`).

- ``sync [SOURCE...]``: pull the named sources (default: every enabled one) into the landing store,
  with a progress display on a terminal and a summary table.
- ``config show``: the effective configuration, secrets masked.
- ``state show`` / ``state reset [SOURCE] [STREAM]``: the incremental cursors.

Configuration comes from :func:`engine.app.config.load_settings` (``--config`` or ``WFM_CONFIG``).
Errors are one line on stderr naming the setting or URL, exit code 2, like every other command.

Example:
    $ WFM_SOURCES__UJET__PASSWORD=... wfm-intervals sync ujet --config config/tenant.toml
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.errors import ConfigError, ConnectorError, StateError
from connectors.state import AHEAD, StateStore, format_utc
from connectors.sync import Progress as SyncProgress
from connectors.sync import SyncReport, sync_source
from engine import clock
from engine.app import logs
from engine.app.config import AppSettings, config_files, env_files, secrets_dir_of
from engine.app.origin import flatten, layers_of, origin_of, to_toml
from engine.app.sources import SOURCES, connector
from engine.app.tenants import ISOLATED
from engine.cli.common import (
    CONFIG_OPTION,
    EACH_TENANT_OPTION,
    TENANT_OPTION,
    config_or_fail,
    each_tenant,
    fail,
    instant,
    log_to,
    print_table,
    settings_or_fail,
    tenant_error,
    work_through,
)
from engine.errors import StoreLockedError
from engine.pipeline.lock import store_lock
from engine.pipeline.sources import keep_landed
from engine.pipeline.state import UNFINISHED, load_run_state, run_history, run_state_path

__all__ = ["config_group", "run_sync", "state_group", "sync"]


def run_sync(
    settings: AppSettings,
    names: Sequence[str],
    *,
    streams: Sequence[str] = (),
    progress: Callable[[SyncProgress], None] | None = None,
) -> list[SyncReport]:
    """Sync the named sources with ``settings``; one report per stream. Each name counts once
    (in the order given), and every one is checked before anything is fetched: an unknown name
    syncs nothing.

    Raises:
        ConnectorError: An unknown or disabled source, a stream a named source does not have,
            settings a client cannot be built from, a landing store lost with its state.
        StoreLockedError: a run or another sync holds the store.
    """
    chosen, wanted = list(dict.fromkeys(names)), list(dict.fromkeys(streams))
    for name in chosen:
        source, source_settings = connector(name), settings.source(name)
        if not source_settings.enabled:
            raise ConfigError(f"sources.{name}.enabled: the source is not enabled")
        for stream in wanted:  # ConfigError: the source's streams named
            source.configured(source_settings).stream(stream)
    reports: list[SyncReport] = []
    with store_lock(settings.store.state):  # one writer of the landing store and the state
        for name in chosen:  # before any source is fetched
            keep_landed(settings, name)
        for name in chosen:
            reports += sync_source(
                connector(name), settings.source(name), landing_root=settings.store.landing,
                state_root=settings.store.state, streams=wanted or None, progress=progress,
            )  # fmt: skip
    return reports


def _summary(reports: Sequence[SyncReport]) -> tuple[list[str], list[list[Any]]]:
    """The summary's headers and rows (:func:`print_table`: rich on a terminal, aligned text
    in a pipe or a file)."""
    heads = ["source/stream", "pages", "records", "landed", "rejected", "retries", "429s"]
    rows = [
        [f"{r.source}/{r.stream}", r.pages, r.records, r.landed, sum(r.rejected.values()),
         r.retries, r.throttled, r.cursor or "-", round(r.seconds, 1), "ok" if r.ok else "FAILED"]
        for r in reports
    ]  # fmt: skip
    return [*heads, "cursor", "seconds", "status"], rows


@click.command("sync")
@click.argument("sources", nargs=-1)
@CONFIG_OPTION
@EACH_TENANT_OPTION
@click.option("--stream", "streams", multiple=True, help="Only these streams (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Log each stream's progress.")
def sync(
    *,
    sources: tuple[str, ...],
    config_path: tuple[Path, ...],
    tenant: str | None,
    streams: tuple[str, ...],
    as_json: bool,
    verbose: bool,
) -> None:
    """Pull SOURCES (default: every enabled source) into the landing store.

    With tenants configured and no --tenant: every tenant in turn, each under its own lock
    (--json: one document, its "tenants" the reports); the exit code is the worst.
    """
    todo = each_tenant(config_path, tenant)
    every = tenant is None and todo[0][0] is not None  # tenants configured, none named

    def one(settings: AppSettings, name: str | None) -> dict[str, Any]:
        return _sync_tenant(settings, name, sources, streams, as_json=as_json, verbose=verbose)

    if worst := work_through(todo, one, every=every, as_json=as_json):
        sys.exit(worst)


def _sync_tenant(
    settings: AppSettings,
    tenant: str | None,
    sources: Sequence[str],
    streams: Sequence[str],
    *,
    as_json: bool,
    verbose: bool,
) -> dict[str, Any]:
    """One tenant's sync (or the one without tenants): its summary table printed (``--json``:
    its document returned), every failed stream a line on stderr naming the tenant."""
    names = list(sources) or settings.enabled_sources()
    if not names:
        msg = "no source is enabled: set sources.<name>.enabled = true (or name one)"
        return tenant_error(tenant, msg)
    started = clock.now()
    terminal = sys.stderr.isatty() and logs.current_format() == "text"  # bars: a person reads
    console = Console(stderr=True) if terminal else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        log_to(console, verbose=verbose),
        Progress(*columns, TimeElapsedColumn(), console=console, disable=not terminal) as bar,
    ):
        tasks: dict[str, Any] = {}

        def on_page(event: SyncProgress) -> None:
            key = f"{event.source}/{event.stream}"
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=event.total_hint)
            bar.update(tasks[key], completed=event.records, total=event.total_hint)

        try:
            reports = run_sync(settings, names, streams=streams, progress=on_page)
        except (ConnectorError, StoreLockedError) as exc:
            return tenant_error(tenant, str(exc))
    failed = [r for r in reports if not r.ok]
    if not as_json:
        print_table(*_summary(reports), title="sync summary")
        for r in reports:
            for line in r.repaired:
                click.echo(f"repaired {r.source}/{r.stream}: {line}")
    for r in failed:
        tenant_error(tenant, f"{r.source}/{r.stream}: {r.error}")
    return {  # the keys of `run --json` for the same things
        "ok": not failed,
        "exit_code": 2 if failed else 0,
        "started_at": format_utc(started, timespec="seconds"),
        "finished_at": format_utc(clock.now(), timespec="seconds"),
        "pulled": [r.to_dict() for r in reports],
        "problems": [f"{r.source}/{r.stream}: {r.error}" for r in failed],
    }


@click.group("config")
def config_group() -> None:
    """Show the effective configuration."""


@config_group.command("show")
@CONFIG_OPTION
@TENANT_OPTION
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
@click.option("--origin", is_flag=True, help="Name the layer that set each value.")
@click.option("--check", is_flag=True, help="Exit 2 when an enabled source lacks a setting.")
def config_show(
    config_path: tuple[Path, ...], tenant: str | None, as_json: bool, origin: bool, check: bool
) -> None:
    """Print the effective configuration with every secret masked.

    Works with settings missing (an enabled source without its password): it prints the rest
    and lists what is missing on stderr, with the variable that would give it (exit 2 with
    --check: a preflight for a scheduled run). With tenants configured: --tenant shows that
    tenant's merged settings; without it, the base settings and what each tenant sets (and
    its folders), and what every tenant misses.
    """
    base = config_or_fail(config_path, allow_missing=True)
    settings = base
    if tenant is not None:
        settings = settings_or_fail(config_path, allow_missing=True, tenant=tenant)
    masked = settings.masked()
    if origin:
        show_origins(masked, config_path, tenant, as_json=as_json)
    else:
        click.echo(json.dumps(masked, indent=2) if as_json else to_toml(masked))
    targets = [(tenant, settings)]
    if tenant is None and base.tenants:
        targets = [(n, base.tenant(n, allow_missing=True)) for n in base.tenant_names()]
    missing = [
        (t, n, k) for t, s in targets for n in s.enabled_sources() for k in s.source(n).missing()
    ]
    for t, name, key in missing:
        where = f"tenants.{t}." if t else ""
        variable = f"WFM_{where.replace('.', '__')}SOURCES__{name}__{key}".upper()
        click.echo(
            f"missing: {where}sources.{name}.{key} (required when enabled; {variable})", err=True
        )
    if check and missing:
        fail(f"{len(missing)} required setting(s) missing (listed above)")


def show_origins(
    masked: dict[str, Any], config_path: tuple[Path, ...], tenant: str | None, *, as_json: bool
) -> None:
    """Every setting with its value (secrets masked) and the layer that set it; a tenant's:
    the layer that set it for the tenant, else the one that set the base value (a folder the
    tenant does not set: ``tenants/<name> folder of`` the base's)."""
    files = config_files(config_path or None)
    layers = layers_of(files, env_files(files, ".env"), secrets_dir_of(files))

    def origin(key: str, of: str | None = tenant) -> str:
        if of is None:
            _, name, rest = key.split(".", 2) if key.startswith("tenants.") else ("", "", "")
            return origin(rest, name) if rest else origin_of(key, layers)
        own = origin_of(f"tenants.{of}.{key}", layers)
        if own != "model default":
            return own
        isolated = key in {f"{section}.{name}" for section, name in ISOLATED}
        below = origin_of(key, layers)
        return f"tenants/{of} folder of {key} ({below})" if isolated else below

    flat = flatten(masked)
    if as_json:
        doc = {k: {"value": v, "origin": origin(k)} for k, v in flat.items()}
        click.echo(json.dumps(doc, indent=2))
        return
    for key, value in flat.items():
        click.echo(f"{key} = {json.dumps(value)}  # {origin(key)}")


@click.group("state")
def state_group() -> None:
    """Show or reset the incremental sync state."""


@state_group.command("show")
@CONFIG_OPTION
@TENANT_OPTION
@click.option("--json", "as_json", is_flag=True, help="JSON: streams, the run window, last runs.")
def state_show(config_path: tuple[Path, ...], tenant: str | None, as_json: bool) -> None:
    """Print every stream's committed cursor, the last run's window and the last runs."""
    root = settings_or_fail(config_path, tenant=tenant).store.state
    store = StateStore(root)
    try:
        states = store.show()
        last = load_run_state(run_state_path(root))
    except (ConnectorError, StateError) as exc:
        fail(str(exc))
    history = run_history(root)
    if as_json:
        streams = [
            {"source": s.source, "stream": s.stream, "cursor": format_utc(s.cursor),
             "lookback_minutes": s.lookback.total_seconds() / 60,
             "committed_at": format_utc(s.committed_at)}
            for s in states
        ]  # fmt: skip
        window: dict[str, Any] | None = None
        if last is not None:
            window = {k: format_utc(getattr(last, k), timespec="seconds") for k in
                      ("started_at", "finished_at", "window_start", "window_end")}  # fmt: skip
            window["unfinished"] = last.build == UNFINISHED  # a full rebuild killed halfway
        click.echo(json.dumps({"streams": streams, "run": window, "runs": history}, indent=2))
        return
    if not states:
        click.echo(f"no state under {store.root}")
    for s in states:
        lookback = f"{s.lookback.total_seconds() / 60:g} min"
        committed = format_utc(s.committed_at, timespec="seconds")
        click.echo(
            f"{s.source}/{s.stream}  cursor {format_utc(s.cursor)}  lookback {lookback}"
            f"  committed {committed}"
        )
    if last is not None and last.build == UNFINISHED:  # killed: not a run that built them
        click.echo(f"last run  {format_utc(last.started_at)}  a full rebuild began and did "
                   "not end: the next run rebuilds everything")  # fmt: skip
    elif last is not None:
        span = f"{format_utc(last.window_start)} .. {format_utc(last.window_end)}"
        click.echo(f"last run  {format_utc(last.started_at)}  tables built for {span}")
    for r in history[-5:]:
        what = r.get("error") or f"{sum(r.get('new_records', {}).values()):,} new records"
        click.echo(f"run  {r.get('started_at')}  exit {r.get('exit_code')}  {what}")


@state_group.command("reset")
@click.argument("source", required=False)
@click.argument("stream", required=False)
@CONFIG_OPTION
@TENANT_OPTION
@click.option(
    "--since",
    metavar="INSTANT",
    help="Move the cursors back to this ISO 8601 instant instead of forgetting them: the next "
    "sync reads the changes since it (less the lookback) again.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def state_reset(
    *,
    source: str | None,
    stream: str | None,
    config_path: tuple[Path, ...],
    tenant: str | None,
    since: str | None,
    yes: bool,
) -> None:
    """Forget the cursor of SOURCE/STREAM (all when omitted): the next sync starts over.

    Landed data stays; the re-read is de-duplicated. Asks first, unless --yes: no answer (a
    standard input at its end, as under cron) is exit 2, "n" resets nothing and is exit 0.
    """
    settings = settings_or_fail(config_path, tenant=tenant)
    root, what = settings.store.state, _known_or_fail(settings, source, stream)
    store, back_to = StateStore(root), instant(since, "since")
    if back_to is not None and back_to > clock.now() + AHEAD:
        fail(f"--since {since!r} is ahead of the clock ({format_utc(clock.now())})")
    of = f" of tenant {tenant}" if tenant is not None else ""
    question = f"reset the sync state of {what}{of}" + (f" to {since}" if since else "")
    try:
        confirmed = yes or click.confirm(f"{question}?")
    except click.exceptions.Abort as exc:  # Ctrl-C (130), or a standard input at its end
        if not isinstance(exc.__context__, EOFError):
            raise
        click.echo()  # the question's line ends
        fail("state reset: no answer on standard input (cron, ssh): pass --yes to reset")
    if not confirmed:  # what was asked for: nothing
        click.echo("cancelled: nothing was reset")
        return
    try:
        with store_lock(root):  # never under a running sync or run
            if back_to is not None:
                _rewind(store, source, stream, back_to)
                return
            removed = store.reset(source, stream)
    except (ConnectorError, StoreLockedError) as exc:
        fail(str(exc))
    for s in removed:
        click.echo(f"reset {s.source}/{s.stream} (was {format_utc(s.cursor)})")
    if not removed and source is not None and stream is not None:
        # Marked reset all the same: its next sync starts over instead of reporting it lost.
        click.echo(
            f"reset {what} (it had no readable state): its next sync starts from its configured"
            " start"
        )
    elif not removed:
        click.echo(f"nothing to reset for {what}")


def _known_or_fail(settings: AppSettings, source: str | None, stream: str | None) -> str:
    """What ``state reset`` names (``source/stream``, or ``every stream``), or exit 2 with one
    line (a typo would mark a stream no sync reads, the cursor left): a registered source or one
    with state files (turned off or gone), and one of its streams (declared, configured, or with
    a state file)."""
    known = {name: {s.name for s in of.streams} for name, of in SOURCES.items()}
    for name, of in SOURCES.items():
        with contextlib.suppress(ConnectorError):  # a streams setting it lacks: refused in use
            known[name] |= {s.name for s in of.configured(settings.source(name)).streams}
    for path in settings.store.state.glob("*/*.json"):
        known.setdefault(path.parent.name, set()).add(path.stem)
    if source is not None and source not in known:
        fail(f"state reset: unknown source {source!r} (known: {', '.join(sorted(known))})")
    streams = sorted(known.get(source or "", ()))
    if stream is not None and stream not in streams:
        fail(f"state reset: {source} has no stream {stream!r} (streams: {', '.join(streams)})")
    return "/".join(p for p in (source, stream) if p) or "every stream"


def _rewind(store: StateStore, source: str | None, stream: str | None, to: datetime) -> None:
    """Move the matching cursors back to ``to`` (never forward); a stream with no cursor is
    left as it is: its next sync starts from its configured start, which reads more."""
    states = [s for s in store.show() if source in (None, s.source) and stream in (None, s.stream)]
    for s in states:
        moved = store.rewind(s.source, s.stream, to, lookback=s.lookback)
        was, now = format_utc(s.cursor), format_utc(moved.cursor)
        if moved.cursor < s.cursor:
            click.echo(f"reset {s.source}/{s.stream} to {now} (was {was})")
        else:
            click.echo(f"kept {s.source}/{s.stream} at {was} (before {format_utc(to)})")
    if not states:
        what = "/".join(p for p in (source, stream) if p) or "every stream"
        click.echo(f"no cursor to move back for {what}: a stream without one starts over")
