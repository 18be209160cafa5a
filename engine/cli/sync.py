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

import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.errors import ConfigError, ConnectorError
from connectors.state import StateStore, format_utc
from connectors.sync import Progress as SyncProgress
from connectors.sync import SyncReport, sync_source
from engine.app.config import AppSettings, to_toml
from engine.app.sources import connector
from engine.cli.common import CONFIG_OPTION, fail, settings_or_fail
from engine.errors import StoreLockedError
from engine.pipeline.lock import store_lock

__all__ = ["config_group", "run_sync", "state_group", "sync"]


@contextmanager
def _log_to(console: Console | None, *, verbose: bool) -> Iterator[None]:
    """Send the connectors' log to stderr (through rich's console on a terminal)."""
    logger = logging.getLogger("connectors")
    handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler  # noqa: PLC0415 - terminals only

        handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def run_sync(
    settings: AppSettings,
    names: Sequence[str],
    *,
    streams: Sequence[str] = (),
    progress: Callable[[SyncProgress], None] | None = None,
) -> list[SyncReport]:
    """Sync the named sources with ``settings``; one report per stream.

    Raises:
        ConnectorError: An unknown or disabled source, or settings a client cannot be built from.
        StoreLockedError: a run or another sync holds the store.
    """
    reports: list[SyncReport] = []
    with store_lock(settings.store.state):  # one writer of the landing store and the state
        for name in names:
            reports += _sync_one(settings, name, streams, progress)
    return reports


def _sync_one(
    settings: AppSettings,
    name: str,
    streams: Sequence[str],
    progress: Callable[[SyncProgress], None] | None,
) -> list[SyncReport]:
    source, source_settings = connector(name), settings.source(name)
    if not source_settings.enabled:
        msg = f"sources.{name}.enabled: the source is not enabled"
        raise ConfigError(msg)
    return sync_source(
        source,
        source_settings,
        landing_root=settings.store.landing,
        state_root=settings.store.state,
        streams=streams or None,
        progress=progress,
    )


def _summary(reports: Sequence[SyncReport]) -> Table:
    table = Table()
    for header in ("source/stream", "pages", "records", "landed", "rejected", "retries", "429s"):
        table.add_column(header, justify="left" if header == "source/stream" else "right")
    table.add_column("cursor")
    table.add_column("seconds", justify="right")
    table.add_column("status")
    for r in reports:
        table.add_row(
            f"{r.source}/{r.stream}",
            f"{r.pages:,}",
            f"{r.records:,}",
            f"{r.landed:,}",
            f"{sum(r.rejected.values()):,}",
            f"{r.retries:,}",
            f"{r.throttled:,}",
            r.cursor or "-",
            f"{r.seconds:.1f}",
            "ok" if r.ok else "FAILED",
        )
    return table


@click.command("sync")
@click.argument("sources", nargs=-1)
@CONFIG_OPTION
@click.option("--stream", "streams", multiple=True, help="Only these streams (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Log each stream's progress.")
def sync(
    sources: tuple[str, ...],
    config_path: Path | None,
    streams: tuple[str, ...],
    as_json: bool,
    verbose: bool,
) -> None:
    """Pull SOURCES (default: every enabled source) into the landing store."""
    settings = settings_or_fail(config_path)
    names = list(sources) or settings.enabled_sources()
    if not names:
        fail("no source is enabled: set sources.<name>.enabled = true (or name one)")
    terminal = sys.stderr.isatty()
    console = Console(stderr=True) if terminal else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        _log_to(console, verbose=verbose),
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
            fail(str(exc))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        click.echo("sync summary")
        Console(file=sys.stdout, width=140).print(_summary(reports))
        for r in reports:
            for line in r.repaired:
                click.echo(f"repaired {r.source}/{r.stream}: {line}")
    failed = [r for r in reports if not r.ok]
    for r in failed[:-1]:
        click.echo(f"wfm-intervals: error: {r.source}/{r.stream}: {r.error}", err=True)
    if failed:
        fail(f"{failed[-1].source}/{failed[-1].stream}: {failed[-1].error}")


@click.group("config")
def config_group() -> None:
    """Show the effective configuration."""


@config_group.command("show")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
def config_show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective configuration with every secret masked."""
    masked = settings_or_fail(config_path).masked()
    click.echo(json.dumps(masked, indent=2) if as_json else to_toml(masked))


@click.group("state")
def state_group() -> None:
    """Show or reset the incremental sync state."""


@state_group.command("show")
@CONFIG_OPTION
def state_show(config_path: Path | None) -> None:
    """Print every stream's committed cursor."""
    store = StateStore(settings_or_fail(config_path).store.state)
    try:
        states = store.show()
    except ConnectorError as exc:
        fail(str(exc))
    if not states:
        click.echo(f"no state under {store.root}")
    for s in states:
        lookback = f"{s.lookback.total_seconds() / 60:g} min"
        committed = format_utc(s.committed_at, timespec="seconds")
        click.echo(
            f"{s.source}/{s.stream}  cursor {format_utc(s.cursor)}  lookback {lookback}"
            f"  committed {committed}"
        )


@state_group.command("reset")
@click.argument("source", required=False)
@click.argument("stream", required=False)
@CONFIG_OPTION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def state_reset(
    source: str | None, stream: str | None, config_path: Path | None, yes: bool
) -> None:
    """Forget the cursor of SOURCE/STREAM (all when omitted): the next sync starts over.

    Landed data stays; the re-read is de-duplicated.
    """
    root = settings_or_fail(config_path).store.state
    store = StateStore(root)
    what = "/".join(p for p in (source, stream) if p) or "every stream"
    if not yes and not click.confirm(f"reset the sync state of {what}?"):
        fail("cancelled: nothing was reset", code=130)
    try:
        with store_lock(root):  # never under a running sync or run
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
